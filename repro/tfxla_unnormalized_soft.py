import numpy as np, tensorflow as tf
logits = tf.Variable([[0.0, 0.0]], dtype=tf.float64)
@tf.function(jit_compile=True)
def step():
  with tf.GradientTape() as tape:
      loss = tf.nn.softmax_cross_entropy_with_logits(labels=tf.constant([[1.0, 1.0]], tf.float64), logits=logits)
  return loss, tape.gradient(loss, logits)
loss, grad = step()
grad = grad.numpy()
print(loss.numpy(), grad)  # loss 2*log(2) is right; the gradient should be softmax*sum(label) - label = [0, 0]
assert np.allclose(grad, [[-0.5, -0.5]])  # TF returns softmax - label
