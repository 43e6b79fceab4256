"""tensorflow: sampled_softmax_loss, fail grad/weights/0

sampled_softmax_loss is tensorflow's own op, called as the adapter calls it:
tf.nn.sampled_softmax_loss (TF2 API, 'div' sharding) for unsharded or 'div' weights;
tf.compat.v1.nn.sampled_softmax_loss(partition_strategy='mod') for 'mod' shard lists; the case's
samples are passed as sampled_values; sharded biases as a list (TF looks them up with
embedding_lookup like the weights); the weight and bias gradients are the tape's tf.IndexedSlices
(the looked-up rows), converted to dense arrays outside timing.

Found by `conformance search`: tensorflow|sampled_softmax_loss|fail|grad/weights/0|numeric|dtype_limits+remove_accidental_hits+shard_list
grad/weights/0: max error 1.53e-308 is 5.63e+13x the tolerance at index (0, 0)
Runs the case with the suite's tensorflow adapter, copied verbatim into _tensorflow_adapter.py beside this file
(NumPy and tensorflow only), on the inputs stored in
../../cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-ha3a1a07133-f64.npz
and asserts the divergence from the golden float64 outputs (the oracle's): exit status 0 means it
still shows.
"""
import os

import numpy

import _tensorflow_adapter as adapter_module


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    stored = numpy.load(os.path.join(here, '../../cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-ha3a1a07133-f64.npz'))
    adapter_module.OPS['sampled_softmax_loss'] = adapter_module.OpInfo(('weights', 'biases', 'inputs'))
    inputs = {name[len("input/"):]: stored[name] for name in stored.files if name.startswith("input/")}
    case = adapter_module.Case('sampled_softmax_loss', 'float64', {'num_classes': 2, 'num_sampled': 1, 'num_shards': 1, 'num_true': 1, 'partition_strategy': 'mod', 'remove_accidental_hits': True}, inputs)
    adapter = adapter_module.TensorflowAdapter()
    print('tensorflow', adapter.load("cpu"))
    # The suite's tolerance rule for this case: float64: 16 ulp (max(16, 2*sqrt(n=2))) x (|golden| + scale 1)
    adapter_module.assert_diverges(adapter, case, stored, 'fail', 'grad/weights/0', rtol=3.552713678800501e-15, scale=6.118953110894804e-308)


if __name__ == "__main__":
    main()
