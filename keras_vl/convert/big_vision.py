"""big_vision checkpoints (flat npz, '/'-joined names) -> keras_vl models."""

import json
import math
import os
import re

import numpy as np

from keras_vl.convert.checkpoint import CheckpointReader, load_npz_checkpoint
from keras_vl.models.vit.vit_backbone import ViTBackbone


def _assign_dense(reader, layer, prefix):
    reader.assign(layer.kernel, f"{prefix}/kernel")
    reader.assign(layer.bias, f"{prefix}/bias")


def _assign_layer_norm(reader, layer, prefix):
    reader.assign(layer.gamma, f"{prefix}/scale")
    reader.assign(layer.beta, f"{prefix}/bias")


_NUMBERED = re.compile(r"(.*)_(\d+)$")


def linen_names(params: dict) -> dict:
    """Renumbers pre-Linen module names the way flax's `convert_pre_linen`
    does, on flat '/'-joined names.

    Pre-Linen flax numbered submodules with one counter per parent
    (`LayerNorm_0`, `MultiHeadDotProductAttention_1`, `LayerNorm_2`,
    `MlpBlock_3`); Linen counts per module class (`LayerNorm_0`,
    `MultiHeadDotProductAttention_0`, `LayerNorm_1`, `MlpBlock_0`). Names
    already in Linen form come back unchanged.

    Args:
        params: dict from '/'-joined names to arrays.

    Returns:
        A dict with the same arrays under Linen names.
    """
    renamed = {}
    # Names are renumbered level by level among siblings of one parent.
    by_parent: dict[str, set[str]] = {}
    for key in params:
        parts = key.split("/")
        for depth in range(len(parts)):
            parent = "/".join(parts[:depth])
            by_parent.setdefault(parent, set()).add(parts[depth])
    new_part: dict[tuple[str, str], str] = {}
    for parent, names in by_parent.items():
        groups: dict[str, list[tuple[int, str]]] = {}
        for name in names:
            match = _NUMBERED.match(name)
            if match:
                groups.setdefault(match.group(1), []).append(
                    (int(match.group(2)), name)
                )
        for module, numbered in groups.items():
            for rank, (_, name) in enumerate(sorted(numbered)):
                new_part[(parent, name)] = f"{module}_{rank}"
    for key, value in params.items():
        parts = key.split("/")
        out = [
            new_part.get(("/".join(parts[:depth]), part), part)
            for depth, part in enumerate(parts)
        ]
        renamed["/".join(out)] = value
    return renamed


def _take_reshaped(reader, variable, name):
    """Assigns `name` to `variable`, reshaping when only the layout differs
    (flattened `DenseGeneral` kernels and biases)."""

    def reshape(value):
        if value.size != math.prod(variable.shape):
            return value  # `assign` reports the mismatch with both names.
        return value.reshape(variable.shape)

    reader.assign(variable, name, transform=reshape)


def _assign_attention(reader, attention, prefix):
    for name in ("query", "key", "value"):
        _assign_dense(
            reader, getattr(attention, f"{name}_dense"), f"{prefix}/{name}"
        )
    _assign_dense(reader, attention.output_dense, f"{prefix}/out")


def _assign_mlp(reader, mlp, prefix):
    _assign_dense(reader, mlp.dense_0, f"{prefix}/Dense_0")
    _assign_dense(reader, mlp.dense_1, f"{prefix}/Dense_1")


def _assign_map_head(reader, head, prefix):
    reader.assign(head.probe, f"{prefix}/probe")
    _assign_attention(
        reader, head.attention, f"{prefix}/MultiHeadDotProductAttention_0"
    )
    _assign_layer_norm(reader, head.norm, f"{prefix}/LayerNorm_0")
    _assign_mlp(reader, head.mlp, f"{prefix}/MlpBlock_0")


def assign_encoder_block(reader, block, prefix):
    """Loads one `TransformerEncoderBlock` from big_vision names."""
    _assign_layer_norm(reader, block.norm_0, f"{prefix}/LayerNorm_0")
    _assign_attention(
        reader, block.attention, f"{prefix}/MultiHeadDotProductAttention_0"
    )
    _assign_layer_norm(reader, block.norm_1, f"{prefix}/LayerNorm_1")
    _assign_mlp(reader, block.mlp, f"{prefix}/MlpBlock_0")


