# Keras 3 on the PyTorch backend: a float64 loss reduced with the default reduction ("sum_over_batch_size", a
# mean) comes back float32. keras.ops.divide_no_nan, which the mean and the ignore_class mask weight go through
# (keras/src/losses/loss.py, reduce_values and apply_mask), casts float64 operands to float32 on this backend
# (keras/src/backend/torch/numpy.py: dtypes.result_type(float64, float64, float) answers float32 there); the
# TensorFlow backend keeps float64.
import os
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np
import keras

rng = np.random.default_rng(0)
x, y = rng.normal(size=(6, 5)), np.array([0, 1, 2, 3, 4, 0])
exact = np.mean(np.log(np.exp(x).sum(1)) - x[np.arange(6), y])  # float64 NumPy, correct to a few ulps
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, dtype="float64")
got = loss(keras.ops.convert_to_tensor(y), keras.ops.convert_to_tensor(x))
q = keras.ops.divide_no_nan(keras.ops.convert_to_tensor(1.0, "float64"), keras.ops.convert_to_tensor(3.0, "float64"))
print("keras %s on %s: mean loss %r (%s), float64 mean %r; divide_no_nan(float64, float64) -> %s"
      % (keras.__version__, keras.backend.backend(), float(got), got.dtype, exact, q.dtype))
assert keras.backend.standardize_dtype(got.dtype) == "float32" and abs(float(got) - exact) > 1e-10
