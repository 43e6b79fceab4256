# With probability targets and class weights, paddle.nn.functional.cross_entropy's loss is
# CE(label) * sum_i(weight_i * label_i), yet paddle.grad returns for the label only the derivative through the
# weight factor, CE * weight, missing the CE term's -log_softmax * factor (without weights it returns none).
import numpy as np, paddle
F = paddle.nn.functional
x = np.array([[0.5, -1.0, 2.0]]); p = np.array([[0.2, 0.3, 0.5]]); w = np.array([1.0, 2.0, 3.0])
label = paddle.to_tensor(p, stop_gradient=False)
loss = F.cross_entropy(paddle.to_tensor(x), label, soft_label=True, weight=paddle.to_tensor(w), reduction="sum")
(grad,) = paddle.grad([loss], [label])
log_softmax = x - np.log(np.exp(x).sum())
ce, factor = -(p * log_softmax).sum(), (p * w).sum()
exact = -log_softmax * factor + ce * w
print("loss", loss.item(), "=", ce * factor, "| label gradient", grad.numpy(), "exact", exact)
assert np.isclose(loss.item(), ce * factor)
assert np.allclose(grad.numpy(), ce * w)  # only the factor's part