def assign_vit(reader: CheckpointReader, vit: ViTBackbone, prefix: str = ""):
    """Loads big_vision ViT parameters under `prefix` into `vit`."""
    p = prefix
    conv = vit.patch_embedding.projection
    reader.assign(conv.kernel, f"{p}embedding/kernel")
    reader.assign(conv.bias, f"{p}embedding/bias")
    if vit.posemb == "learn":
        reader.assign(vit.position_embedding.embedding, f"{p}pos_embedding")
    if vit.class_token is not None:
        reader.assign(vit.class_token.token, f"{p}cls")
    for i, block in enumerate(vit.encoder.blocks):
        assign_encoder_block(reader, block, f"{p}Transformer/encoderblock_{i}")
    _assign_layer_norm(reader, vit.encoder.norm, f"{p}Transformer/encoder_norm")
    if vit.map_head is not None:
        _assign_map_head(reader, vit.map_head, f"{p}MAPHead_0")
    if vit.pre_logits is not None:
        _assign_dense(reader, vit.pre_logits, f"{p}pre_logits")
    if vit.head is not None:
        _assign_dense(reader, vit.head, f"{p}head")


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
# Keyword arguments that change nothing at inference.
_VIT_IGNORED = ("dropout", "scan", "remat_policy", "dtype_mm")


def vit_kwargs_from_big_vision(model_kwargs: dict, image_size) -> dict:
    """Maps big_vision `vit.Model` keyword arguments to `ViTBackbone`'s."""
    model_kwargs = dict(model_kwargs)
    variant = model_kwargs.pop("variant", None)
    unknown = set(model_kwargs) - set(_VIT_KWARGS) - set(_VIT_IGNORED)
    if unknown:
        raise ValueError(
            f"Unsupported big_vision ViT config keys: {sorted(unknown)}."
        )
    kwargs = {k: model_kwargs[k] for k in _VIT_KWARGS if k in model_kwargs}
    if isinstance(kwargs.get("pool_type"), int):
        kwargs["pool_type"] = str(kwargs["pool_type"])
    if variant is not None:
        # big_vision configs may name a size ("B/16") instead of dimensions.
        kwargs = {**ViTBackbone.variant_config(variant), **kwargs}
    kwargs.setdefault("head_zeroinit", True)
    return {"image_size": image_size, **kwargs}


def read_config(path: str | os.PathLike) -> dict:
    """Reads a model config JSON: the constructor kwargs themselves, or an
    object with them under `model_kwargs` (the fixtures' form)."""
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    if not isinstance(config, dict):
        raise ValueError(f"Config {path!r} must hold a JSON object.")
    return config


def _open_checkpoint(checkpoint, linen: bool = False) -> CheckpointReader:
    params = load_npz_checkpoint(checkpoint)
    if linen:
        params = linen_names(params)
    reader = CheckpointReader(params, source=os.fspath(checkpoint))
    # Optimizer state and timers of training checkpoints are not model
    # parameters.
    reader.ignore("opt/")
    reader.ignore("chrono/")
    return reader


def convert_vit(
    checkpoint: str | os.PathLike,
    config: dict,
    image_size=None,
    prefix: str = "",
) -> ViTBackbone:
    """Builds a `ViTBackbone` from a big_vision ViT npz checkpoint.

    Args:
        checkpoint: Path of the flat npz checkpoint.
        config: big_vision `vit.Model` keyword arguments, optionally under
            `model_kwargs` next to an `image_size`.
        image_size: Input resolution; defaults to the config's `image_size`,
            else 224.
        prefix: Name prefix of the ViT inside the checkpoint, e.g.
            `"params/img/"`.

    Returns:
        The backbone with every checkpoint parameter loaded.
    """
    model_kwargs = config.get("model_kwargs", config)
    model_kwargs = {k: v for k, v in model_kwargs.items() if k != "image_size"}
    image_size = image_size or config.get("image_size", 224)
    vit = ViTBackbone(**vit_kwargs_from_big_vision(model_kwargs, image_size))
    reader = _open_checkpoint(checkpoint)
    if not any(k.startswith(prefix) for k in reader.params):
        stripped = prefix.removeprefix("params/")
        if stripped != prefix and any(
            k.startswith(stripped) for k in reader.params
        ):
            prefix = stripped
    assign_vit(reader, vit, prefix)
    reader.finish()
    return vit


