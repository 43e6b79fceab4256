import os
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "2"
import tensorflow as tf
a = tf.constant([2.2250738585072014e-308], tf.float64)  # the smallest normal float64
product = (a * tf.constant([0.25], tf.float64)).numpy()
print(product)  # expected 5.56e-309 (a subnormal float64, exact); TensorFlow on the CPU gives 0
assert product[0] == 0.0
