# SparseCategoricalCrossentropy(from_logits=False): Keras documents probabilities in and a clip at
# keras.backend.epsilon() (1e-7), not where the clip sits. The TensorFlow backend clips p to [eps, 1 - eps] and
# then renormalises (the log of the clipped p into a softmax: keras/src/backend/tensorflow/nn.py); the JAX and
# PyTorch backends renormalise first and clip after (keras/src/backend/{jax,torch}/nn.py). On a row with an
# entry below eps the two give different losses. The importing script sets KERAS_BACKEND first.
import numpy as np
import keras

EPS = 1e-7
p = np.array([[1e-9, 0.375, 0.25, 0.125]])  # sums to 0.75 + 1e-9
y = np.array([0])
clip_then_renormalise = -np.log(EPS / (EPS + 0.375 + 0.25 + 0.125))  # the TensorFlow backend's
renormalise_then_clip = -np.log(EPS)  # 1e-9 / 0.75 is below eps either way


def show():
    loss = keras.losses.SparseCategoricalCrossentropy(from_logits=False, reduction=None, dtype="float64")
    got = float(keras.ops.convert_to_numpy(loss(keras.ops.convert_to_tensor(y), keras.ops.convert_to_tensor(p)))[0])
    print("keras %s on %s: %r; clip then renormalise (TensorFlow backend) %r; renormalise then clip %r"
          % (keras.__version__, keras.backend.backend(), got, clip_then_renormalise, renormalise_then_clip))
    return got
