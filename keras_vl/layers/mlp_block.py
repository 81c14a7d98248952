"""The transformer feed-forward block."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="keras_vl")
class MlpBlock(keras.layers.Layer):
    """`Dense(mlp_dim) -> GELU (tanh approximation) -> Dense(D)`.

    The output width equals the input width. This is the default MLP of
    `TransformerEncoderBlock`; a sparse mixture of experts can take its place.

    Args:
        mlp_dim: int. Hidden width.
        dropout_rate: float. Dropout after the activation (training only).
        kernel_initializer: Initializer of both kernels.
        bias_initializer: Initializer of both biases. Defaults to a normal
            distribution with std 1e-6, as in big_vision.
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).

    Example:

    ```python
    mlp = keras_vl.layers.MlpBlock(mlp_dim=256)
    y = mlp(np.zeros((2, 10, 64)))  # (2, 10, 64)
    ```
    """

    def __init__(
        self,
        mlp_dim: int,
        dropout_rate: float = 0.0,
        kernel_initializer="glorot_uniform",
        bias_initializer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if int(mlp_dim) < 1:
            raise ValueError(
                f"`mlp_dim` must be >= 1. Received: mlp_dim={mlp_dim!r}"
            )
        if not 0.0 <= float(dropout_rate) < 1.0:
            raise ValueError(
                "`dropout_rate` must be in [0, 1). Received: "
                f"dropout_rate={dropout_rate!r}"
            )
        self.mlp_dim = int(mlp_dim)
        self.dropout_rate = float(dropout_rate)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        if bias_initializer is None:
            bias_initializer = keras.initializers.RandomNormal(stddev=1e-6)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.dropout = keras.layers.Dropout(
            self.dropout_rate, dtype=self.dtype_policy
        )

    def _dense(self, units, name):
        return keras.layers.Dense(
            units,
            kernel_initializer=self.kernel_initializer,
            bias_initializer=self.bias_initializer,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        width = input_shape[-1]
        self.dense_0 = self._dense(self.mlp_dim, "Dense_0")
        self.dense_0.build(input_shape)
        self.dense_1 = self._dense(width, "Dense_1")
        self.dense_1.build((*input_shape[:-1], self.mlp_dim))

    def call(self, inputs, training=None):
        hidden = ops.gelu(self.dense_0(inputs), approximate=True)
        hidden = self.dropout(hidden, training=training)
        return self.dense_1(hidden)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "mlp_dim": self.mlp_dim,
                "dropout_rate": self.dropout_rate,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
            }
        )
        return config
