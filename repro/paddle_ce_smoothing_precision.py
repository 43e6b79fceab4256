# In float64, paddle.nn.functional.cross_entropy with label_smoothing smooths the target with float32 accuracy:
# class indices are one-hot encoded in float32 (one_hot's dtype) before label_smooth, and label_smooth itself
# is off by ~1e-8 in float64, so the loss has a relative error ~1e-8, a million times float64's rounding.
import numpy as np, paddle
F = paddle.nn.functional
x = np.array([[0.5, -1.0, 2.0, 0.25]]); eps = 0.1
log_softmax = x - np.log(np.exp(x).sum())
target = (1 - eps) * np.eye(4)[[2]] + eps / 4
expected = -(target * log_softmax).sum()
got = F.cross_entropy(paddle.to_tensor(x), paddle.to_tensor(np.array([2])), label_smoothing=eps, reduction="sum")
print("float64 loss", repr(got.item()), "expected", repr(expected), "relative error", abs(got.item() - expected) / expected)
assert got.dtype == paddle.float64 and abs(got.item() - expected) > 1e-10 * expected
smooth = F.label_smooth(paddle.to_tensor(np.array([[0.3, 0.7, 0.0]])), epsilon=eps).numpy()
print("label_smooth float64 error", smooth - (0.9 * np.array([[0.3, 0.7, 0.0]]) + eps / 3))
