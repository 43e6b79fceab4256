import numpy as np, tensorflow as tf
for bad in (np.nan, np.inf):
    softmax = tf.nn.softmax(tf.constant([[0.0, bad, 1.0]], tf.float32)).numpy()
    print(bad, softmax)  # expected nan in every entry of the row (float64 gives that); float32 gives [0, nan, 0]
    assert softmax[0, 0] == 0.0 and softmax[0, 2] == 0.0 and np.isnan(softmax[0, 1])
