"""torch: sampled_softmax_with_cross_entropy, fail loss

sampled_softmax_with_cross_entropy is NOT a torch op: the suite's adapter composes it from torch
primitives (logits.gather(1, customized_samples) - log(customized_probabilities), masked_fill(-inf)
on accidental hits, -log_softmax over the T+S columns averaged over the T true columns; the sampler
is not composed (customized samples only)). A divergence here is a limit of that composition unless
the primitives themselves are shown wrong.

Found by `conformance search`: torch|sampled_softmax_with_cross_entropy|fail|loss|nonfinite(actual inf, expected finite)|dtype_limits+multi_true+per_row_negatives+remove_accidental_hits
loss: inf where 3.4028234663852886e+38 was expected at (0, 0)
Runs the case with the suite's torch adapter, copied verbatim into _torch_adapter.py beside this file
(NumPy and torch only), on the inputs stored in
../../cases/found/sampled_softmax_with_cross_entropy/sampled_softmax_with_cross_entropy-normal-T2-h3ce2254d5b-f32.npz
and asserts the divergence from the golden float64 outputs (the oracle's): exit status 0 means it
still shows.
"""
import os

import numpy

import _torch_adapter as adapter_module


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    stored = numpy.load(os.path.join(here, '../../cases/found/sampled_softmax_with_cross_entropy/sampled_softmax_with_cross_entropy-normal-T2-h3ce2254d5b-f32.npz'))
    adapter_module.OPS['sampled_softmax_with_cross_entropy'] = adapter_module.OpInfo(('logits',))
    inputs = {name[len("input/"):]: stored[name] for name in stored.files if name.startswith("input/")}
    case = adapter_module.Case('sampled_softmax_with_cross_entropy', 'float32', {'num_samples': 1, 'num_true': 2, 'remove_accidental_hits': True, 'seed': 0, 'use_customized_samples': True}, inputs)
    adapter = adapter_module.TorchAdapter()
    print('torch', adapter.load("cpu"))
    # The suite's tolerance rule for this case: float32: 16 ulp (max(16, 2*sqrt(n=3))) x (|golden| + scale 3.40282e+38)
    adapter_module.assert_diverges(adapter, case, stored, 'fail', 'loss', rtol=1.9073486328125e-06, scale=3.4028234663852886e+38)


if __name__ == "__main__":
    main()
