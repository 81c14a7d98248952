"""A learned token prepended to a sequence."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_vl")
class ClassToken(keras.layers.Layer):
    """Prepends one learned token (zero-initialised) to `[B, N, D]` tokens.

    Args:
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).

    Example:

    ```python
    tokens = keras_vl.layers.ClassToken()(np.ones((2, 196, 64)))
    # (2, 197, 64); tokens[:, 0] is the class token
    ```
    """

    def build(self, input_shape):
        self.token = self.add_weight(
            name="token", shape=(1, 1, input_shape[-1]), initializer="zeros"
        )

    def call(self, tokens):
        batch_size = ops.shape(tokens)[0]
        token = ops.cast(self.token, tokens.dtype)
        token = ops.broadcast_to(token, (batch_size, 1, tokens.shape[-1]))
        return ops.concatenate([token, tokens], axis=1)

    def compute_output_shape(self, input_shape):
        batch, length, dim = tuple(input_shape)
        return (batch, None if length is None else length + 1, dim)

    def compute_output_spec(self, tokens):
        # Shape only: NumPy inputs work as well as symbolic ones.
        shape = self.compute_output_shape(tuple(tokens.shape))
        return keras.KerasTensor(shape, dtype=self.compute_dtype)
