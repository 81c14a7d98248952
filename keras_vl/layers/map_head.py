"""Multihead attention pooling (MAP)."""

import keras
from keras import ops

from keras_vl.layers.layer_norm import LayerNorm
from keras_vl.layers.mlp_block import MlpBlock


@keras.saving.register_keras_serializable(package="keras_vl")
class MAPHead(keras.layers.Layer):
    """Pools `[B, N, D]` tokens into `[B, D]` with a learned attention probe.

    A learned probe token attends over the tokens (query = probe, keys =
    values = tokens); then `y = attn + MLP(LayerNorm(attn))` and the probe
    position is returned.

    Args:
        num_heads: int. Attention heads; must divide the token width.
        mlp_dim: int. Hidden width of the MLP.
        layer_norm_epsilon: float. Defaults to 1e-6 as in big_vision.
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).

    Example:

    ```python
    pool = keras_vl.layers.MAPHead(num_heads=4, mlp_dim=256)
    pooled = pool(np.zeros((2, 196, 64)))  # (2, 64)
    ```
    """

    def __init__(
        self,
        num_heads: int,
        mlp_dim: int,
        layer_norm_epsilon: float = 1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (("num_heads", num_heads), ("mlp_dim", mlp_dim)):
            if int(value) < 1:
                raise ValueError(
                    f"`{name}` must be >= 1. Received: {name}={value!r}"
                )
        self.num_heads = int(num_heads)
        self.mlp_dim = int(mlp_dim)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.norm = LayerNorm(
            epsilon=self.layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="LayerNorm_0",
        )
        self.mlp = MlpBlock(
            self.mlp_dim, dtype=self.dtype_policy, name="MlpBlock_0"
        )

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                f"`MAPHead` expects tokens [B, N, D]. Received {input_shape}"
            )
        width = input_shape[-1]
        if width % self.num_heads:
            raise ValueError(
                f"`num_heads` ({self.num_heads}) must divide the token width "
                f"({width})."
            )
        self.probe = self.add_weight(
            name="probe",
            shape=(1, 1, width),
            initializer="glorot_uniform",
        )
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=width // self.num_heads,
            kernel_initializer="glorot_uniform",
            dtype=self.dtype_policy,
            name="MultiHeadDotProductAttention_0",
        )
        probe_shape = (input_shape[0], 1, width)
        self.attention.build(probe_shape, input_shape)
        self.norm.build(probe_shape)
        self.mlp.build(probe_shape)

    def call(self, tokens):
        batch_size = ops.shape(tokens)[0]
        probe = ops.cast(self.probe, tokens.dtype)
        probe = ops.broadcast_to(probe, (batch_size, 1, tokens.shape[-1]))
        x = self.attention(probe, tokens)
        x = x + self.mlp(self.norm(x))
        return x[:, 0]

    def compute_output_shape(self, input_shape):
        input_shape = tuple(input_shape)
        return (input_shape[0], input_shape[-1])

    def compute_output_spec(self, tokens):
        # Shape only: NumPy inputs work as well as symbolic ones.
        shape = self.compute_output_shape(tuple(tokens.shape))
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config
