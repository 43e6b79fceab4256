# paddle.nn.functional.cross_entropy documents for reduction='none': "If soft_label = False, the dimension of
# return value is the same with label".  With label_smoothing > 0 and class-index labels of shape [N] it
# returns [N, 1]: the labels become one-hot rows internally and the size-1 class axis is kept.
import numpy as np, paddle
F = paddle.nn.functional
x = paddle.to_tensor(np.zeros((3, 4))); y = paddle.to_tensor(np.array([0, 1, 2]))
plain = F.cross_entropy(x, y, reduction="none")
smoothed = F.cross_entropy(x, y, label_smoothing=0.1, reduction="none")
print("label", y.shape, "| loss without smoothing", plain.shape, "| with smoothing", smoothed.shape)
assert list(plain.shape) == [3] and list(smoothed.shape) == [3, 1]
