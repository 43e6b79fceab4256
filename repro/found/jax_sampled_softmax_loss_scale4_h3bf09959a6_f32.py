"""jax: sampled_softmax_loss, fail grad/biases

sampled_softmax_loss is NOT a jax op: the suite's adapter composes it from jax primitives (jnp.take
of the label and sampled rows per weight shard (tf.nn.embedding_lookup 'mod'/'div' id mapping),
einsum/matmul logits + biases - log(expected_count), optax.softmax_cross_entropy with label 1/T on
the true columns and where=~hit; the weight and bias gradients are dense [num_classes, D] and
[num_classes] arrays inside timing: JAX has no sparse gradient for jnp.take (its transpose is a
scatter-add into zeros)). A divergence here is a limit of that composition unless the primitives
themselves are shown wrong.

Found by `conformance search`: jax|sampled_softmax_loss|fail|grad/biases|nonfinite(actual nan, expected finite)|dtype_limits+remove_accidental_hits
grad/biases: nan where 0.0 was expected at (0,); grad/inputs: nan where 0.0 was expected at (0, 0); grad/weights: nan where 0.0 was expected at (0, 0); loss: nan where 0.0 was expected at (0,)
Runs the case with the suite's jax adapter, copied verbatim into _jax_adapter.py beside this file
(NumPy and jax, optax only), on the inputs stored in
../../cases/found/sampled_softmax_loss/sampled_softmax_loss-scale4-h3bf09959a6-f32.npz
and asserts the divergence from the golden float64 outputs (the oracle's): exit status 0 means it
still shows.
"""
import os

import numpy

import _jax_adapter as adapter_module


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    stored = numpy.load(os.path.join(here, '../../cases/found/sampled_softmax_loss/sampled_softmax_loss-scale4-h3bf09959a6-f32.npz'))
    adapter_module.OPS['sampled_softmax_loss'] = adapter_module.OpInfo(('weights', 'biases', 'inputs'))
    inputs = {name[len("input/"):]: stored[name] for name in stored.files if name.startswith("input/")}
    case = adapter_module.Case('sampled_softmax_loss', 'float32', {'num_classes': 2, 'num_sampled': 1, 'num_shards': 0, 'num_true': 1, 'partition_strategy': 'mod', 'remove_accidental_hits': True}, inputs)
    adapter = adapter_module.JaxAdapter()
    print('jax', adapter.load("cpu"))
    golden = stored["golden/" + 'grad/biases']
    outputs = adapter.run(case)
    assert 'grad/biases' in outputs, "no longer diverges: the output is missing"
    actual = numpy.asarray(outputs['grad/biases'], dtype=numpy.float64)
    if actual.shape != golden.shape:
        print("shape", actual.shape, "expected", golden.shape)
        return
    finite = numpy.isfinite(golden)
    # A non-finite golden value is matched exactly; a finite one within the suite's tolerance rule:
    # float32: 16 ulp (max(16, 2*sqrt(n=2))) x (|golden| + scale 9.67678e+38)
    nonfinite = (~finite & ~((numpy.isnan(actual) & numpy.isnan(golden)) | (actual == golden))) | (
        finite & ~numpy.isfinite(actual))
    allowed = 1.9073486328125e-06 * (numpy.abs(numpy.where(finite, golden, 0.0)) + 1.4515168848799747e+39)
    excess = numpy.where(finite & numpy.isfinite(actual), numpy.abs(actual - golden) / allowed, 0.0)
    wrong = numpy.argwhere(nonfinite | (excess > 1.0))
    if wrong.size:
        at = tuple(int(i) for i in wrong[0])
        print("at %s: %r, golden %r (%d elements differ)" % (at, float(actual[at]), float(golden[at]), len(wrong)))
    assert nonfinite.any() or excess.max(initial=0.0) > 1.0, "no longer diverges: within the tolerance"


if __name__ == "__main__":
    main()
