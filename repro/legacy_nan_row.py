import numpy as np, paddle.fluid as fluid
from _legacy_program import run
def build():
    x = fluid.layers.data("x", [12], dtype="float32"); y = fluid.layers.data("y", [1], dtype="int64")
    return [fluid.layers.softmax_with_cross_entropy(x, y)]
row = np.linspace(-1.0, 1.0, 12).astype("float32")
for bad in (np.nan, np.inf):
    row[6] = bad
    loss, = run(build, {"x": row[None], "y": np.array([[4]])}, None)
    print(bad, loss)  # expected nan; Paddle 1.8's float32 CPU kernel returns a finite loss
    assert np.isfinite(loss).all()
