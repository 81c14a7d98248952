"""Root-mean-square layer normalisation (T5's layer norm)."""

import keras
from keras import ops


def rms_norm(x, scale, epsilon: float, dtype: str):
    """`RMSNorm`'s computation with a given float32 `scale`: for code that
    fetches the scale once and normalises many times (token-by-token
    decoding).

    Args:
        x: Inputs `[..., D]`.
        scale: Float32 scale `[D]`.
        epsilon: Added to the mean square.
        dtype: Dtype of the result.

    Returns:
        The normalised `x`, in `dtype`.

    Example:

    ```python
    y = rms_norm(np.ones((2, 4)), np.ones(4, "float32"), 1e-6, "float32")
    ```
    """
    # Casts only where the dtype changes: each is a call on eager backends.
    if (
        not ops.is_tensor(x)
        or keras.backend.standardize_dtype(x.dtype) != "float32"
    ):
        x = ops.cast(x, "float32")
    mean_square = ops.mean(x * x, axis=-1, keepdims=True)
    x = x * ops.rsqrt(mean_square + epsilon) * scale
    return x if dtype == "float32" else ops.cast(x, dtype)


@keras.saving.register_keras_serializable(package="keras_vl")
class RMSNorm(keras.layers.Layer):
    """Scales each token by the inverse root mean square of its features.

    `y = x / sqrt(mean(x ** 2) + epsilon) * scale`: no mean is subtracted
    and there is no bias (T5 and mT5's layer norm). The statistics are
    always computed in float32, whatever the layer's compute dtype, and the
    result is cast back to it, so half-precision inputs keep their range.

    Args:
        epsilon: Added to the mean square before the square root.
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).

    Example:

    ```python
    norm = keras_vl.layers.RMSNorm(epsilon=1e-6)
    y = norm(np.random.normal(size=(2, 5, 64)))  # (2, 5, 64)
    ```
    """

    def __init__(self, epsilon: float = 1e-6, **kwargs):
        super().__init__(**kwargs)
        if not epsilon > 0:
            raise ValueError(
                f"`epsilon` must be positive. Received: epsilon={epsilon}"
            )
        self.epsilon = float(epsilon)

    def build(self, input_shape):
        # Read in float32 even inside a mixed-precision call.
        self.scale = self.add_weight(
            name="scale",
            shape=(input_shape[-1],),
            initializer="ones",
            autocast=False,
        )

    def call(self, inputs):
        return rms_norm(
            inputs,
            ops.cast(self.scale, "float32"),
            self.epsilon,
            self.compute_dtype,
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["epsilon"] = self.epsilon
        return config
