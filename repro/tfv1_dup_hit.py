import numpy as np, tensorflow as tf
# The v1 API (tf.compat.v1.nn.sampled_softmax_loss, partition_strategy='mod' by default) as tf_dup_hit.py does tf.nn's.
W = tf.ones((4, 2), tf.float64); b = tf.zeros(4, tf.float64); x = tf.ones((1, 2), tf.float64)
sv = (tf.constant([1, 1, 2], tf.int64), tf.ones((1, 1), tf.float64), tf.ones(3, tf.float64))
loss = tf.compat.v1.nn.sampled_softmax_loss(W, b, tf.constant([[1]], tf.int64), x, 3, 4, sampled_values=sv)
print(loss.numpy())  # both copies of class 1 are hits: expected log 2 = 0.6931; TF removes one copy only
assert abs(loss.numpy()[0] - np.log(3)) < 1e-12
