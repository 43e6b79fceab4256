# paddle.nn.functional.cross_entropy documents ignore_index as "a target value that is ignored and does not
# contribute to the loss".  With reduction='mean', no weight and a negative ignore_index (the default -100),
# the mean still divides by every position, ignored ones included; with ignore_index >= 0 (or with weights)
# it divides by the non-ignored positions.  Same labels, same ignored positions, two answers.
import numpy as np, paddle
F = paddle.nn.functional
x = paddle.to_tensor(np.array([[2.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, 3.0], [1.0, 1.0, 1.0]]))
y = np.array([0, 1, 2, 1])
ignored = np.array([False, False, True, True])
losses = F.cross_entropy(x, paddle.to_tensor(y), reduction="none").numpy()
kept_mean = losses[~ignored].mean()
default = F.cross_entropy(x, paddle.to_tensor(np.where(ignored, -100, y))).item()  # ignore_index=-100
three = F.cross_entropy(x, paddle.to_tensor(np.where(ignored, 3, y)), ignore_index=3).item()
print("mean over the kept positions", kept_mean, "| ignore_index=-100:", default, "| ignore_index=3:", three)
assert np.isclose(three, kept_mean)
assert np.isclose(default, losses[~ignored].sum() / len(y))  # divided by all 4 positions
