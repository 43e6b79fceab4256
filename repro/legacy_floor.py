import numpy as np, paddle.fluid as fluid
from _legacy_program import run
def build():
    x = fluid.layers.data("x", [2], dtype="float64"); y = fluid.layers.data("y", [1], dtype="int64")
    return [fluid.layers.softmax_with_cross_entropy(x, y)]
loss, = run(build, {"x": np.array([[0.0, -100.0]]), "y": np.array([[1]])}, None)
print(loss)  # expected 100; paddle 1.8 clips at -64
assert abs(loss[0, 0] - 64.0) < 1e-9
