# Keras 3 on the torch backend renormalises probabilities before the epsilon clip, the TensorFlow backend after
# it (see _keras_sparse_probabilities.py).
import os
os.environ["KERAS_BACKEND"] = "torch"
import numpy as np
from _keras_sparse_probabilities import clip_then_renormalise, renormalise_then_clip, show

got = show()
assert np.isclose(got, renormalise_then_clip, rtol=1e-12) and not np.isclose(got, clip_then_renormalise, rtol=1e-3)
