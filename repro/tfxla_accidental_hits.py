import numpy as np, tensorflow as tf
w, b = tf.constant(np.ones((10, 4)), tf.float32), tf.zeros(10)
x, labels = tf.constant(np.ones((2, 4)), tf.float32), tf.constant([[1], [2]], tf.int64)
sampled = (tf.constant([0, 1, 3], tf.int64), tf.ones((2, 1)), tf.ones(3))
loss = lambda remove: tf.nn.sampled_softmax_loss(w, b, labels, x, 3, 10, sampled_values=sampled,
                                                 remove_accidental_hits=remove)
print(tf.function(lambda: loss(False), jit_compile=True)())  # compiles
try:  # the default remove_accidental_hits=True needs ComputeAccidentalHits, which has no XLA kernel
    tf.function(lambda: loss(True), jit_compile=True)()
    raise SystemExit("compiled: the deviation is gone")
except tf.errors.InvalidArgumentError as error:
    print(str(error).splitlines()[0][:200])
    assert "ComputeAccidentalHits" in str(error)
