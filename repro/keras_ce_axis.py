# Keras 3 (TensorFlow backend), eagerly and under tf.function(jit_compile=True):
# 1. SparseCategoricalCrossentropy documents `axis` ("The axis along which to compute crossentropy"), but the
#    TensorFlow backend raises "Only axis=-1 is currently supported" for any other axis (the JAX and torch
#    backends take it).
# 2. CategoricalCrossentropy's label_smoothing documents "0.1 / num_classes for non-target labels", but takes
#    num_classes from the last axis, not from `axis` (keras-team/keras#23451).
import numpy as np, tensorflow as tf
keras = tf.keras
rng = np.random.default_rng(0)
C, eps = 4, 0.2
x = tf.constant(rng.normal(size=(2, C, 3))); y = tf.constant(rng.integers(0, C, size=(2, 3)))
p = rng.random((2, C, 3)); p /= p.sum(1, keepdims=True)
log_softmax = x.numpy() - np.log(np.exp(x.numpy()).sum(1, keepdims=True))
expected = -(((1 - eps) * p + eps / C) * log_softmax).sum(1)
for jit in (False, True):
    sparse = tf.function(lambda y, x: keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, axis=1, reduction=None, dtype="float64")(y, x), jit_compile=jit)
    try:
        sparse(y, x)
        raise AssertionError("SparseCategoricalCrossentropy(axis=1) ran")
    except ValueError as error:
        print("jit_compile=%s sparse axis=1 raises: %s" % (jit, str(error).strip().splitlines()[-1].strip()))
        assert "Only axis=-1" in str(error)
    smoothed = tf.function(lambda p, x: keras.losses.CategoricalCrossentropy(
        from_logits=True, axis=1, label_smoothing=eps, reduction=None, dtype="float64")(p, x), jit_compile=jit)
    got = smoothed(tf.constant(p), x).numpy()
    print("jit_compile=%s categorical axis=1 smoothed:" % jit, got.ravel()[:3], "expected", expected.ravel()[:3])
    assert np.allclose(got, -(((1 - eps) * p + eps / 3) * log_softmax).sum(1))  # 3: the last axis's size
