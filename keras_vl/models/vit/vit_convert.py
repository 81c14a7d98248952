"""Original ViT checkpoints -> `ViTBackbone`.

Four sources fill the same backbone:

- big_vision's `vit.Model` (flat npz, '/'-joined flax names);
- google-research/vision_transformer's `VisionTransformer` (`vit_jax`),
  which adds its position embedding after the class token;
- google-research/vmoe's `VisionTransformerMoe` (V-MoE: vit_jax's ViT with
  sparse mixture-of-experts MLPs in some blocks);
- the vision tower of Hugging Face's `SiglipModel` (PyTorch layout).

The block, MLP and MAP-head assigners are public: the other families'
converters use them for the ViT-shaped parts of their models.
"""

import math
import os
from typing import Any

import numpy as np

from keras_vl.convert import big_vision, huggingface
from keras_vl.convert.checkpoint import CheckpointReader, load_npz_checkpoint
from keras_vl.layers.position_embedding import resample_position_embedding
from keras_vl.layers.sparse_moe_mlp import SparseMoeMlp
from keras_vl.models.vit.vit_backbone import ViTBackbone
from keras_vl.ops import pair

# === Resolution ===


def checkpoint_image_size(
    reader: CheckpointReader,
    name: str,
    patch_size: int | tuple[int, int],
    image_size: int | tuple[int, int] | None = None,
    num_prefix_tokens: int = 0,
) -> int | tuple[int, int]:
    """The resolution to build a converted ViT at.

    Args:
        reader: The checkpoint.
        name: Name of its learned position embedding.
        patch_size: int or `(height, width)` of the patches.
        image_size: The requested resolution, if any; it wins.
        num_prefix_tokens: Rows of the position embedding in front of the
            patch grid (vision_transformer's class token).

    Returns:
        `image_size` when given, else the square size the checkpoint's
        position embedding was trained at, else 224 (fixed sin-cos
        embeddings store no grid).

    Example:

    >>> checkpoint_image_size(reader, "pos_embedding", 16)  # doctest: +SKIP
    96
    """
    if image_size:
        return image_size
    inferred = big_vision.learned_grid_size(
        reader, name, patch_size, num_prefix_tokens
    )
    return inferred or 224


def posemb_resampler(grid: tuple[int, int], num_prefix_tokens: int = 0):
    """A `CheckpointReader.assign` transform that fits a checkpoint's
    learned position embedding to `grid` patches.

    An embedding of another (square) grid is resampled as big_vision's
    `resample_posemb` does for high-res fine-tuning; one that already
    fits, or is not `[1, N, D]`, passes unchanged (`assign` then reports
    any mismatch).
    """
    rows = num_prefix_tokens + math.prod(grid)

    def transform(posemb: np.ndarray) -> np.ndarray:
        if posemb.ndim != 3 or posemb.shape[1] == rows:
            return posemb
        try:
            return resample_position_embedding(
                posemb, grid, num_prefix_tokens=num_prefix_tokens
            )
        except ValueError as error:
            raise ValueError(
                f"The checkpoint's position embedding {posemb.shape} cannot "
                f"be resampled to a {grid} patch grid: {error}"
            ) from error

    return transform


# === big_vision ===


def assign_mlp(reader: CheckpointReader, mlp, prefix: str) -> None:
    """Loads a big_vision `MlpBlock` into a keras_vl `MLPBlock`."""
    big_vision.assign_dense(reader, mlp.dense_0, f"{prefix}/Dense_0")
    big_vision.assign_dense(reader, mlp.dense_1, f"{prefix}/Dense_1")


def assign_map_head(reader: CheckpointReader, head, prefix: str) -> None:
    """Loads a big_vision `MAPHead` into a keras_vl `MAPHead`."""
    reader.assign(head.probe, f"{prefix}/probe")
    big_vision.assign_attention(
        reader, head.attention, f"{prefix}/MultiHeadDotProductAttention_0"
    )
    big_vision.assign_layer_norm(reader, head.norm, f"{prefix}/LayerNorm_0")
    assign_mlp(reader, head.mlp, f"{prefix}/MlpBlock_0")


