"""tensorflow: sampled_softmax_loss, fail grad/biases

sampled_softmax_loss is tensorflow's own op, called as the adapter calls it:
tf.nn.sampled_softmax_loss (TF2 API, 'div' sharding) for unsharded or 'div' weights;
tf.compat.v1.nn.sampled_softmax_loss(partition_strategy='mod') for 'mod' shard lists; the case's
samples are passed as sampled_values; sharded biases as a list (TF looks them up with
embedding_lookup like the weights); the weight and bias gradients are the tape's tf.IndexedSlices
(the looked-up rows), converted to dense arrays outside timing.

Found by `conformance search`: tensorflow|sampled_softmax_loss|fail|grad/biases|nonfinite(actual nan, expected finite)|accidental_hits+dtype_limits+remove_accidental_hits
grad/biases: nan where 0.0 was expected at (16120,); grad/inputs: nan where 0.0 was expected at (7, 0); grad/weights: nan where 0.0 was expected at (16120, 0); loss: nan where 0.0 was expected at (0,)
Runs the case with the suite's tensorflow adapter, copied verbatim into _tensorflow_adapter.py beside this file
(NumPy and tensorflow only), on the inputs stored in
../../cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-hff0d2c91a9-bf16.npz
and asserts the divergence from the golden float64 outputs (the oracle's): exit status 0 means it
still shows.
"""
import os

import numpy

import _tensorflow_adapter as adapter_module


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    stored = numpy.load(os.path.join(here, '../../cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-hff0d2c91a9-bf16.npz'))
    adapter_module.OPS['sampled_softmax_loss'] = adapter_module.OpInfo(('weights', 'biases', 'inputs'))
    inputs = {name[len("input/"):]: stored[name] for name in stored.files if name.startswith("input/")}
    case = adapter_module.Case('sampled_softmax_loss', 'bfloat16', {'num_classes': 19184, 'num_sampled': 1, 'num_shards': 0, 'num_true': 1, 'partition_strategy': 'mod', 'remove_accidental_hits': True}, inputs)
    adapter = adapter_module.TensorflowAdapter()
    print('tensorflow', adapter.load("cpu"))
    # The suite's tolerance rule for this case: bfloat16: 16 ulp (max(16, 2*sqrt(n=14))) x (|golden| + scale 6.51426e+38)
    adapter_module.assert_diverges(adapter, case, stored, 'fail', 'grad/biases', rtol=0.125, scale=1.302851127743559e+39)


if __name__ == "__main__":
    main()
