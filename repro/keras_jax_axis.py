# Keras 3 on the JAX backend: SparseCategoricalCrossentropy documents axis ("The axis along which to compute
# crossentropy"), but jax's sparse_categorical_crossentropy checks target.shape against output.shape[:-1], the
# last axis whatever axis is (keras/src/backend/jax/nn.py), and raises for class indices on another axis (the
# PyTorch backend takes it; the TensorFlow backend raises "Only axis=-1 is currently supported").
import os
os.environ["KERAS_BACKEND"] = "jax"
import numpy as np
import keras

rng = np.random.default_rng(0)
x, y = rng.normal(size=(2, 4, 3)), rng.integers(0, 4, size=(2, 3))  # classes on axis 1
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, axis=1, reduction=None)
try:
    loss(keras.ops.convert_to_tensor(y), keras.ops.convert_to_tensor(x))
    raise AssertionError("SparseCategoricalCrossentropy(axis=1) ran")
except ValueError as error:
    print("keras %s on %s, axis=1 raises: %s" % (keras.__version__, keras.backend.backend(), error))
    assert "up until the last dimension" in str(error)
