"""torch: softmax_with_cross_entropy, fail grad/logits

softmax_with_cross_entropy is torch's own op, called as the adapter calls it:
F.cross_entropy(reduction='none', ignore_index=...) on logits with the class axis moved to dim 1
([N, C, d1, ...], torch's own form; class-index targets with the size-1 class axis squeezed for hard
labels, probability targets for soft labels); F.softmax for return_softmax; numeric_stable_mode has
no counterpart (always stable).

Found by `conformance search`: torch|softmax_with_cross_entropy|fail|grad/logits|nonfinite(actual nan, expected finite)|ignore_index+neg_inf_logits
grad/logits: nan where 0.0 was expected at (0, 0)
Runs the case with the suite's torch adapter, copied verbatim into _torch_adapter.py beside this file
(NumPy and torch only), on the inputs stored in
../../cases/found/softmax_with_cross_entropy/softmax_with_cross_entropy-ignore-neg_inf-hard-h4d884f4175-f64.npz
and asserts the divergence from the golden float64 outputs (the oracle's): exit status 0 means it
still shows.
"""
import os

import numpy

import _torch_adapter as adapter_module


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    stored = numpy.load(os.path.join(here, '../../cases/found/softmax_with_cross_entropy/softmax_with_cross_entropy-ignore-neg_inf-hard-h4d884f4175-f64.npz'))
    adapter_module.OPS['softmax_with_cross_entropy'] = adapter_module.OpInfo(('logits',))
    inputs = {name[len("input/"):]: stored[name] for name in stored.files if name.startswith("input/")}
    case = adapter_module.Case('softmax_with_cross_entropy', 'float64', {'axis': -1, 'ignore_index': -100, 'numeric_stable_mode': True, 'return_softmax': False, 'soft_label': False}, inputs)
    adapter = adapter_module.TorchAdapter()
    print('torch', adapter.load("cpu"))
    # The suite's tolerance rule for this case: float64: 16 ulp (max(16, 2*sqrt(n=1))) x (|golden| + scale 1)
    adapter_module.assert_diverges(adapter, case, stored, 'fail', 'grad/logits', rtol=3.552713678800501e-15, scale=1.5)


if __name__ == "__main__":
    main()
