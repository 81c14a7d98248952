"""Pre-LayerNorm transformer encoder block with a pluggable MLP."""

import inspect

import keras

from keras_vl.distribute.compiler import materialize_gradient
from keras_vl.layers.layer_norm import LayerNorm
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
            the default MLP (for example a sparse mixture of experts). If
            its `call` takes a `side_input` argument, the block passes its
            own `side_input` on to it.
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
        return LayerNorm(
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
        # Only MLPs that declare `side_input` (e.g. a router that needs each
        # token's modality) receive it.
        self._mlp_takes_side_input = "side_input" in (
            inspect.signature(self.mlp.call).parameters
        )
        self.norm_0.build(input_shape)
        self.norm_1.build(input_shape)
        self.attention.build(input_shape, input_shape)
        if not self.mlp.built:  # A deserialized MLP arrives built.
            self.mlp.build(input_shape)

    def call(self, x, side_input=None, attention_mask=None, training=None):
        """Runs the block.

        Args:
            x: Tokens `[B, N, D]`.
            side_input: Optional per-token data for the MLP (for example a
                modality id or a padding mask `[B, N]`); ignored unless the
                MLP's `call` takes `side_input`.
            attention_mask: Optional boolean `[B, N, N]` (or broadcastable)
                mask; `True` = may attend.
            training: Whether dropout (and noisy routing) is active.
        """
        # Keeps XLA:CPU from re-deriving the residual gradient in every
        # block (see `keras_vl.distribute.compiler`).
        x = materialize_gradient(x)
        y = self.norm_0(x)
        y = self.attention(
            y, y, attention_mask=attention_mask, training=training
        )
        x = x + self.dropout(y, training=training)
        y = self.norm_1(x)
        if self._mlp_takes_side_input:
            y = self.mlp(y, side_input=side_input, training=training)
        else:
            y = self.mlp(y, training=training)
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