def assign_encoder_block(reader: CheckpointReader, block, prefix: str) -> None:
    """Loads a big_vision `Encoder1DBlock` into a keras_vl
    `TransformerEncoderBlock`."""
    big_vision.assign_layer_norm(reader, block.norm_0, f"{prefix}/LayerNorm_0")
    big_vision.assign_attention(
        reader, block.attention, f"{prefix}/MultiHeadDotProductAttention_0"
    )
    big_vision.assign_layer_norm(reader, block.norm_1, f"{prefix}/LayerNorm_1")
    assign_mlp(reader, block.mlp, f"{prefix}/MlpBlock_0")


def assign_encoder(
    reader: CheckpointReader, encoder, prefix: str, block_prefix: str
) -> None:
    """Loads every `{prefix}{block_prefix}_{i}` block and the final
    `{prefix}encoder_norm` into a keras_vl `TransformerEncoder`."""
    for i, block in enumerate(encoder.blocks):
        assign_encoder_block(reader, block, f"{prefix}{block_prefix}_{i}")
    big_vision.assign_layer_norm(reader, encoder.norm, f"{prefix}encoder_norm")


def _assign_heads(reader, vit: ViTBackbone, prefix: str) -> None:
    if vit.pre_logits is not None:
        big_vision.assign_dense(reader, vit.pre_logits, f"{prefix}pre_logits")
    if vit.head is not None:
        big_vision.assign_dense(reader, vit.head, f"{prefix}head")


def assign_vit(
    reader: CheckpointReader, vit: ViTBackbone, prefix: str = ""
) -> None:
    """Loads big_vision ViT parameters under `prefix` into `vit`.

    A learned position embedding of another grid size is resampled to
    `vit`'s (see `posemb_resampler`).

    Args:
        reader: The checkpoint.
        vit: A backbone built with the checkpoint's config.
        prefix: Name prefix of the ViT inside the checkpoint, e.g.
            `"params/img/"`.

    Example:

    >>> reader = big_vision.open_checkpoint("vit.npz")  # doctest: +SKIP
    >>> assign_vit(reader, vit)  # doctest: +SKIP
    >>> reader.finish()  # doctest: +SKIP
    """
    p = prefix
    conv = vit.patch_embedding.projection
    big_vision.assign_dense(reader, conv, f"{p}embedding")
    if vit.posemb == "learn":
        reader.assign(
            vit.position_embedding.embedding,
            f"{p}pos_embedding",
            transform=posemb_resampler(vit.grid_size),
        )
    if vit.class_token is not None:
        reader.assign(vit.class_token.token, f"{p}cls")
    assign_encoder(reader, vit.encoder, f"{p}Transformer/", "encoderblock")
    if vit.map_head is not None:
        assign_map_head(reader, vit.map_head, f"{p}MAPHead_0")
    _assign_heads(reader, vit, p)


# big_vision ViT keyword arguments that keras_vl understands as they are.
_VIT_KWARGS = (
    "width",
    "depth",
    "mlp_dim",
    "num_heads",
    "patch_size",
    "posemb",
    "pool_type",
    "rep_size",
    "num_classes",
    "head_zeroinit",
)
# big_vision keyword arguments that change nothing at inference.
IGNORED_KWARGS = ("dropout", "scan", "remat_policy", "dtype_mm")


