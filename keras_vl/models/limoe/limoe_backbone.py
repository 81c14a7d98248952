"""LIMoE: one sparse mixture-of-experts transformer for images and text."""

import keras
from keras import ops
from keras_hub.models import Backbone

from keras_vl.layers.map_head import MAPHead
from keras_vl.layers.patch_embedding import PatchEmbedding
from keras_vl.layers.position_embedding import PositionEmbedding
from keras_vl.layers.transformer_encoder import TransformerEncoder
from keras_vl.models.finite_presets import FinitePresets
from keras_vl.models.limoe.limoe_moe_mlp import IMAGE, TEXT, LIMoEMoeMlp
from keras_vl.models.parallel_layouts import TRANSFORMER_RULES, ParallelLayouts
from keras_vl.models.rematerializable import Rematerializable
from keras_vl.ops import l2_normalize, pair

IMAGE_POOL_TYPES = ("map", "gap")
TEXT_POOL_TYPES = ("last", "first", "gap")


def moe_layer_indices(moe_layers, depth: int) -> list[int]:
    """The 0-based blocks that get a sparse MLP.

    Args:
        moe_layers: `"every_<n>"` (blocks `n-1, 2n-1, ...`; V-MoE's "every
            2" is blocks 1, 3, 5, ...), `"last_<n>"` (the last `n` blocks),
            or an explicit list of block indices.
        depth: int. Number of blocks.

    Returns:
        The sorted block indices.

    Example:

    ```python
    moe_layer_indices("every_2", 6)  # [1, 3, 5]
    moe_layer_indices("last_2", 6)  # [4, 5]
    moe_layer_indices([0, 5], 6)  # [0, 5]
    ```
    """
    if isinstance(moe_layers, str):
        kind, _, count = moe_layers.partition("_")
        if kind in ("every", "last") and count.isdigit() and int(count) > 0:
            n = int(count)
            if kind == "every":
                return [i for i in range(depth) if (i + 1) % n == 0]
            if n <= depth:
                return list(range(depth - n, depth))
        raise ValueError(
            "`moe_layers` must be 'every_<n>', 'last_<n>' (n >= 1, and "
            f"n <= depth={depth} for 'last') or a list of block indices. "
            f"Received: moe_layers={moe_layers!r}"
        )
    if isinstance(moe_layers, list | tuple):
        indices = sorted(set(moe_layers))
        if len(indices) != len(moe_layers) or not all(
            isinstance(i, int) and not isinstance(i, bool) and 0 <= i < depth
            for i in indices
        ):
            raise ValueError(
                "A list `moe_layers` must hold distinct block indices in "
                f"[0, {depth}). Received: moe_layers={moe_layers!r}"
            )
        return indices
    raise ValueError(
        "`moe_layers` must be 'every_<n>', 'last_<n>' or a list of block "
        f"indices. Received: moe_layers={moe_layers!r}"
    )


