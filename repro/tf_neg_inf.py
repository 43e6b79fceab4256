import numpy as np, tensorflow as tf
loss = tf.nn.softmax_cross_entropy_with_logits(labels=[[0.0, 0.5, 0.5]], logits=tf.constant([[-np.inf, 2.0, 3.0]], tf.float64))
print(loss.numpy())  # expected 0.81326; TF gives nan
assert np.isnan(loss.numpy()).all()
