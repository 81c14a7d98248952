"""Pre-LayerNorm transformer encoder block with a pluggable MLP."""

import keras

from keras_vl.distribute.compiler import materialize_gradient
from keras_vl.layers.mlp_block import MlpBlock


@keras.saving.register_keras_serializable(package="keras_vl")
class TransformerEncoderBlock(keras.layers.Layer):
    """`x + MHA(LN(x))`, then `x + MLP(LN(x))`.

    The ViT / big_vision encoder block. Attention kernels have the layout of
    `keras.layers.MultiHeadAttention`: query/key/value `[D, H, D // H]`,
    output `[H, D // H, D]`, all with biases; logits are scaled by
    `1 / sqrt(D // H)`.

    Args:
        num_heads: int. Attention heads; must divide the input width.
        mlp_dim: int. Hidden width of the default `MlpBlock`. Ignored when
            `mlp` is given.
        mlp: optional layer mapping `[B, N, D]` to `[B, N, D]` that replaces
            the default MLP (for example a sparse mixture of experts).
        dropout_rate: float. Dropout on both residual branches.
        attention_dropout_rate: float. Dropout on the attention weights.
        layer_norm_epsilon: float. Defaults to 1e-6 as in big_vision
            (Keras' own default is 1e-3).
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).

    Example:

    ```python
    block = keras_vl.layers.TransformerEncoderBlock(num_heads=4, mlp_dim=256)
    y = block(np.zeros((2, 197, 64)))  # (2, 197, 64)
    ```
    """

    def __init__(
        self,
        num_heads: int,
        mlp_dim: int | None = None,
        mlp: keras.layers.Layer | None = None,
        dropout_rate: float = 0.0,
        attention_dropout_rate: float = 0.0,
        layer_norm_epsilon: float = 1e-6,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if mlp is None and mlp_dim is None:
            raise ValueError("Pass either `mlp_dim` or an `mlp` layer.")
        if isinstance(mlp, dict):
            mlp = keras.saving.deserialize_keras_object(mlp)
        self.num_heads = int(num_heads)
        self.mlp_dim = mlp_dim
        self.dropout_rate = float(dropout_rate)
        self.attention_dropout_rate = float(attention_dropout_rate)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.mlp = mlp
        self._custom_mlp = mlp is not None
        self.norm_0 = self._layer_norm("LayerNorm_0")
        self.norm_1 = self._layer_norm("LayerNorm_1")
        self.dropout = keras.layers.Dropout(
            self.dropout_rate, dtype=self.dtype_policy
        )

    def _layer_norm(self, name):
        return keras.layers.LayerNormalization(
            epsilon=self.layer_norm_epsilon, dtype=self.dtype_policy, name=name
        )

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                "`TransformerEncoderBlock` expects tokens [B, N, D]. "
                f"Received shape {input_shape}"
            )
        width = input_shape[-1]
        if width % self.num_heads:
            raise ValueError(
                f"`num_heads` ({self.num_heads}) must divide the token width "
                f"({width})."
            )
        self.attention = keras.layers.MultiHeadAttention(
            num_heads=self.num_heads,
            key_dim=width // self.num_heads,
            dropout=self.attention_dropout_rate,
            kernel_initializer="glorot_uniform",
            dtype=self.dtype_policy,
            name="MultiHeadDotProductAttention_0",
        )
        if self.mlp is None:
            self.mlp = MlpBlock(
                self.mlp_dim,
                dropout_rate=self.dropout_rate,
                dtype=self.dtype_policy,
                name="MlpBlock_0",
            )
        self.norm_0.build(input_shape)
        self.norm_1.build(input_shape)
        self.attention.build(input_shape, input_shape)
        self.mlp.build(input_shape)

    def call(self, x, attention_mask=None, training=None):
        # Keeps XLA:CPU from re-deriving the residual gradient in every
        # block (see `keras_vl.distribute.compiler`).
        x = materialize_gradient(x)
        y = self.norm_0(x)
        y = self.attention(
            y, y, attention_mask=attention_mask, training=training
        )
        x = x + self.dropout(y, training=training)
        y = self.mlp(self.norm_1(x), training=training)
        return x + self.dropout(y, training=training)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "mlp": keras.saving.serialize_keras_object(self.mlp)
                if self._custom_mlp
                else None,
                "dropout_rate": self.dropout_rate,
                "attention_dropout_rate": self.attention_dropout_rate,
                "layer_norm_epsilon": self.layer_norm_epsilon,
            }
        )
        return config


def encoder_layers(
    depth: int,
    num_heads: int,
    mlp_dim: int,
    dropout_rate: float = 0.0,
    dtype=None,
) -> tuple[list[TransformerEncoderBlock], keras.layers.LayerNormalization]:
    """The blocks and final LayerNorm of a big_vision encoder.

    Named `encoderblock_{i}` and `encoder_norm` as in big_vision checkpoints;
    apply the blocks in order, then the norm.

    Args:
        depth: Number of blocks.
        num_heads: Attention heads of each block.
        mlp_dim: Hidden width of each block's MLP.
        dropout_rate: Dropout inside the blocks.
        dtype: Dtype policy.
    """
    blocks = [
        TransformerEncoderBlock(
            num_heads,
            mlp_dim,
            dropout_rate=dropout_rate,
            dtype=dtype,
            name=f"encoderblock_{i}",
        )
        for i in range(depth)
    ]
    norm = keras.layers.LayerNormalization(
        epsilon=1e-6, dtype=dtype, name="encoder_norm"
    )
    return blocks, norm
