"""Low-level helpers shared by layers and models.

The bottom of the library: it imports only Keras and NumPy, never a
keras_vl layer or model.
"""

from keras_vl.ops.checks import pair
from keras_vl.ops.numerics import l2_normalize, layer_norm

__all__ = ["l2_normalize", "layer_norm", "pair"]