def vit_kwargs_from_big_vision(
    model_kwargs: dict[str, Any], image_size: int | tuple[int, int]
) -> dict[str, Any]:
    """Maps big_vision `vit.Model` keyword arguments to `ViTBackbone`'s.

    Args:
        model_kwargs: The big_vision keyword arguments; a `variant` such as
            `"B/16"` supplies the sizes the others leave out.
        image_size: Input resolution.

    Returns:
        `ViTBackbone` keyword arguments.

    Example:

    >>> vit_kwargs_from_big_vision({"variant": "mu/16"}, 32)["width"]
    32
    """
    model_kwargs = dict(model_kwargs)
    variant = model_kwargs.pop("variant", None)
    unknown = set(model_kwargs) - set(_VIT_KWARGS) - set(IGNORED_KWARGS)
    if unknown:
        raise ValueError(
            f"Unsupported big_vision ViT config keys: {sorted(unknown)}."
        )
    kwargs = {k: model_kwargs[k] for k in _VIT_KWARGS if k in model_kwargs}
    if isinstance(kwargs.get("pool_type"), int):
        kwargs["pool_type"] = str(kwargs["pool_type"])
    if variant is not None:
        kwargs = {**ViTBackbone.variant_config(variant), **kwargs}
    kwargs.setdefault("head_zeroinit", True)
    return {"image_size": image_size, **kwargs}


def convert_vit(
    checkpoint: str | os.PathLike,
    config: dict[str, Any],
    image_size: int | None = None,
    prefix: str = "",
) -> ViTBackbone:
    """Builds a `ViTBackbone` from a big_vision ViT npz checkpoint.

    Args:
        checkpoint: Path of the flat npz checkpoint.
        config: big_vision `vit.Model` keyword arguments, optionally under
            `model_kwargs` next to an `image_size`.
        image_size: Input resolution. Defaults to the config's
            `image_size`, else the size the checkpoint's learned position
            embedding implies (a square grid times the patch size), else
            224. A size the checkpoint was not trained at resamples its
            position embedding.
        prefix: Name prefix of the ViT inside the checkpoint, e.g.
            `"params/img/"`; a checkpoint without the `params/` part is
            accepted too.

    Returns:
        The backbone with every checkpoint parameter loaded.

    Example:

    >>> vit = convert_vit("vit.npz", {"variant": "B/16"})  # doctest: +SKIP
    >>> vit.save_to_preset("./vit_b16")  # doctest: +SKIP
    """
    model_kwargs = big_vision.model_kwargs_of(config)
    model_kwargs = {k: v for k, v in model_kwargs.items() if k != "image_size"}
    reader = big_vision.open_checkpoint(checkpoint)
    prefix = big_vision.strip_params_prefix(reader, prefix)
    kwargs = vit_kwargs_from_big_vision(model_kwargs, None)
    kwargs["image_size"] = checkpoint_image_size(
        reader,
        f"{prefix}pos_embedding",
        kwargs.get("patch_size", 16),
        image_size or config.get("image_size"),
    )
    vit = ViTBackbone(**kwargs)
    assign_vit(reader, vit, prefix)
    reader.finish()
    return vit


# === google-research/vision_transformer (vit_jax) ===

_VIT_JAX_CLASSIFIERS = {"token": "tok", "gap": "gap", "unpooled": "none"}


def vit_from_vit_jax_config(
    image: dict[str, Any],
    num_classes: int | None,
    image_size: int,
) -> ViTBackbone:
    """A `ViTBackbone` equivalent to `vit_jax`'s `VisionTransformer`.

    Args:
        image: The `vit_jax` model config (`patches`, `hidden_size`,
            `transformer`, `classifier`, `representation_size`).
        num_classes: Width of the `head`, or None for no head.
        image_size: Input resolution.

    Returns:
        An unloaded backbone; fill it with `assign_vit_jax`.
    """
    if image.get("resnet"):
        raise ValueError(
            "Hybrid ResNet+ViT image towers are not supported; only plain "
            "ViTs convert."
        )
    classifier = image.get("classifier", "token")
    if classifier not in _VIT_JAX_CLASSIFIERS:
        raise ValueError(
            f"Unsupported ViT `classifier` {classifier!r}; expected one of "
            f"{sorted(_VIT_JAX_CLASSIFIERS)}."
        )
    transformer = image["transformer"]
    return ViTBackbone(
        image_size=image_size,
        patch_size=tuple(image["patches"]["size"]),
        width=image["hidden_size"],
        depth=transformer["num_layers"],
        mlp_dim=transformer["mlp_dim"],
        num_heads=transformer["num_heads"],
        posemb="learn",
        pool_type=_VIT_JAX_CLASSIFIERS[classifier],
        rep_size=image.get("representation_size") or False,
        num_classes=num_classes,
        head_zeroinit=False,
    )


