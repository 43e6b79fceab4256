"""tensorflow: sampled_softmax_with_cross_entropy, fail loss

sampled_softmax_with_cross_entropy is NOT a tensorflow op: the suite's adapter composes it from
tensorflow primitives (tf.gather(logits, customized_samples, batch_dims=1) -
log(customized_probabilities); accidental hits set to the dtype's lowest finite value (tf.where);
tf.nn.softmax_cross_entropy_with_logits with label 1/T on the T true columns). A divergence here is
a limit of that composition unless the primitives themselves are shown wrong.

Found by `conformance search`: tensorflow|sampled_softmax_with_cross_entropy|fail|loss|nonfinite(actual nan, expected finite)|dtype_limits+per_row_negatives+remove_accidental_hits
loss: nan where 1.0986122886681096 was expected at (0, 0)
Runs the case with the suite's tensorflow adapter, copied verbatim into _tensorflow_adapter.py beside this file
(NumPy and tensorflow only), on the inputs stored in
../../cases/found/sampled_softmax_with_cross_entropy/sampled_softmax_with_cross_entropy-normal-T1-hf9fde5e942-f32.npz
and asserts the divergence from the golden float64 outputs (the oracle's): exit status 0 means it
still shows.
"""
import os

import numpy

import _tensorflow_adapter as adapter_module


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    stored = numpy.load(os.path.join(here, '../../cases/found/sampled_softmax_with_cross_entropy/sampled_softmax_with_cross_entropy-normal-T1-hf9fde5e942-f32.npz'))
    adapter_module.OPS['sampled_softmax_with_cross_entropy'] = adapter_module.OpInfo(('logits',))
    inputs = {name[len("input/"):]: stored[name] for name in stored.files if name.startswith("input/")}
    case = adapter_module.Case('sampled_softmax_with_cross_entropy', 'float32', {'num_samples': 3, 'num_true': 1, 'remove_accidental_hits': True, 'seed': 0, 'use_customized_samples': True}, inputs)
    adapter = adapter_module.TensorflowAdapter()
    print('tensorflow', adapter.load("cpu"))
    # The suite's tolerance rule for this case: float32: 16 ulp (max(16, 2*sqrt(n=4))) x (|golden| + scale 3.40282e+38)
    adapter_module.assert_diverges(adapter, case, stored, 'fail', 'loss', rtol=1.9073486328125e-06, scale=3.4028234663852886e+38)


if __name__ == "__main__":
    main()
