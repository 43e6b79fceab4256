import jax, jax.numpy as jnp, optax
jax.config.update("jax_enable_x64", True)
x = jnp.array([[0.0, jnp.inf, 1.0]], jnp.float64)
label = jnp.array([0])
loss, grad = jax.value_and_grad(lambda z: optax.softmax_cross_entropy_with_integer_labels(z, label).sum())(x)
print(loss, grad)  # a +inf logit leaves the softmax undefined (inf/inf): expected nan everywhere in the row;
# optax gives loss +inf and the gradient [-1, nan, 0] (nan only at the +inf logit)
assert jnp.isposinf(loss) and grad[0, 0] == -1.0 and jnp.isnan(grad[0, 1]) and grad[0, 2] == 0.0
