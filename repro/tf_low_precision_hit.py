import numpy as np, tensorflow as tf
# A sampled candidate (class 1) is the true label, so remove_accidental_hits masks it.
for dtype in (tf.float16, tf.bfloat16):
    W = tf.ones((4, 2), dtype); b = tf.zeros(4, dtype); x = tf.ones((1, 2), dtype)
    sv = (tf.constant([1, 2, 3], tf.int64), tf.ones((1, 1), dtype), tf.ones(3, dtype))
    loss = tf.nn.sampled_softmax_loss(W, b, tf.constant([[1]], tf.int64), x, 3, 4, sampled_values=sv,
                                      remove_accidental_hits=True)
    print(dtype.name, loss.numpy())  # expected log(3) = 1.0986: the true column and two other candidates, logit 2
    # The mask is -FLT_MAX cast to the logits' dtype (-inf there); the cross-entropy then takes label 0 * -inf.
    assert np.isnan(float(loss.numpy()[0])), dtype.name
