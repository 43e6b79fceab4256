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
    golden = stored["golden/" + 'grad/biases']
    outputs = adapter.run(case)
    assert 'grad/biases' in outputs, "no longer diverges: the output is missing"
    actual = numpy.asarray(outputs['grad/biases'], dtype=numpy.float64)
    if actual.shape != golden.shape:
        print("shape", actual.shape, "expected", golden.shape)
        return
    finite = numpy.isfinite(golden)
    # A non-finite golden value is matched exactly; a finite one within the suite's tolerance rule:
    # bfloat16: 16 ulp (max(16, 2*sqrt(n=14))) x (|golden| + scale 6.51426e+38)
    nonfinite = (~finite & ~((numpy.isnan(actual) & numpy.isnan(golden)) | (actual == golden))) | (
        finite & ~numpy.isfinite(actual))
    allowed = 0.125 * (numpy.abs(numpy.where(finite, golden, 0.0)) + 1.302851127743559e+39)
    excess = numpy.where(finite & numpy.isfinite(actual), numpy.abs(actual - golden) / allowed, 0.0)
    wrong = numpy.argwhere(nonfinite | (excess > 1.0))
    if wrong.size:
        at = tuple(int(i) for i in wrong[0])
        print("at %s: %r, golden %r (%d elements differ)" % (at, float(actual[at]), float(golden[at]), len(wrong)))
    assert nonfinite.any() or excess.max(initial=0.0) > 1.0, "no longer diverges: within the tolerance"


if __name__ == "__main__":
    main()
