"""Numerics shared by the models, written with `keras.ops`."""

import keras
from keras import ops


def l2_normalize(x, epsilon: float = 1e-8):
    """`x / (||x|| + epsilon)` along the last axis, as in big_vision.

    The norm is taken in float32 (a bfloat16 sum of squares loses too much
    precision); the result has the dtype of `x`, so a mixed-precision model
    keeps its compute dtype end to end.

    Args:
        x: A float tensor or array `[..., D]` (anything with a `dtype`).
        epsilon: Added to the norm, not to its square (big_vision's rule),
            so an all-zero row stays zero.

    Returns:
        A tensor of the shape and dtype of `x` whose rows have unit norm.

    Example:

    ```python
    z = np.array([[3.0, 4.0]], "float32")
    keras_vl.ops.l2_normalize(z)  # [[0.6, 0.8]]
    ```
    """
    dtype = keras.backend.standardize_dtype(x.dtype)
    wide = ops.cast(x, "float32")
    norm = ops.sqrt(ops.sum(ops.square(wide), axis=-1, keepdims=True))
    return ops.cast(wide / (norm + epsilon), dtype)
