import numpy as np, paddle.fluid as fluid
from _legacy_program import run
def build():
    x = fluid.layers.data("x", [5], dtype="float64"); y = fluid.layers.data("y", [1], dtype="int64")
    s = fluid.layers.data("s", [3], dtype="int64"); p = fluid.layers.data("p", [3], dtype="float64")
    return [fluid.layers.sampled_softmax_with_cross_entropy(x, y, 2, use_customized_samples=True,
            customized_samples=s, customized_probabilities=p)]
try:
    run(build, {"x": np.zeros((1, 5)), "y": np.array([[1]]), "s": np.array([[1, 2, 3]]), "p": np.ones((1, 3))}, None)
except Exception as error:
    print([l for l in str(error).splitlines() if "wrong type" in l][:1])
    assert "holds float, but desires to be double" in str(error)  # the error text known_deviations.toml names
else:
    raise AssertionError("no error: deviation gone")
