import numpy as np, paddle, paddle.nn.functional as F
logits = paddle.to_tensor([[0.0, 0.0]], "float64", stop_gradient=False)
loss = F.softmax_with_cross_entropy(logits, paddle.to_tensor([[1.0, 1.0]], "float64"), soft_label=True)
loss.sum().backward()
print(loss.numpy(), logits.grad.numpy())  # loss 2*log(2) is right; d loss/d logits = softmax*sum(label) - label = [0, 0]
assert np.allclose(logits.grad.numpy(), [[-0.5, -0.5]])  # Paddle returns softmax - label
