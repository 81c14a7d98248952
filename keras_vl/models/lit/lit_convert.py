"""big_vision two-tower checkpoints (LiT, SigLIP) -> `LiT`.

The checkpoints of `big_vision/models/proj/image_text/two_towers.py` hold a
ViT image tower under `params/img/`, a `text_transformer` text tower under
`params/txt/`, the log-temperature `params/t` and, for SigLIP-style models,
the bias `params/b`. The other LiT sources live in
`lit_vision_transformer_convert` (the google-research/vision_transformer
releases) and `lit_huggingface_convert` (`SiglipModel`, `CLIPModel`).
"""

import math
import os
from typing import Any

import numpy as np

from keras_vl.convert import big_vision
from keras_vl.convert.checkpoint import CheckpointReader
from keras_vl.models.lit.lit import LiT
from keras_vl.models.lit.lit_backbone import LiTBackbone
from keras_vl.models.lit.lit_preprocessor import LiTPreprocessor
from keras_vl.models.lit.text_transformer import TextTransformer
from keras_vl.models.vit.vit_backbone import ViTBackbone
from keras_vl.models.vit.vit_convert import (
    IGNORED_KWARGS,
    assign_encoder,
    assign_map_head,
    assign_vit,
    checkpoint_image_size,
    vit_kwargs_from_big_vision,
)

# Converted LiT models hold a pretrained text tower: keep it ("U") rather
# than re-initialising it ("u", `LiT`'s default for new models).
CONVERTED_LOCK = "LU"


def lit_task_kwargs(log_temperature: float) -> dict[str, Any]:
    """`LiT` arguments that keep a checkpoint's logit scale as it is.

    `ContrastiveModel` clamps `exp(t)` at 100 (CLIP's ceiling); trained
    SigLIP and LiT models may have learnt a larger scale (SigLIP B/16:
    about 118), so the ceiling is raised to the checkpoint's value.

    Args:
        log_temperature: The checkpoint's `t`.

    Returns:
        `lock` and, where needed, `max_logit_scale`.

    Example:

    >>> lit_task_kwargs(math.log(118.0))
    {'lock': 'LU', 'max_logit_scale': 118.0}
    """
    scale = math.exp(log_temperature)
    kwargs: dict[str, Any] = {"lock": CONVERTED_LOCK}
    if scale > 100.0:
        kwargs["max_logit_scale"] = float(math.ceil(scale))
    return kwargs


def unstack_scanned_blocks(
    params: dict[str, np.ndarray], encoder: str
) -> dict[str, np.ndarray]:
    """Splits the blocks of an encoder saved with `scan=True`.

    big_vision's `vit.Encoder(scan=True)` keeps one `encoderblock` whose
    parameters are stacked along a leading depth axis; `vit.load` splits
    them into `encoderblock_<i>` (`scan_to_pyloop`) for unscanned models,
    and so does this function.

    Args:
        params: Flat '/'-joined checkpoint parameters.
        encoder: The encoder's prefix, e.g. `"params/img/Transformer/"`.

    Returns:
        `params` itself when nothing is stacked, else a new dict with
        `{encoder}encoderblock_<i>/...` in place of
        `{encoder}encoderblock/...`.

    Raises:
        ValueError: If the stacked parameters disagree on the depth.

    Example:

    >>> blocks = {"T/encoderblock/LayerNorm_0/bias": np.zeros((2, 4))}
    >>> sorted(unstack_scanned_blocks(blocks, "T/"))
    ['T/encoderblock_0/LayerNorm_0/bias', 'T/encoderblock_1/LayerNorm_0/bias']
    """
    stem = f"{encoder}encoderblock/"
    stacked = {k: v for k, v in params.items() if k.startswith(stem)}
    if not stacked:
        return params
    depths = {v.shape[0] if v.ndim else None for v in stacked.values()}
    if len(depths) != 1 or None in depths:
        raise ValueError(
            f"The scanned blocks under {stem!r} must share one leading "
            f"depth axis. Received leading sizes {sorted(map(str, depths))}."
        )
    (depth,) = depths
    out = {k: v for k, v in params.items() if not k.startswith(stem)}
    for key, value in stacked.items():
        rest = key[len(stem) :]
        for i in range(depth):
            out[f"{encoder}encoderblock_{i}/{rest}"] = value[i]
    return out


