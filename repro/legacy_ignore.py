import numpy as np, paddle.fluid as fluid
from _legacy_program import run
def build():
    x = fluid.layers.data("x", [3], dtype="float64"); x.stop_gradient = False
    y = fluid.layers.data("y", [1], dtype="int64")
    loss = fluid.layers.reduce_sum(fluid.layers.softmax_with_cross_entropy(x, y, ignore_index=2))
    fluid.backward.append_backward(loss)
    return [loss, x.name + "@GRAD"]
loss, grad = run(build, {"x": np.zeros((2, 3)), "y": np.array([[2], [0]])}, None)
print(loss, grad)  # row 0 is ignored: its gradient must be 0; paddle 1.8 CPU gives [1/3, 1/3, -2/3]
assert abs(grad[0, 2] + 2 / 3) < 1e-12
