import jax, jax.numpy as jnp, optax
jax.config.update("jax_enable_x64", True)
x = jnp.array([[0.0, -jnp.inf, 1.0]], jnp.float64)
y = jnp.array([[0.5, 0.0, 0.5]], jnp.float64)
loss = optax.softmax_cross_entropy(x, y)
print(loss)  # expected 0.8133 (-0.5*log_softmax[0] - 0.5*log_softmax[2]); optax gives nan (0 * -inf)
assert jnp.isnan(loss).all()
