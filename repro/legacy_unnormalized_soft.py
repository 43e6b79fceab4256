import numpy as np, paddle.fluid as fluid
from _legacy_program import run
def build():
    x = fluid.layers.data("x", [2], dtype="float64"); x.stop_gradient = False
    y = fluid.layers.data("y", [2], dtype="float64")
    loss = fluid.layers.softmax_with_cross_entropy(x, y, soft_label=True)
    return [loss] + fluid.gradients([fluid.layers.reduce_sum(loss)], [x])
loss, grad = run(build, {"x": np.zeros((1, 2)), "y": np.ones((1, 2))}, None)
print(loss, grad)  # loss 2*log(2) is right; the gradient should be softmax*sum(label) - label = [0, 0]
assert np.allclose(grad, [[-0.5, -0.5]])  # Paddle 1.8 returns softmax - label