@keras.saving.register_keras_serializable(package="keras_vl")
class LIMoEBackbone(Rematerializable, FinitePresets, ParallelLayouts, Backbone):
    """LIMoE's shared transformer (Mustafa et al., NeurIPS 2022).

    Images are cut into patches (`PatchEmbedding`) and texts embedded
    (`Embedding`), each with its own learned position embedding; ONE
    `TransformerEncoder`, with a `LIMoEMoeMlp` in the blocks chosen by
    `moe_layers`, then encodes both; each modality has its own pooling and
    linear head, and the outputs are L2-normalised as `z / (||z|| + 1e-8)`.

    Joint routing without cross-attention. The image tokens `[B, Ni, D]`
    and text tokens `[B, L, D]` of a batch are concatenated into one
    sequence `[B, Ni + L, D]` for the encoder, so that the sparse MLPs
    route both modalities in the same groups and they compete for expert
    capacity (LIMoE's joint routing, what makes modality balance a
    problem). Attention, however, must see one modality only, as in LIMoE,
    where each modality is encoded separately: a block-diagonal attention
    mask lets a token attend only to tokens of its own modality (and never
    to text padding). With enough capacity, an image's embedding therefore
    does not depend on the texts of the batch. Every token carries its
    modality id (0 image, 1 text) and its padding mask to the sparse MLPs
    as the encoder's side input. `joint_routing=False` routes images and
    texts in separate groups instead.

    Pooling defaults follow big_vision's image-text models: a MAP head for
    images (`image_pool="map"`, or `"gap"`), and for texts the last
    non-padding token (`text_pool="last"`, the end token of a tokenizer's
    packed sequence; or `"first"`, or `"gap"` over the real tokens).

    Inputs (a dict):
        images: float `[B, H, W, C]` in `[-1, 1]`.
        token_ids: int `[B, sequence_length]`.
        padding_mask: bool `[B, sequence_length]`, True for real tokens.

    Outputs (a dict): `image_embeddings` and `text_embeddings`,
    `[B, out_dim]`.

    Args:
        vocabulary_size: int. Size of the text vocabulary.
        sequence_length: int. Text length `L`.
        image_size: int or `(height, width)`; a multiple of the patch size.
        patch_size: int or `(height, width)`.
        width: int. Token width `D`.
        depth: int. Number of encoder blocks.
        num_heads: int. Attention heads; must divide `width`.
        mlp_dim: int. Hidden width of dense MLPs and experts; defaults to
            `4 * width`.
        out_dim: int. Embedding width of both heads.
        num_experts: int. Experts per sparse MLP.
        moe_layers: Which blocks are sparse: `"every_2"` (blocks 1, 3, 5,
            ..., V-MoE's and LIMoE's default), `"every_<n>"`, `"last_<n>"`
            or a list of 0-based block indices.
        num_selected_experts: int. Experts per token `k` (1 in LIMoE).
        capacity_factor: float. Expert capacity relative to `k * S / E`.
        batch_priority: bool. Batch Priority Routing (on in LIMoE).
        group_size: Optional int. Tokens per routing group; defaults to the
            tokens of one example, `Ni + L` (`Ni` alone with
            `joint_routing=False`).
        joint_routing: bool. Route image and text tokens in shared groups
            (True) or each modality in its own groups.
        local_entropy_weight: float or `(image, text)`: weights of LIMoE's
            local entropy loss.
        global_entropy_weight: float or `(image, text)`: weights of LIMoE's
            thresholded global entropy loss.
        entropy_threshold: float or `(image, text)` thresholds `tau` in
            `[0, ln num_experts]`; None = `ln(num_experts) / 2`.

            Both weights default to 0, plain V-MoE routing, rather than to
            a recipe: the right weights and thresholds depend on the
            number of experts and on how unbalanced the two modalities'
            token counts are, so they are chosen with the training setup.
            `guides/limoe_modality_experts.py` trains with and without
            them (local loss on image tokens, thresholded global loss on
            text tokens) and compares the routing.
        moe_kwargs: Optional dict of further `SparseMoeMlp` arguments
            (`noise_std`, `importance_loss_weight`, `load_loss_weight`, ...).
        image_pool: `"map"` or `"gap"`.
        text_pool: `"last"`, `"first"` or `"gap"`.
        dropout_rate: float. Dropout in the encoder blocks.
        num_channels: int. Image channels.
        remat: bool. Rematerialise every encoder block: activations are
            recomputed in the backward pass instead of stored (less memory,
            about one more forward pass of compute); outputs and gradients
            are unchanged. Also a settable attribute.
        dtype: Dtype policy of the layers.
        **kwargs: Standard `keras_hub.models.Backbone` arguments.

    Example:

    ```python
    backbone = keras_vl.models.LIMoEBackbone(
        vocabulary_size=32000, sequence_length=16, image_size=224,
        patch_size=16, width=768, depth=12, num_heads=12, out_dim=768,
        num_experts=8,
    )
    outputs = backbone({
        "images": np.zeros((2, 224, 224, 3)),
        "token_ids": np.zeros((2, 16), "int32"),
        "padding_mask": np.ones((2, 16), bool),
    })  # {"image_embeddings": (2, 768), "text_embeddings": (2, 768)}
    ```
    """

    # Weight layouts of `get_layout_map` (see `parallel_layouts`): heads,
    # MLP units and the sparse MLPs' experts split over the model axis.
    layout_rules = TRANSFORMER_RULES

    def __init__(
        self,
        vocabulary_size: int,
        sequence_length: int,
        image_size=224,
        patch_size=16,
        width: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_dim: int | None = None,
        out_dim: int = 768,
        num_experts: int = 8,
        moe_layers="every_2",
        num_selected_experts: int = 1,
        capacity_factor: float = 1.0,
        batch_priority: bool = True,
        group_size: int | None = None,
        joint_routing: bool = True,
        local_entropy_weight=0.0,
        global_entropy_weight=0.0,
        entropy_threshold=None,
        moe_kwargs: dict | None = None,
        image_pool: str = "map",
        text_pool: str = "last",
        dropout_rate: float = 0.0,
        num_channels: int = 3,
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
        if image_pool not in IMAGE_POOL_TYPES:
            raise ValueError(
                f"`image_pool` must be one of {IMAGE_POOL_TYPES}. "
                f"Received: image_pool={image_pool!r}"
            )
        if text_pool not in TEXT_POOL_TYPES:
            raise ValueError(
                f"`text_pool` must be one of {TEXT_POOL_TYPES}. "
                f"Received: text_pool={text_pool!r}"
            )
        if width % num_heads:
            raise ValueError(
                f"`num_heads` ({num_heads}) must divide `width` ({width})."
            )
        moe_indices = moe_layer_indices(moe_layers, depth)
        mlp_dim = 4 * width if mlp_dim is None else int(mlp_dim)
        num_image_tokens = (image_size[0] // patch_size[0]) * (
            image_size[1] // patch_size[1]
        )
        if group_size is None:
            group_size = num_image_tokens + (
                sequence_length if joint_routing else 0
            )
        moe_kwargs = dict(moe_kwargs or {})

        def sparse_mlp(index):
            return LIMoEMoeMlp(
                num_experts=num_experts,
                mlp_dim=mlp_dim,
                group_size=group_size,
                num_selected_experts=num_selected_experts,
                capacity_factor=capacity_factor,
                batch_priority=batch_priority,
                local_entropy_weight=local_entropy_weight,
                global_entropy_weight=global_entropy_weight,
                entropy_threshold=entropy_threshold,
                modality_lengths=None
                if joint_routing
                else (num_image_tokens, sequence_length),
                dtype=dtype,
                name=f"moe_{index}",
                **moe_kwargs,
            )

        # === Layers ===
        self.patch_embedding = PatchEmbedding(
            width, patch_size, dtype=dtype, name="image_embedding"
        )
        self.image_position_embedding = PositionEmbedding(
            "learn", dtype=dtype, name="image_pos_embedding"
        )
        self.token_embedding = keras.layers.Embedding(
            vocabulary_size,
            width,
            embeddings_initializer=keras.initializers.RandomNormal(
                stddev=width**-0.5
            ),
            dtype=dtype,
            name="token_embedding",
        )
        self.text_position_embedding = PositionEmbedding(
            "learn", dtype=dtype, name="text_pos_embedding"
        )
        self.encoder = TransformerEncoder(
            depth,
            num_heads,
            mlp_dim,
            mlp_factory=[
                sparse_mlp(i) if i in moe_indices else None
                for i in range(depth)
            ],
            dropout_rate=dropout_rate,
            remat=remat,
            dtype=dtype,
            name="Transformer",
        )
        self.image_map_head = (
            MAPHead(num_heads, mlp_dim, dtype=dtype, name="image_map_head")
            if image_pool == "map"
            else None
        )
        self.image_head = keras.layers.Dense(
            out_dim, dtype=dtype, name="image_head"
        )
        self.text_head = keras.layers.Dense(
            out_dim, dtype=dtype, name="text_head"
        )

        # === Functional Model ===
        inputs = {
            "images": keras.Input(
                shape=(*image_size, num_channels), name="images"
            ),
            "token_ids": keras.Input(
                shape=(sequence_length,), dtype="int32", name="token_ids"
            ),
            "padding_mask": keras.Input(
                shape=(sequence_length,), dtype="bool", name="padding_mask"
            ),
        }
        self.num_image_tokens = num_image_tokens
        self.image_pool = image_pool
        self.text_pool = text_pool
        image_tokens = self._image_tokens(inputs["images"])
        text_tokens = self._text_tokens(inputs["token_ids"])
        text_mask = ops.cast(inputs["padding_mask"], "bool")
        image_mask = ops.ones_like(image_tokens[..., 0], dtype="bool")
        image_out, text_out = self._encode(
            [(image_tokens, image_mask, IMAGE), (text_tokens, text_mask, TEXT)]
        )
        outputs = {
            "image_embeddings": self._image_head(image_out),
            "text_embeddings": self._text_head(text_out, text_mask),
        }
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.vocabulary_size = vocabulary_size
        self.sequence_length = sequence_length
        self.image_size = image_size
        self.patch_size = patch_size
        self.width = width
        self.depth = depth
        self.num_heads = num_heads
        self.mlp_dim = mlp_dim
        self.out_dim = out_dim
        self.num_experts = num_experts
        self.moe_layers = moe_layers
        self.moe_layer_indices = moe_indices
        self.num_selected_experts = num_selected_experts
        self.capacity_factor = capacity_factor
        self.batch_priority = batch_priority
        self.group_size = group_size
        self.joint_routing = joint_routing
        self.local_entropy_weight = local_entropy_weight
        self.global_entropy_weight = global_entropy_weight
        self.entropy_threshold = entropy_threshold
        self.moe_kwargs = moe_kwargs
        self.dropout_rate = dropout_rate
        self.num_channels = num_channels

    def _image_tokens(self, images):
        grid = self.patch_embedding(images)
        tokens = self.image_position_embedding(grid)
        return ops.reshape(
            tokens, (-1, self.num_image_tokens, tokens.shape[-1])
        )

    def _text_tokens(self, token_ids):
        return self.text_position_embedding(self.token_embedding(token_ids))

    def _encode(self, parts):
        """Runs the shared encoder on `[(tokens, mask, modality id), ...]`
        concatenated along the token axis; returns each part's tokens."""
        tokens = ops.concatenate([p[0] for p in parts], axis=1)
        mask = ops.concatenate([p[1] for p in parts], axis=1)
        modality = ops.concatenate(
            [ops.full_like(p[1], p[2], dtype="int32") for p in parts], axis=1
        )
        # Block-diagonal by modality: no attention across modalities, and
        # none to text padding.
        attention_mask = ops.logical_and(
            ops.equal(modality[:, :, None], modality[:, None, :]),
            mask[:, None, :],
        )
        encoded = self.encoder(
            tokens,
            side_input={"mask": mask, "modality": modality},
            attention_mask=attention_mask,
        )
        outputs, start = [], 0
        for part in parts:
            length = part[0].shape[1]
            outputs.append(encoded[:, start : start + length])
            start += length
        return outputs

    def _image_head(self, tokens):
        if self.image_pool == "map":
            features = self.image_map_head(tokens)
        else:
            features = ops.mean(tokens, axis=1)
        return l2_normalize(self.image_head(features))

    def _text_head(self, tokens, mask):
        features = _pool_text(tokens, mask, self.text_pool)
        return l2_normalize(self.text_head(features))

    def embed_images(self, images):
        """Model-ready images `[B, H, W, C]` -> embeddings, encoded alone
        (routed in groups of image tokens only)."""
        tokens = self._image_tokens(images)
        mask = ops.ones_like(tokens[..., 0], dtype="bool")
        (encoded,) = self._encode([(tokens, mask, IMAGE)])
        return self._image_head(encoded)

    def embed_texts(self, inputs):
        """`{"token_ids", "padding_mask"}` -> embeddings, encoded alone."""
        tokens = self._text_tokens(inputs["token_ids"])
        mask = ops.cast(inputs["padding_mask"], "bool")
        (encoded,) = self._encode([(tokens, mask, TEXT)])
        return self._text_head(encoded, mask)

    def call(self, inputs, training=None, mask=None):
        # Rows pair up, and the batch's tokens share routing groups.
        images, texts = inputs["images"], inputs["token_ids"]
        n_images, n_texts = images.shape[0], texts.shape[0]
        if n_images is not None and n_texts is not None and n_images != n_texts:
            raise ValueError(
                "`images` and `token_ids` must have the same batch size. "
                f"Received {n_images} images and {n_texts} texts."
            )
        return super().call(inputs, training=training, mask=mask)

    @property
    def moe_mlps(self) -> list[LIMoEMoeMlp]:
        """The sparse MLPs, in block order."""
        return [self.encoder.blocks[i].mlp for i in self.moe_layer_indices]

    @property
    def text_vocabulary_size(self) -> int:
        """Token ids the text tower embeds."""
        return self.vocabulary_size

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "sequence_length": self.sequence_length,
                "image_size": self.image_size,
                "patch_size": self.patch_size,
                "width": self.width,
                "depth": self.depth,
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "out_dim": self.out_dim,
                "num_experts": self.num_experts,
                "moe_layers": self.moe_layers,
                "num_selected_experts": self.num_selected_experts,
                "capacity_factor": self.capacity_factor,
                "batch_priority": self.batch_priority,
                "group_size": self.group_size,
                "joint_routing": self.joint_routing,
                "local_entropy_weight": self.local_entropy_weight,
                "global_entropy_weight": self.global_entropy_weight,
                "entropy_threshold": self.entropy_threshold,
                "moe_kwargs": self.moe_kwargs,
                "image_pool": self.image_pool,
                "text_pool": self.text_pool,
                "dropout_rate": self.dropout_rate,
                "num_channels": self.num_channels,
                "remat": self.remat,
            }
        )
        return config


def _pool_text(tokens, mask, text_pool):
    """Text tokens `[B, L, D]` -> features `[B, D]`."""
    if text_pool == "first":
        return tokens[:, 0]
    weights = ops.cast(mask, tokens.dtype)
    if text_pool == "gap":
        total = ops.sum(tokens * weights[..., None], axis=1)
        count = ops.maximum(ops.sum(weights, axis=1, keepdims=True), 1.0)
        return total / count
    # The last real token (position 0 for an all-padding row).
    last = ops.maximum(ops.sum(ops.cast(mask, "int32"), axis=1) - 1, 0)
    return ops.take_along_axis(tokens, last[:, None, None], axis=1)[:, 0]