def _assign_posemb_after_class_token(
    reader: CheckpointReader, vit: ViTBackbone, name: str, cls_name: str
) -> None:
    """Loads a vit_jax-style position embedding, whose first row belongs to
    the class token: `cls + posemb[0]` becomes the keras_vl class token and
    the other rows the patch position embedding, which gives the same
    first-layer input (keras_vl adds the embedding before the class
    token). An embedding of another grid size is resampled, the class
    token's row kept as it is."""
    if vit.class_token is None:
        reader.assign(
            vit.position_embedding.embedding,
            name,
            transform=posemb_resampler(vit.grid_size),
        )
        return
    posemb = posemb_resampler(vit.grid_size, num_prefix_tokens=1)(
        reader.take(name)
    )
    _, patches, width = vit.position_embedding.embedding.shape
    if tuple(posemb.shape) != (1, patches + 1, width):
        raise ValueError(
            f"Parameter {name!r} of {reader.source} has shape "
            f"{tuple(posemb.shape)}; a class-token ViT of this size "
            f"needs {(1, patches + 1, width)} (1 + {patches} patches). "
            "Check `image_size`, the patch size and the width."
        )
    reader.assign(
        vit.class_token.token,
        cls_name,
        transform=lambda cls: cls + posemb[:, :1],
    )
    vit.position_embedding.embedding.assign(posemb[:, 1:])


def assign_vit_jax(
    reader: CheckpointReader, vit: ViTBackbone, prefix: str
) -> None:
    """Loads a `vit_jax` ViT (Linen names) under `prefix` into `vit`.

    `vit_jax` adds the position embedding after the class token, so its
    first row belongs to the class token: `cls + posemb[0]` becomes the
    keras_vl class token and the other rows the patch position embedding,
    which gives the same first-layer input.
    """
    p = prefix
    big_vision.assign_dense(
        reader, vit.patch_embedding.projection, f"{p}embedding"
    )
    _assign_posemb_after_class_token(
        reader, vit, f"{p}Transformer/posembed_input/pos_embedding", f"{p}cls"
    )
    assign_encoder(reader, vit.encoder, f"{p}Transformer/", "encoderblock")
    _assign_heads(reader, vit, p)


# === google-research/vmoe (V-MoE) ===

# vit_jax `classifier` -> ViTBackbone `pool_type`.
_VMOE_CLASSIFIERS = {"token": "tok", "gap": "gap", "0": "0"}


def sparse_moe_kwargs_from_vmoe(moe: dict, mlp_dim: int) -> dict:
    """`SparseMoeMlp` arguments from a vmoe `encoder.moe` config.

    Args:
        moe: The `moe` entry of the encoder config (`num_experts`,
            `group_size`, `router` with its `dispatcher`, ...).
        mlp_dim: Hidden width of every expert.

    Returns:
        Keyword arguments for `keras_vl.layers.SparseMoeMlp`.
    """
    router = dict(moe.get("router") or {})
    dispatcher = dict(router.pop("dispatcher", None) or {})
    name = dispatcher.pop("name", "einsum")
    if name != "einsum":
        raise ValueError(
            f"Only the einsum dispatcher is supported. Received: {name!r}"
        )
    return dict(
        num_experts=moe["num_experts"],
        mlp_dim=mlp_dim,
        group_size=moe["group_size"],
        num_selected_experts=router.get("num_selected_experts", 1),
        capacity_factor=dispatcher.get("capacity_factor"),
        capacity=dispatcher.get("capacity"),
        capacity_rounding=dispatcher.get("capacity_ceil_or_round", "ceil"),
        capacity_multiple_of=dispatcher.get("capacity_multiple_of", 4),
        batch_priority=dispatcher.get("batch_priority", False),
        noise_std=router.get("noise_std", 1.0),
        # vmoe's router defaults, not keras_vl's.
        importance_loss_weight=router.get("importance_loss_weight", 1.0),
        load_loss_weight=router.get("load_loss_weight", 1.0),
        gshard_loss_weight=router.get("gshard_loss_weight", 0.0),
        dropout_rate=moe.get("dropout_rate", 0.0),
    )


