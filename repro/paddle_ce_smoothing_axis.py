# paddle.nn.functional.cross_entropy documents `axis` as the class axis, but label_smoothing one-hot encodes
# class indices with depth input.shape[-1] on the last axis, and smooths probability targets with the last
# axis's size as the class count; class weights of probability targets are gathered on the last axis too.
import numpy as np, paddle
F = paddle.nn.functional
rng = np.random.default_rng(0)
eps, C = 0.2, 4
x = rng.normal(size=(2, C, C))  # classes on axis 1; the last axis has the same size, so nothing raises
y = rng.integers(0, C, size=(2, C))
log_softmax = x - np.log(np.exp(x).sum(1, keepdims=True))
target = (1 - eps) * np.moveaxis(np.eye(C)[y], -1, 1) + eps / C
expected = -(target * log_softmax).sum(1)
got = F.cross_entropy(paddle.to_tensor(x), paddle.to_tensor(y), axis=1, label_smoothing=eps, reduction="none")
print("class indices, axis=1:", got.numpy().ravel()[:4], "expected", expected.ravel()[:4])
assert not np.allclose(got.numpy().reshape(expected.shape), expected)

x3 = rng.normal(size=(2, C, 3))  # the last axis (3) is not the class axis (4)
p = rng.random((2, C, 3)); p /= p.sum(1, keepdims=True)
log_softmax = x3 - np.log(np.exp(x3).sum(1, keepdims=True))
expected = -(((1 - eps) * p + eps / C) * log_softmax).sum(1)
got = F.cross_entropy(paddle.to_tensor(x3), paddle.to_tensor(p), soft_label=True, axis=1, label_smoothing=eps,
                      reduction="none").numpy().squeeze(1)
print("probabilities, axis=1:", got.ravel()[:3], "expected", expected.ravel()[:3])
assert not np.allclose(got, expected)
try:
    F.cross_entropy(paddle.to_tensor(x3), paddle.to_tensor(p), soft_label=True, axis=1,
                    weight=paddle.to_tensor(np.ones(C)), reduction="none")
    raise AssertionError("class weights of probability targets with axis=1 were accepted")
except ValueError as error:  # matmul(label, weight) over the last axis: 3 != 4
    print("probabilities with weight, axis=1: raises", str(error).splitlines()[0][:120])
