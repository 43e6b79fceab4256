import numpy as np, paddle, paddle.nn.functional as F
x = paddle.to_tensor(np.zeros((2, 3, 4)), "float64"); y = paddle.to_tensor(np.full((2, 3, 4), 1 / 3), "float64")
try:
    F.softmax_with_cross_entropy(x, y, soft_label=True, numeric_stable_mode=False, axis=1)
except ValueError as error:
    print(error); assert "can only be -1" in str(error)
else:
    raise AssertionError("no error: deviation gone")
