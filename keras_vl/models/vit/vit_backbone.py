"""Vision Transformer backbone (big_vision's `vit.py` semantics)."""

import keras
from keras_hub.models import Backbone

from keras_vl.layers.class_token import ClassToken
from keras_vl.layers.map_head import MAPHead
from keras_vl.layers.patch_embedding import PatchEmbedding
from keras_vl.layers.position_embedding import POSEMB_TYPES, PositionEmbedding
from keras_vl.layers.transformer_encoder import (
    TransformerEncoder,
    encoder_size,
)
from keras_vl.models.finite_presets import FinitePresets
from keras_vl.models.parallel_layouts import TRANSFORMER_RULES, ParallelLayouts
from keras_vl.models.rematerializable import Rematerializable
from keras_vl.ops import pair

POOL_TYPES = ("gap", "map", "tok", "0", "none")


@keras.saving.register_keras_serializable(package="keras_vl")
class ViTBackbone(Rematerializable, FinitePresets, ParallelLayouts, Backbone):
    """Vision Transformer, faithful to big_vision's `models/vit.py`.

    Images `[B, H, W, C]` are cut into patches by a strided convolution, a
    position embedding is added (before any class token), a stack of pre-LN
    encoder blocks runs, and a final LayerNorm (`encoder_norm`) follows
    (together a `TransformerEncoder`, named `Transformer` as in big_vision).
    The tokens are then pooled (`pool_type`), optionally passed through a
    `tanh` pre-logits layer (`rep_size`) and a linear head (`num_classes`).
    LayerNorm epsilon is 1e-6 and GELU uses the tanh approximation, as in
    big_vision, so converted checkpoints reproduce its outputs.

    The model's output is the head's logits when `num_classes` is set, else
    the pooled (pre-logits) features `[B, D]`, or all tokens `[B, N, D]`
    with `pool_type="none"`.

    Args:
        image_size: int or `(height, width)`. Input resolution; must be a
            multiple of the patch size.
        patch_size: int or `(height, width)`.
        width: int. Token width `D`.
        depth: int. Number of encoder blocks.
        mlp_dim: int. Hidden width of the MLPs. Defaults to `4 * width`.
        num_heads: int. Attention heads; must divide `width`.
        posemb: `"learn"` or `"sincos2d"`.
        pool_type: `"gap"` (mean of tokens), `"map"` (attention-probe
            pooling), `"tok"` (a learned class token), `"0"` (first token) or
            `"none"` (return every token).
        rep_size: `False`, `True` (= `width`) or an int: width of a
            `Dense + tanh` pre-logits layer after pooling.
        num_classes: optional int. Width of a final linear head.
        head_zeroinit: bool. Initialise the head's kernel and bias to zero
            (big_vision's default for classifiers; contrastive models use
            `False`).
        dropout_rate: float. Dropout on the token input and in every block.
        mlp_factory: Optional per-block MLP (see `TransformerEncoder`): a
            callable `i -> layer or None` or a list with an entry per block,
            e.g. a sparse mixture of experts in every other block.
        num_channels: int. Input channels.
        remat: bool. Rematerialise every encoder block: activations are
            recomputed in the backward pass instead of stored (less memory,
            about one more forward pass of compute); outputs and gradients
            are unchanged. Also a settable attribute.
        dtype: Dtype policy of the layers, e.g. `"mixed_bfloat16"`.
        **kwargs: Standard `keras_hub.models.Backbone` arguments.

    Example:

    ```python
    vit = keras_vl.models.ViTBackbone.from_variant(
        "S/16", image_size=224, pool_type="map"
    )
    features = vit(np.zeros((2, 224, 224, 3)))  # (2, 384)

    tiny = keras_vl.models.ViTBackbone(
        image_size=64, patch_size=16, width=64, depth=2, num_heads=4,
        num_classes=10, head_zeroinit=False,
    )
    tiny.save_to_preset("./tiny_vit")
    restored = keras_vl.models.ViTBackbone.from_preset("./tiny_vit")
    ```
    """

    # Weight layouts of `get_layout_map` (see `parallel_layouts`): heads,
    # MLP units and, with sparse MLPs, experts split over the model axis.
    layout_rules = TRANSFORMER_RULES

    def __init__(
        self,
        image_size=224,
        patch_size=16,
        width: int = 768,
        depth: int = 12,
        mlp_dim: int | None = None,
        num_heads: int = 12,
        posemb: str = "learn",
        pool_type: str = "gap",
        rep_size: bool | int = False,
        num_classes: int | None = None,
        head_zeroinit: bool = True,
        dropout_rate: float = 0.0,
        num_channels: int = 3,
        mlp_factory=None,
        remat: bool = False,
        dtype=None,
        **kwargs,
    ):
        image_size = pair(image_size, "image_size")
        patch_size = pair(patch_size, "patch_size")
        for size, patch in zip(image_size, patch_size, strict=True):
            if size % patch:
                raise ValueError(
                    f"`image_size` {image_size} must be a multiple of "
                    f"`patch_size` {patch_size}."
                )
        if pool_type not in POOL_TYPES:
            raise ValueError(
                f"`pool_type` must be one of {POOL_TYPES}. "
                f"Received: pool_type={pool_type!r}"
            )
        if posemb not in POSEMB_TYPES:
            raise ValueError(
                f"`posemb` must be one of {POSEMB_TYPES}. "
                f"Received: posemb={posemb!r}"
            )
        if width % num_heads:
            raise ValueError(
                f"`num_heads` ({num_heads}) must divide `width` ({width})."
            )
        mlp_dim = 4 * width if mlp_dim is None else int(mlp_dim)
        rep_width = width if rep_size is True else int(rep_size or 0)

        # === Layers ===
        self.patch_embedding = PatchEmbedding(
            width, patch_size, dtype=dtype, name="embedding"
        )
        self.position_embedding = PositionEmbedding(
            posemb, dtype=dtype, name="pos_embedding"
        )
        self.flatten = keras.layers.Reshape((-1, width), dtype=dtype)
        self.class_token = (
            ClassToken(dtype=dtype, name="cls") if pool_type == "tok" else None
        )
        self.dropout = keras.layers.Dropout(dropout_rate, dtype=dtype)
        self.encoder = TransformerEncoder(
            depth,
            num_heads,
            mlp_dim,
            mlp_factory=mlp_factory,
            dropout_rate=dropout_rate,
            remat=remat,
            dtype=dtype,
            name="Transformer",
        )
        self.map_head = (
            MAPHead(num_heads, mlp_dim, dtype=dtype, name="MAPHead_0")
            if pool_type == "map"
            else None
        )
        self.pre_logits = (
            keras.layers.Dense(
                rep_width, activation="tanh", dtype=dtype, name="pre_logits"
            )
            if rep_width
            else None
        )
        head_init = "zeros" if head_zeroinit else "glorot_uniform"
        self.head = (
            keras.layers.Dense(
                num_classes,
                kernel_initializer=head_init,
                dtype=dtype,
                name="head",
            )
            if num_classes
            else None
        )

        # === Functional Model ===
        images = keras.Input(shape=(*image_size, num_channels), name="images")
        grid = self.patch_embedding(images)
        tokens = self.flatten(self.position_embedding(grid))
        if self.class_token is not None:
            tokens = self.class_token(tokens)
        tokens = self.dropout(tokens)
        encoded = self.encoder(tokens)
        if pool_type == "gap":
            x = keras.ops.mean(encoded, axis=1)
        elif pool_type == "map":
            x = self.map_head(encoded)
        elif pool_type in ("tok", "0"):
            x = encoded[:, 0]
        else:
            x = encoded
        if self.pre_logits is not None:
            x = self.pre_logits(x)
        if self.head is not None:
            x = self.head(x)
        super().__init__(inputs=images, outputs=x, dtype=dtype, **kwargs)

        # === Config ===
        self.image_size = image_size
        self.patch_size = patch_size
        self.width = width
        self.depth = depth
        self.mlp_dim = mlp_dim
        self.num_heads = num_heads
        self.posemb = posemb
        self.pool_type = pool_type
        self.rep_size = rep_size
        self.num_classes = num_classes
        self.head_zeroinit = head_zeroinit
        self.dropout_rate = dropout_rate
        self.num_channels = num_channels

    @property
    def grid_size(self) -> tuple[int, int]:
        """Patches along height and width."""
        return tuple(
            s // p
            for s, p in zip(self.image_size, self.patch_size, strict=True)
        )

    @property
    def output_dim(self) -> int:
        """Width of the backbone's output features."""
        if self.num_classes:
            return self.num_classes
        if self.rep_size:
            return self.width if self.rep_size is True else self.rep_size
        return self.width

    @staticmethod
    def variant_config(variant: str) -> dict:
        """Constructor arguments of a named size, e.g. `"B/16"`.

        Args:
            variant: `"<size>/<patch>"` with size one of `mu, Ti, S, M, B, L,
                So400m, H, g, e`; the `/<patch>` part may be omitted.

        Returns:
            A dict with `width`, `depth`, `mlp_dim`, `num_heads` and, when
            the variant names one, `patch_size`.
        """
        return encoder_size(variant)

    @classmethod
    def from_variant(cls, variant: str, **kwargs) -> "ViTBackbone":
        """Builds a named ViT size, e.g. `"B/16"`, `"So400m/14"`, `"mu/8"`.

        Args:
            variant: See `variant_config`.
            **kwargs: Any other constructor argument (`image_size`,
                `pool_type`, `num_classes`, ...); explicit values win.
        """
        return cls(**{**cls.variant_config(variant), **kwargs})

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "patch_size": self.patch_size,
                "width": self.width,
                "depth": self.depth,
                "mlp_dim": self.mlp_dim,
                "num_heads": self.num_heads,
                "posemb": self.posemb,
                "pool_type": self.pool_type,
                "rep_size": self.rep_size,
                "num_classes": self.num_classes,
                "head_zeroinit": self.head_zeroinit,
                "dropout_rate": self.dropout_rate,
                "num_channels": self.num_channels,
                "remat": self.remat,
                "mlp_factory": self.encoder.get_config()["mlp_factory"],
            }
        )
        return config