def vit_from_vmoe_config(model_kwargs: dict, image_size) -> ViTBackbone:
    """A `ViTBackbone` shaped like a vmoe `VisionTransformerMoe`: blocks
    listed in `encoder.moe.layers` get a `SparseMoeMlp`.

    Args:
        model_kwargs: The `VisionTransformerMoe` keyword arguments.
        image_size: int or `(height, width)` of the input images.

    Returns:
        An unloaded backbone; fill it with `assign_vmoe`.
    """
    encoder = model_kwargs["encoder"]
    classifier = model_kwargs.get("classifier", "token")
    if classifier not in _VMOE_CLASSIFIERS:
        raise ValueError(
            f"Unsupported `classifier` {classifier!r}; expected one of "
            f"{sorted(_VMOE_CLASSIFIERS)}."
        )
    moe = encoder.get("moe") or {}
    moe_layers = set(moe.get("layers") or ())
    mlp_dim = encoder["mlp_dim"]
    mlps = [
        SparseMoeMlp(**sparse_moe_kwargs_from_vmoe(moe, mlp_dim))
        if i in moe_layers
        else None
        for i in range(encoder["num_layers"])
    ]
    return ViTBackbone(
        image_size=pair(image_size, "image_size"),
        patch_size=pair(model_kwargs["patch_size"], "patch_size"),
        width=model_kwargs["hidden_size"],
        depth=encoder["num_layers"],
        mlp_dim=mlp_dim,
        num_heads=encoder["num_heads"],
        posemb="learn",
        pool_type=_VMOE_CLASSIFIERS[classifier],
        rep_size=model_kwargs.get("representation_size") or False,
        num_classes=model_kwargs.get("num_classes"),
        head_zeroinit=False,
        dropout_rate=encoder.get("dropout_rate", 0.0),
        mlp_factory=mlps,
    )


def assign_vmoe(reader: CheckpointReader, vit: ViTBackbone) -> None:
    """Loads vmoe `VisionTransformerMoe` parameters into `vit`."""
    big_vision.assign_dense(reader, vit.patch_embedding.projection, "embedding")
    _assign_posemb_after_class_token(
        reader, vit, "Encoder/posembed_input/pos_embedding", "cls"
    )
    for i, block in enumerate(vit.encoder.blocks):
        p = f"Encoder/encoderblock_{i}"
        big_vision.assign_layer_norm(reader, block.norm_0, f"{p}/LayerNorm_0")
        big_vision.assign_attention(
            reader, block.attention, f"{p}/SelfAttention"
        )
        big_vision.assign_layer_norm(reader, block.norm_1, f"{p}/LayerNorm_1")
        mlp = block.mlp
        if isinstance(mlp, SparseMoeMlp):
            reader.assign(mlp.router.kernel, f"{p}/Moe/Router/dense/kernel")
            for k in (0, 1):
                prefix = f"{p}/Moe/Mlp/Dense_{k}"
                reader.assign(getattr(mlp, f"kernel_{k}"), f"{prefix}/kernel")
                reader.assign(getattr(mlp, f"bias_{k}"), f"{prefix}/bias")
        else:
            assign_mlp(reader, mlp, f"{p}/Mlp")
    big_vision.assign_layer_norm(
        reader, vit.encoder.norm, "Encoder/encoder_norm"
    )
    _assign_heads(reader, vit, "")


