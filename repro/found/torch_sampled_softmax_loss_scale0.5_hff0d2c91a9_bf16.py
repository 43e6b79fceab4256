"""torch: sampled_softmax_loss, fail grad/biases

sampled_softmax_loss is NOT a torch op: the suite's adapter composes it from torch primitives
(sharded_biases: PyTorch has no lookup over a list of shards, the adapter would stitch them itself;
F.embedding(sparse=True) of the label and sampled rows per weight shard (tf.nn.embedding_lookup
'mod'/'div' id mapping, stitched back with index_select) and torch.gather(sparse_grad=True) of the
biases, so the weight and bias gradients are sparse COO tensors (uncoalesced, densified outside
timing), einsum/matmul logits + biases - log(expected_count), masked_fill(-inf) on accidental hits,
-log_softmax averaged over the T true columns). A divergence here is a limit of that composition
unless the primitives themselves are shown wrong.

Found by `conformance search`: torch|sampled_softmax_loss|fail|grad/biases|nonfinite(actual nan, expected finite)|accidental_hits+dtype_limits+remove_accidental_hits
grad/biases: nan where 0.0 was expected at (16120,); grad/inputs: nan where 0.0 was expected at (7, 0); grad/weights: nan where 0.0 was expected at (16120, 0); loss: nan where 0.0 was expected at (7,)
Runs the case with the suite's torch adapter, copied verbatim into _torch_adapter.py beside this file
(NumPy and torch only), on the inputs stored in
../../cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-hff0d2c91a9-bf16.npz
and asserts the divergence from the golden float64 outputs (the oracle's): exit status 0 means it
still shows.
"""
import os

import numpy

import _torch_adapter as adapter_module


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    stored = numpy.load(os.path.join(here, '../../cases/found/sampled_softmax_loss/sampled_softmax_loss-scale0.5-hff0d2c91a9-bf16.npz'))
    adapter_module.OPS['sampled_softmax_loss'] = adapter_module.OpInfo(('weights', 'biases', 'inputs'))
    inputs = {name[len("input/"):]: stored[name] for name in stored.files if name.startswith("input/")}
    case = adapter_module.Case('sampled_softmax_loss', 'bfloat16', {'num_classes': 19184, 'num_sampled': 1, 'num_shards': 0, 'num_true': 1, 'partition_strategy': 'mod', 'remove_accidental_hits': True}, inputs)
    adapter = adapter_module.TorchAdapter()
    print('torch', adapter.load("cpu"))
    # The suite's tolerance rule for this case: bfloat16: 16 ulp (max(16, 2*sqrt(n=14))) x (|golden| + scale 6.51426e+38)
    adapter_module.assert_diverges(adapter, case, stored, 'fail', 'grad/biases', rtol=0.125, scale=1.302851127743559e+39)


if __name__ == "__main__":
    main()
