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
    # The suite's tolerance rule for this case: float32: 16 ulp (max(16, 2*sqrt(n=2))) x (|golden| + scale 9.67678e+38)
    adapter_module.assert_diverges(adapter, case, stored, 'fail', 'grad/biases', rtol=1.9073486328125e-06, scale=1.4515168848799747e+39)


if __name__ == "__main__":
    main()