def convert_vmoe(
    checkpoint: str | os.PathLike, model_kwargs: dict, image_size
) -> ViTBackbone:
    """Builds a `ViTBackbone` with sparse MoE blocks from a vmoe checkpoint.

    Args:
        checkpoint: Path of the flat npz with '/'-joined flax names
            (`embedding/kernel`, `cls`, `Encoder/posembed_input/...`,
            `Encoder/encoderblock_<i>/Moe/...`, `head/kernel`).
        model_kwargs: The `VisionTransformerMoe` keyword arguments.
        image_size: int or `(height, width)`.

    Returns:
        The backbone with every checkpoint parameter loaded.

    Example:

    ```python
    vit = convert_vmoe("params.npz", json.load(open("kwargs.json")), 32)
    logits = vit.predict(images)
    ```
    """
    vit = vit_from_vmoe_config(model_kwargs, image_size)
    reader = CheckpointReader(
        load_npz_checkpoint(checkpoint), source=os.fspath(checkpoint)
    )
    assign_vmoe(reader, vit)
    reader.finish()
    return vit


# === Hugging Face SigLIP vision tower ===

SIGLIP_VISION_DEFAULTS = dict(
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    num_channels=3,
    image_size=224,
    patch_size=16,
    hidden_act="gelu_pytorch_tanh",
    layer_norm_eps=1e-6,
    vision_use_head=True,
)


def assign_huggingface_block(
    reader: CheckpointReader, block, prefix: str
) -> None:
    """Loads a Hugging Face SigLIP/CLIP encoder layer (`layer_norm1`,
    `self_attn`, `layer_norm2`, `mlp.fc1`, `mlp.fc2`) into a keras_vl
    `TransformerEncoderBlock`."""
    huggingface.assign_layer_norm(reader, block.norm_0, f"{prefix}.layer_norm1")
    huggingface.assign_attention(reader, block.attention, f"{prefix}.self_attn")
    huggingface.assign_layer_norm(reader, block.norm_1, f"{prefix}.layer_norm2")
    huggingface.assign_linear(reader, block.mlp.dense_0, f"{prefix}.mlp.fc1")
    huggingface.assign_linear(reader, block.mlp.dense_1, f"{prefix}.mlp.fc2")


def vit_from_siglip_config(vision: dict[str, Any]) -> ViTBackbone:
    """A MAP-pooled `ViTBackbone` without class token, shaped like a
    `SiglipVisionModel` with these settings (see
    `SIGLIP_VISION_DEFAULTS`)."""
    return ViTBackbone(
        image_size=vision["image_size"],
        patch_size=vision["patch_size"],
        width=vision["hidden_size"],
        depth=vision["num_hidden_layers"],
        mlp_dim=vision["intermediate_size"],
        num_heads=vision["num_attention_heads"],
        posemb="learn",
        pool_type="map",
        num_channels=vision["num_channels"],
        name="siglip_vision_tower",
    )


def assign_siglip_vision(
    reader: CheckpointReader, vit: ViTBackbone, prefix: str = "vision_model"
) -> None:
    """Loads a Hugging Face `SiglipVisionTransformer` under `prefix` into a
    backbone from `vit_from_siglip_config`."""
    p = prefix
    huggingface.assign_conv(
        reader,
        vit.patch_embedding.projection,
        f"{p}.embeddings.patch_embedding",
    )
    reader.assign(
        vit.position_embedding.embedding,
        f"{p}.embeddings.position_embedding.weight",
        transform=lambda w: w[None],
    )
    for i, block in enumerate(vit.encoder.blocks):
        assign_huggingface_block(reader, block, f"{p}.encoder.layers.{i}")
    huggingface.assign_layer_norm(
        reader, vit.encoder.norm, f"{p}.post_layernorm"
    )
    head = vit.map_head
    reader.assign(head.probe, f"{p}.head.probe")
    huggingface.assign_packed_attention(
        reader, head.attention, f"{p}.head.attention"
    )
    huggingface.assign_layer_norm(reader, head.norm, f"{p}.head.layernorm")
    huggingface.assign_linear(reader, head.mlp.dense_0, f"{p}.head.mlp.fc1")
    huggingface.assign_linear(reader, head.mlp.dense_1, f"{p}.head.mlp.fc2")
