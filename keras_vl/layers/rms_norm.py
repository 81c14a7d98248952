"""Root-mean-square layer normalisation (T5's layer norm)."""

import keras
from keras import ops


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
        x = ops.cast(inputs, "float32")
        mean_square = ops.mean(ops.square(x), axis=-1, keepdims=True)
        x = x * ops.rsqrt(mean_square + self.epsilon)
        x = x * ops.cast(self.scale, "float32")
        return ops.cast(x, self.compute_dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config["epsilon"] = self.epsilon
        return config