def convert_clippo(
    checkpoint: str | os.PathLike,
    config: dict,
    image_size=None,
    sequence_length: int = 768,
):
    """Builds a `Clippo` task from a big_vision CLIPPO npz checkpoint.

    Args:
        checkpoint: Flat npz with `params/img/...` and `params/t` (extra
            `opt/` and `chrono/` entries of training checkpoints are
            skipped).
        config: big_vision `one_tower.Model` keyword arguments (`image`,
            `out_dim`, ...), optionally under `model_kwargs`.
        image_size: Resolution of images and rendered texts (default: the
            config's `image_size`, else 224, the released models').
        sequence_length: Code points per text kept by the preprocessor.

    Returns:
        The `Clippo` task with every checkpoint parameter loaded.
    """
    from keras_vl.layers.text_renderer import TextRenderer
    from keras_vl.models.clippo.clippo import Clippo
    from keras_vl.models.clippo.clippo_backbone import ClippoBackbone
    from keras_vl.models.clippo.clippo_preprocessor import ClippoPreprocessor

    model_kwargs = dict(config.get("model_kwargs", config))
    if model_kwargs.get("image_model", "vit") != "vit":
        raise ValueError(
            "Only ViT CLIPPO models are supported. Received: "
            f"image_model={model_kwargs['image_model']!r}"
        )
    image_size = int(image_size or config.get("image_size", 224))
    vit_config = {
        **model_kwargs.get("image", {}),
        "num_classes": model_kwargs.get("out_dim"),
    }
    vit_config.setdefault("pool_type", "map")
    vit_config["head_zeroinit"] = False
    vit = ViTBackbone(**vit_kwargs_from_big_vision(vit_config, image_size))
    backbone = ClippoBackbone(vit, TextRenderer(image_size=image_size))
    model = Clippo(
        backbone,
        ClippoPreprocessor(image_size, sequence_length=sequence_length),
        temperature_init=float(model_kwargs.get("temperature_init", 10.0)),
    )
    reader = _open_checkpoint(checkpoint)
    assign_vit(reader, vit, "params/img/")
    reader.assign(model.log_temperature, "params/t")
    reader.finish()
    return model


def assign_text_transformer(reader: CheckpointReader, tower, prefix: str):
    """Loads a big_vision `text_transformer` under `prefix` into a
    `TextTransformer`.

    Some older checkpoints also hold a position embedding under
    `Encoder_0/`; big_vision adds it to the top-level one, and so does this
    loader.
    """
    p = prefix
    reader.assign(tower.token_embedding.embeddings, f"{p}Embed_0/embedding")
    extra = f"{p}Encoder_0/pos_embedding"
    extra_posemb = reader.take(extra) if reader.has(extra) else 0.0
    reader.assign(
        tower.position_embedding.embedding,
        f"{p}pos_embedding",
        transform=lambda posemb: posemb + extra_posemb,
    )
    for i, block in enumerate(tower.encoder.blocks):
        assign_encoder_block(reader, block, f"{p}Encoder_0/encoderblock_{i}")
    _assign_layer_norm(reader, tower.encoder.norm, f"{p}Encoder_0/encoder_norm")
    if tower.map_head is not None:
        _assign_map_head(reader, tower.map_head, f"{p}MAPHead_0")
    if tower.head is not None:
        _assign_dense(reader, tower.head, f"{p}head")


# big_vision `text_transformer.Model` keyword arguments.
_TEXT_KWARGS = (
    "vocab_size",
    "width",
    "depth",
    "mlp_dim",
    "num_heads",
    "pool_type",
    "num_classes",
)
_TEXT_POOL_ALIASES = {"gap": "mean", "gmp": "max"}


def text_kwargs_from_big_vision(model_kwargs: dict, sequence_length) -> dict:
    """Maps big_vision `text_transformer.Model` keyword arguments to
    `TextTransformer`'s."""
    model_kwargs = dict(model_kwargs)
    variant = model_kwargs.pop("variant", None)
    unknown = set(model_kwargs) - set(_TEXT_KWARGS) - set(_VIT_IGNORED)
    if unknown:
        raise ValueError(
            f"Unsupported big_vision text_transformer config keys: "
            f"{sorted(unknown)}."
        )
    kwargs = {k: model_kwargs[k] for k in _TEXT_KWARGS if k in model_kwargs}
    if variant is not None:
        config = ViTBackbone.variant_config(variant)
        config.pop("patch_size", None)
        kwargs = {**config, **kwargs}
    pool_type = kwargs.get("pool_type", "last")
    kwargs["pool_type"] = _TEXT_POOL_ALIASES.get(pool_type, pool_type)
    return {"sequence_length": sequence_length, **kwargs}


