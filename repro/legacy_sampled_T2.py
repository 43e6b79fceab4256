import numpy as np, paddle.fluid as fluid
from _legacy_program import run
def build():
    x = fluid.layers.data("x", [6], dtype="float32"); y = fluid.layers.data("y", [2], dtype="int64")
    s = fluid.layers.data("s", [5], dtype="int64"); p = fluid.layers.data("p", [5], dtype="float32")
    return [fluid.layers.sampled_softmax_with_cross_entropy(x, y, 3, num_true=2, use_customized_samples=True,
            customized_samples=s, customized_probabilities=p)]
try:
    run(build, {"x": np.zeros((1, 6), "float32"), "y": np.array([[1, 2]]), "s": np.array([[1, 2, 3, 4, 5]]),
                "p": np.ones((1, 5), "float32")}, None)
except Exception as error:
    print([l for l in str(error).splitlines() if "equal" in l][:1]); assert "should be equal" in str(error)
else:
    raise AssertionError("no error: deviation gone")
