"""big_vision's text tower (`proj/image_text/text_transformer.py`)."""

import keras
from keras import ops
from keras_hub.models import Backbone

from keras_vl.layers.map_head import MAPHead
from keras_vl.layers.position_embedding import PositionEmbedding
from keras_vl.layers.transformer_encoder import (
    TransformerEncoder,
    encoder_size,
)
from keras_vl.models.finite_presets import FinitePresets
from keras_vl.models.parallel_layouts import TRANSFORMER_RULES, ParallelLayouts
from keras_vl.models.rematerializable import Rematerializable

TEXT_POOL_TYPES = ("last", "first", "mean", "max", "map")


@keras.saving.register_keras_serializable(package="keras_vl")
class TextTransformer(
    Rematerializable, FinitePresets, ParallelLayouts, Backbone
):
    """Transformer text encoder of LiT / SigLIP (big_vision semantics).

    Token embedding (not scaled) plus a learned position embedding, the
    same pre-LN encoder blocks as the ViT with **no attention mask**, a
    final LayerNorm, pooling and an optional linear head. With the default
    `pool_type="last"`, inputs are expected to be padded with the EOS token
    (big_vision's "sticky EOS"), so the last position summarises the text.

    Input: int token ids `[B, sequence_length]` (`"token_ids"`).
    Output: `[B, num_classes]` with a head, else `[B, width]`.

    Args:
        vocab_size: int. Size of the token embedding.
        sequence_length: int. Length of the learned position embedding;
            inputs must have exactly this length.
        width: int. Token width.
        depth: int. Number of encoder blocks.
        mlp_dim: int. Hidden width of the MLPs (default `4 * width`).
        num_heads: int. Attention heads; must divide `width`.
        pool_type: `"last"`, `"first"`, `"mean"`, `"max"` or `"map"`.
        num_classes: Optional int: width of a final linear head (the
            projection into the joint embedding space in LiT).
        dropout_rate: float. Dropout inside the encoder blocks.
        mlp_factory: Optional per-block MLP (see `TransformerEncoder`).
        remat: bool. Rematerialise every encoder block: activations are
            recomputed in the backward pass instead of stored (less memory,
            about one more forward pass of compute); outputs and gradients
            are unchanged. Also a settable attribute.
        dtype: Dtype policy of the layers.
        **kwargs: Standard `keras_hub.models.Backbone` arguments.

    Example:

    ```python
    text_tower = keras_vl.models.TextTransformer(
        vocab_size=32_000, sequence_length=16, width=384, depth=12,
        num_heads=6, num_classes=384,
    )
    features = text_tower(np.ones((2, 16), "int32"))  # (2, 384)
    ```
    """

    # Weight layouts of `get_layout_map` (see `parallel_layouts`): the
    # ViT's blocks.
    layout_rules = TRANSFORMER_RULES

    def __init__(
        self,
        vocab_size: int = 32_000,
        sequence_length: int = 64,
        width: int = 512,
        depth: int = 12,
        mlp_dim: int | None = None,
        num_heads: int = 8,
        pool_type: str = "last",
        num_classes: int | None = None,
        dropout_rate: float = 0.0,
        mlp_factory=None,
        remat: bool = False,
        dtype=None,
        **kwargs,
    ):
        if pool_type not in TEXT_POOL_TYPES:
            raise ValueError(
                f"`pool_type` must be one of {TEXT_POOL_TYPES}. "
                f"Received: pool_type={pool_type!r}"
            )
        for name, value in (
            ("vocab_size", vocab_size),
            ("sequence_length", sequence_length),
        ):
            if not isinstance(value, int) or value < 1:
                raise ValueError(
                    f"`{name}` must be a positive int. Received: {value!r}"
                )
        if width % num_heads:
            raise ValueError(
                f"`num_heads` ({num_heads}) must divide `width` ({width})."
            )
        mlp_dim = 4 * width if mlp_dim is None else int(mlp_dim)

        # === Layers ===
        self.token_embedding = keras.layers.Embedding(
            vocab_size,
            width,
            embeddings_initializer=keras.initializers.RandomNormal(
                stddev=width**-0.5
            ),
            dtype=dtype,
            name="Embed_0",
        )
        self.position_embedding = PositionEmbedding(
            "learn", dtype=dtype, name="pos_embedding"
        )
        self.encoder = TransformerEncoder(
            depth,
            num_heads,
            mlp_dim,
            mlp_factory=mlp_factory,
            dropout_rate=dropout_rate,
            remat=remat,
            dtype=dtype,
            name="Encoder_0",
        )
        self.map_head = (
            MAPHead(num_heads, mlp_dim, dtype=dtype, name="MAPHead_0")
            if pool_type == "map"
            else None
        )
        self.head = (
            keras.layers.Dense(num_classes, dtype=dtype, name="head")
            if num_classes
            else None
        )

        # === Functional Model ===
        token_ids = keras.Input(
            shape=(sequence_length,), dtype="int32", name="token_ids"
        )
        x = self.position_embedding(self.token_embedding(token_ids))
        x = self.encoder(x)
        if pool_type == "last":
            x = x[:, -1]
        elif pool_type == "first":
            x = x[:, 0]
        elif pool_type == "mean":
            x = ops.mean(x, axis=1)
        elif pool_type == "max":
            x = ops.max(x, axis=1)
        else:
            x = self.map_head(x)
        if self.head is not None:
            x = self.head(x)
        super().__init__(inputs=token_ids, outputs=x, dtype=dtype, **kwargs)

        # === Config ===
        self.vocab_size = vocab_size
        self.sequence_length = sequence_length
        self.width = width
        self.depth = depth
        self.mlp_dim = mlp_dim
        self.num_heads = num_heads
        self.pool_type = pool_type
        self.num_classes = num_classes
        self.dropout_rate = dropout_rate

    @property
    def output_dim(self) -> int:
        """Width of the tower's output."""
        return self.num_classes or self.width

    @classmethod
    def from_variant(cls, variant: str, **kwargs) -> "TextTransformer":
        """Builds a named size (`"S"`, `"B"`, `"L"`, ..., as for the ViT).

        Args:
            variant: A ViT size name; a `/patch` suffix is ignored.
            **kwargs: Any other constructor argument; explicit values win.
        """
        config = encoder_size(variant)
        config.pop("patch_size", None)
        return cls(**{**config, **kwargs})

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocab_size": self.vocab_size,
                "sequence_length": self.sequence_length,
                "width": self.width,
                "depth": self.depth,
                "mlp_dim": self.mlp_dim,
                "num_heads": self.num_heads,
                "pool_type": self.pool_type,
                "num_classes": self.num_classes,
                "dropout_rate": self.dropout_rate,
                "remat": self.remat,
                "mlp_factory": self.encoder.get_config()["mlp_factory"],
            }
        )
        return config