def _learned_grid_size(reader, name, patch_size):
    """Image size implied by a learned `[1, N, D]` posemb of a square grid."""
    if not reader.has(name):
        return None
    length = reader.params[name].shape[1]
    side = math.isqrt(length)
    if side * side != length:
        return None
    patch = patch_size if isinstance(patch_size, int) else patch_size[0]
    return side * patch


def _strip_params_prefix(reader, prefix: str) -> str:
    """`prefix` if the checkpoint uses it, else `prefix` without `params/`
    (bare parameter trees as saved by `big_vision.utils.save_params`)."""
    if any(k.startswith(prefix) for k in reader.params):
        return prefix
    stripped = prefix.removeprefix("params/")
    if any(k.startswith(stripped) for k in reader.params):
        return stripped
    return prefix


# Converted LiT models hold a pretrained text tower: keep it ("U") rather
# than re-initialising it ("u", `LiT`'s default for new models).
CONVERTED_LOCK = "LU"


def lit_task_kwargs(log_temperature: float) -> dict:
    """`LiT` arguments that keep a checkpoint's logit scale as it is.

    `ContrastiveModel` clamps `exp(t)` at 100 (CLIP's ceiling); trained
    SigLIP and LiT models may have learnt a larger scale (SigLIP B/16:
    about 118), so the ceiling is raised to the checkpoint's value.
    """
    scale = math.exp(log_temperature)
    kwargs = {"lock": CONVERTED_LOCK}
    if scale > 100.0:
        kwargs["max_logit_scale"] = float(math.ceil(scale))
    return kwargs


def convert_lit(
    checkpoint: str | os.PathLike,
    config: dict,
    image_size=None,
    sequence_length: int | None = None,
):
    """Builds a `LiT` task from a big_vision two-tower npz checkpoint.

    The checkpoint of `big_vision/models/proj/image_text/two_towers.py`
    with a ViT image tower (`params/img/...`), a `text_transformer` text
    tower (`params/txt/...`), the log-temperature `params/t` and, for
    SigLIP-style models, the bias `params/b`. The towers' own `head` layers
    (big_vision's `out_dim`) are the projections into the joint space.

    Args:
        checkpoint: Path of the flat npz checkpoint (`opt/` and `chrono/`
            entries of training checkpoints are skipped).
        config: big_vision `two_towers.Model` keyword arguments (`image`,
            `text`, `out_dim`, `temperature_init`, `bias_init`, ...),
            optionally under `model_kwargs` next to an `image_size`.
        image_size: Input resolution. Defaults to the config's
            `image_size`, else the size implied by the checkpoint's
            learned position embedding, else 224.
        sequence_length: Text length. Defaults to the length of the
            checkpoint's text position embedding, which fixes it.

    Returns:
        The `LiT` task with every checkpoint parameter loaded: softmax loss,
        or sigmoid loss when the config sets `bias_init` (or the checkpoint
        holds `params/b`).
    """
    from keras_vl.models.lit.lit import LiT
    from keras_vl.models.lit.lit_backbone import LiTBackbone
    from keras_vl.models.lit.text_transformer import TextTransformer

    model_kwargs = dict(config.get("model_kwargs", config))
    for key, expected in (
        ("image_model", ("vit",)),
        (
            "text_model",
            ("proj.image_text.text_transformer", "text_transformer"),
        ),
    ):
        value = model_kwargs.get(key, expected[0])
        if value not in expected:
            raise ValueError(
                f"Only {expected[0]!r} is supported as `{key}` of a LiT "
                f"checkpoint. Received: {key}={value!r}"
            )
    out_dim = model_kwargs.get("out_dim", (None, None))
    if isinstance(out_dim, int) or out_dim is None:
        out_dim = (out_dim, out_dim)
    if len(out_dim) != 2:
        raise ValueError(
            "`out_dim` must be an int or a pair [image, text]. Received: "
            f"out_dim={out_dim!r}"
        )

    reader = _open_checkpoint(checkpoint, linen=True)
    root = _strip_params_prefix(reader, "params/")
    img, txt = f"{root}img/", f"{root}txt/"

    # big_vision lets each tower's config override `num_classes`.
    vit_config = {"num_classes": out_dim[0], **model_kwargs.get("image", {})}
    patch_size = vit_config.get("patch_size", 16)
    if "variant" in vit_config and "/" in str(vit_config["variant"]):
        patch_size = ViTBackbone.variant_config(vit_config["variant"])[
            "patch_size"
        ]
    image_size = (
        image_size
        or config.get("image_size")
        or _learned_grid_size(reader, f"{img}pos_embedding", patch_size)
        or 224
    )
    vit = ViTBackbone(**vit_kwargs_from_big_vision(vit_config, image_size))

    text_config = {"num_classes": out_dim[1], **model_kwargs.get("text", {})}
    posemb = f"{txt}pos_embedding"
    checkpoint_length = (
        reader.params[posemb].shape[1] if reader.has(posemb) else None
    )
    if sequence_length is None:
        sequence_length = checkpoint_length or 16
    elif checkpoint_length and sequence_length != checkpoint_length:
        raise ValueError(
            f"`sequence_length` ({sequence_length}) differs from the "
            f"length of the checkpoint's text position embedding "
            f"({checkpoint_length}); the text tower only runs at that "
            "length."
        )
    text = TextTransformer(
        **text_kwargs_from_big_vision(text_config, sequence_length)
    )

    bias_init = model_kwargs.get("bias_init")
    sigmoid = bias_init is not None or reader.has(f"{root}b")
    backbone = LiTBackbone(vit, text)
    log_t = float(np.ravel(reader.params.get(f"{root}t", [0.0]))[0])
    model = LiT(
        backbone,
        loss="sigmoid" if sigmoid else "softmax",
        temperature_init=float(model_kwargs.get("temperature_init", 10.0)),
        bias_init=None if bias_init is None else float(bias_init),
        **lit_task_kwargs(log_t),
    )
    assign_vit(reader, vit, img)
    assign_text_transformer(reader, text, txt)
    reader.assign(model.log_temperature, f"{root}t")
    if sigmoid:
        reader.assign(model.logit_bias, f"{root}b")
    reader.finish()
    return model