def assign_text_transformer(
    reader: CheckpointReader, tower: TextTransformer, prefix: str
) -> None:
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
    assign_encoder(reader, tower.encoder, f"{p}Encoder_0/", "encoderblock")
    if tower.map_head is not None:
        assign_map_head(reader, tower.map_head, f"{p}MAPHead_0")
    if tower.head is not None:
        big_vision.assign_dense(reader, tower.head, f"{p}head")


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


def text_kwargs_from_big_vision(
    model_kwargs: dict[str, Any], sequence_length: int
) -> dict[str, Any]:
    """Maps big_vision `text_transformer.Model` keyword arguments to
    `TextTransformer`'s.

    Example:

    >>> text_kwargs_from_big_vision({"variant": "mu"}, 8)["width"]
    32
    """
    model_kwargs = dict(model_kwargs)
    variant = model_kwargs.pop("variant", None)
    unknown = set(model_kwargs) - set(_TEXT_KWARGS) - set(IGNORED_KWARGS)
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


def _check_models(model_kwargs: dict[str, Any]) -> None:
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


def convert_lit(
    checkpoint: str | os.PathLike,
    config: dict[str, Any],
    image_size: int | None = None,
    sequence_length: int | None = None,
    preprocessor: LiTPreprocessor | None = None,
) -> LiT:
    """Builds a `LiT` task from a big_vision two-tower npz checkpoint.

    The towers' own `head` layers (big_vision's `out_dim`) are the
    projections into the joint space. Encoders saved with `scan=True`
    (one stacked `encoderblock`) are read as well.

    Args:
        checkpoint: Path of the flat npz checkpoint (`opt/` and `chrono/`
            entries of training checkpoints are skipped).
        config: big_vision `two_towers.Model` keyword arguments (`image`,
            `text`, `out_dim`, `temperature_init`, `bias_init`, ...),
            optionally under `model_kwargs` next to an `image_size`.
        image_size: Input resolution. Defaults to the config's
            `image_size`, else the size implied by the checkpoint's
            learned position embedding, else 224. Any other size resamples
            that embedding (big_vision's high-res fine-tuning).
        sequence_length: Text length. Defaults to the length of the
            checkpoint's text position embedding, which fixes it.
        preprocessor: The task's `LiTPreprocessor` (e.g. with the
            model's tokenizer); defaults to one taking token ids.

    Returns:
        The `LiT` task with every checkpoint parameter loaded: softmax loss,
        or sigmoid loss when the config sets `bias_init` (or the checkpoint
        holds `params/b`).

    Example:

    >>> model = convert_lit("siglip.npz", config)  # doctest: +SKIP
    >>> model.save_to_preset("./siglip")  # doctest: +SKIP
    """
    model_kwargs = big_vision.model_kwargs_of(config)
    _check_models(model_kwargs)
    out_dim = model_kwargs.get("out_dim", (None, None))
    if isinstance(out_dim, int) or out_dim is None:
        out_dim = (out_dim, out_dim)
    if len(out_dim) != 2:
        raise ValueError(
            "`out_dim` must be an int or a pair [image, text]. Received: "
            f"out_dim={out_dim!r}"
        )

    reader = big_vision.open_checkpoint(checkpoint, linen=True)
    root = big_vision.strip_params_prefix(reader, "params/")
    img, txt = f"{root}img/", f"{root}txt/"
    for encoder in (f"{img}Transformer/", f"{txt}Encoder_0/"):
        reader.params = unstack_scanned_blocks(reader.params, encoder)

    # big_vision lets each tower's config override `num_classes`.
    vit_config = {"num_classes": out_dim[0], **model_kwargs.get("image", {})}
    vit_kwargs = vit_kwargs_from_big_vision(vit_config, None)
    image_size = checkpoint_image_size(
        reader,
        f"{img}pos_embedding",
        vit_kwargs.get("patch_size", 16),
        image_size or config.get("image_size"),
    )
    vit = ViTBackbone(**{**vit_kwargs, "image_size": image_size})

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
    log_t = big_vision.first_value(reader, f"{root}t", 0.0)
    model = LiT(
        LiTBackbone(vit, text),
        preprocessor,
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
