import paddle, paddle.nn.functional as F
loss = F.softmax_with_cross_entropy(paddle.to_tensor([[0.0, -100.0]], "float64"), paddle.to_tensor([[1]], "int64"))
print(loss.numpy())  # expected 100.0; Paddle clips the shifted logit at -64
assert abs(loss.numpy()[0, 0] - 64.0) < 1e-9