def convert_lit_vit_jax(checkpoint, config, **kwargs):
    """google-research/vision_transformer LiT checkpoints (`LiT-B16B`,
    ...); see `keras_vl.convert.vision_transformer`."""
    from keras_vl.convert.vision_transformer import (
        convert_vision_transformer_lit,
    )

    return convert_vision_transformer_lit(checkpoint, config, **kwargs)


CONVERTERS = {
    "vit": convert_vit,
    "clippo": convert_clippo,
    "lit": convert_lit,
    "lit_vit_jax": convert_lit_vit_jax,
}


def add_arguments(parser) -> None:
    """Adds the big_vision conversion options to an argparse parser."""
    parser.add_argument(
        "--model",
        required=True,
        choices=sorted(CONVERTERS),
        help="which big_vision model the checkpoint holds",
    )
    parser.add_argument(
        "--checkpoint", required=True, help="flat .npz checkpoint"
    )
    parser.add_argument(
        "--config",
        default=None,
        help="JSON with the big_vision model kwargs (optionally under "
        "'model_kwargs', with an 'image_size'); for lit_vit_jax also the "
        "name of a released model (default: the checkpoint's file name)",
    )
    parser.add_argument("--output", required=True, help="preset directory")
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="input resolution (default: the config's, else 224)",
    )
    parser.add_argument(
        "--sequence-length",
        type=int,
        default=None,
        help="text length of LiT models (default: the checkpoint's)",
    )


def run(args) -> None:
    """Converts `args.checkpoint` and writes a keras_vl preset."""
    if args.model == "lit_vit_jax" and (
        args.config is None or not os.path.exists(args.config)
    ):
        config = args.config  # A released model's name, or None.
    elif args.config is None:
        raise ValueError(f"`--config` is required for --model {args.model}.")
    else:
        config = read_config(args.config)
    kwargs = {"image_size": args.image_size}
    if getattr(args, "sequence_length", None) is not None:
        if args.model == "vit":
            raise ValueError("`--sequence-length` does not apply to a ViT.")
        kwargs["sequence_length"] = args.sequence_length
    model = CONVERTERS[args.model](args.checkpoint, config, **kwargs)
    model.save_to_preset(args.output)
    print(f"Wrote {args.model} preset to {args.output}")
