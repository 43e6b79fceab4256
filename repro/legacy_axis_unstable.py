import numpy as np, paddle.fluid as fluid
from _legacy_program import run
def build():
    x = fluid.layers.data("x", [3, 4], dtype="float64"); y = fluid.layers.data("y", [3, 4], dtype="float64")
    return [fluid.layers.softmax_with_cross_entropy(x, y, soft_label=True, numeric_stable_mode=False, axis=1)]
try:
    run(build, {"x": np.zeros((2, 3, 4)), "y": np.full((2, 3, 4), 1 / 3)}, None)
except Exception as error:
    print([l for l in str(error).splitlines() if "can only be -1" in l][:1]); assert "can only be -1" in str(error)
else:
    raise AssertionError("no error: deviation gone")
