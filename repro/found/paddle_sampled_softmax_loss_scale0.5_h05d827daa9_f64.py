"""paddle: sampled_softmax_loss, error

sampled_softmax_loss is NOT a paddle op: the suite's adapter composes it from paddle primitives
(sharded_biases: Paddle has no lookup over a list of shards; per-shard
paddle.nn.functional.embedding(sparse=True) (mod/div like tf.nn.embedding_lookup), whose weight
gradient paddle.grad returns as SelectedRows (densified outside timing); the bias gradient is dense
[num_classes]: embedding needs a 2-D table, and the backward of unsqueeze/reshape of a [K] bias
fails on SelectedRows in 3.3.1, so biases use paddle.gather; matmul, logsumexp). A divergence here
is a limit of that composition unless the primitives themselves are shown wrong.

Found by `conformance search`: paddle|sampled_softmax_loss|error||ValueError|empty_batch+multi_true+remove_accidental_hits
ValueError: (InvalidArgument) The 'shape' attribute in ReshapeOp is invalid. The input tensor X'size must be divisible by known capacity of 'shape'. But received X's shape = [0, 1], 'shape' is [0, 2, -1].
Runs the case with the suite's paddle adapter, copied verbatim into _paddle_adapter.py beside this file
(NumPy and paddle only), on the inputs stored in
../../cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-h05d827daa9-f64.npz
and asserts the divergence from the golden float64 outputs (the oracle's): exit status 0 means it
still shows.
"""
import os

import numpy

import _paddle_adapter as adapter_module


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    stored = numpy.load(os.path.join(here, '../../cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-h05d827daa9-f64.npz'))
    adapter_module.OPS['sampled_softmax_loss'] = adapter_module.OpInfo(('weights', 'biases', 'inputs'))
    inputs = {name[len("input/"):]: stored[name] for name in stored.files if name.startswith("input/")}
    case = adapter_module.Case('sampled_softmax_loss', 'float64', {'num_classes': 3, 'num_sampled': 1, 'num_shards': 0, 'num_true': 2, 'partition_strategy': 'mod', 'remove_accidental_hits': True}, inputs)
    adapter = adapter_module.PaddleAdapter()
    print('paddle', adapter.load("cpu"))
    # The suite's tolerance rule for this case: float64: 16 ulp (max(16, 2*sqrt(n=3))) x (|golden| + scale 1.57253)
    adapter_module.assert_diverges(adapter, case, stored, 'error', '', rtol=3.552713678800501e-15, scale=1.0)


if __name__ == "__main__":
    main()
