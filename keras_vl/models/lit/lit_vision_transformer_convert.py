"""google-research/vision_transformer LiT releases -> `LiT`.

The released `gs://vit_models/lit/LiT-*.npz` files (`vit_jax/models_lit.py`)
are flat npz files with '/'-joined names: the image tower under `img/`, the
text tower under `txt/` and the log-temperature `t`. They predate
big_vision's naming:

- the ViT is `vit_jax`'s (see `vit_convert.assign_vit_jax`);
- blocks may carry pre-Linen numbering, renumbered as flax's
  `convert_pre_linen` does;
- the text tower is either a small transformer (the same layout as
  big_vision's `text_transformer`) or a flaxformer BERT encoder
  (`txt/BertEncoder_0/...`) with a `head` on the `[CLS]` token, which
  becomes a keras-hub `BertBackbone`.
"""

import os
from typing import Any

import keras
import keras_hub
import numpy as np
from keras import ops

from keras_vl.convert import big_vision
from keras_vl.convert.big_vision import (
    assign_dense,
    assign_layer_norm,
    assign_reshaped,
)
from keras_vl.convert.checkpoint import CheckpointReader
from keras_vl.models.lit.lit import LiT
from keras_vl.models.lit.lit_backbone import LiTBackbone
from keras_vl.models.lit.lit_convert import (
    assign_text_transformer,
    convert_lit,
    lit_task_kwargs,
)
from keras_vl.models.lit.lit_preprocessor import LiTPreprocessor
from keras_vl.models.lit.text_transformer import TextTransformer
from keras_vl.models.vit.vit_convert import (
    assign_vit_jax,
    checkpoint_image_size,
    vit_from_vit_jax_config,
)

# `vit_jax/configs/models.py`: (width, depth, mlp_dim, num_heads) by size.
_VIT_SIZES = {
    "B": dict(hidden_size=768, num_layers=12, mlp_dim=3072, num_heads=12),
    "L": dict(hidden_size=1024, num_layers=24, mlp_dim=4096, num_heads=16),
}
_BERT_SIZES = {
    "base": dict(
        hidden_size=768,
        intermediate_dim=3072,
        num_hidden_layers=12,
        num_attention_heads=12,
    ),
    "large": dict(
        hidden_size=1024,
        intermediate_dim=4096,
        num_hidden_layers=24,
        num_attention_heads=16,
    ),
}


def _vit_jax_image(size: str) -> dict:
    dims = _VIT_SIZES[size]
    return {
        "patches": {"size": [16, 16]},
        "hidden_size": dims["hidden_size"],
        "transformer": {
            "mlp_dim": dims["mlp_dim"],
            "num_heads": dims["num_heads"],
            "num_layers": dims["num_layers"],
        },
        "classifier": "token",
        "representation_size": None,
    }


def _small_text(width: int, mlp_dim: int, num_heads: int) -> dict:
    return {
        "width": width,
        "num_layers": 12,
        "mlp_dim": mlp_dim,
        "num_heads": num_heads,
        "vocab_size": 16_000,
    }


# The released models (`get_lit_*_config` in `vit_jax/configs/models.py`).
VISION_TRANSFORMER_LIT_CONFIGS = {
    "LiT-B16B": {
        "out_dim": [768, 768],
        "image": _vit_jax_image("B"),
        "text_model": "bert",
        "text": {"config": "base"},
        "pp": {"tokenizer_name": "bert", "size": 224, "max_len": 16},
    },
    "LiT-B16B_2": {
        "out_dim": [None, 768],
        "image": _vit_jax_image("B"),
        "text_model": "bert",
        "text": {"config": "base"},
        "pp": {"tokenizer_name": "bert", "size": 224, "max_len": 16},
    },
    "LiT-L16L": {
        "out_dim": [None, 1024],
        "image": _vit_jax_image("L"),
        "text_model": "bert",
        "text": {"config": "large"},
        "pp": {"tokenizer_name": "bert", "size": 224, "max_len": 16},
    },
    "LiT-L16S": {
        "out_dim": [None, 1024],
        "image": _vit_jax_image("L"),
        "text_model": "text_transformer",
        "text": _small_text(384, 1536, 6),
        "pp": {"tokenizer_name": "sentencepiece", "size": 224, "max_len": 16},
    },
    "LiT-L16Ti": {
        "out_dim": [None, 1024],
        "image": _vit_jax_image("L"),
        "text_model": "text_transformer",
        "text": _small_text(192, 768, 3),
        "pp": {"tokenizer_name": "sentencepiece", "size": 224, "max_len": 16},
    },
}


def _bert_dims(text: dict) -> dict:
    config = text.get("config", "base")
    if isinstance(config, str):
        if config not in _BERT_SIZES:
            raise ValueError(
                f"Unknown BERT config {config!r}; expected one of "
                f"{sorted(_BERT_SIZES)} or a dict of sizes."
            )
        return _BERT_SIZES[config]
    missing = set(_BERT_SIZES["base"]) - set(config)
    if missing:
        raise ValueError(f"The BERT config lacks {sorted(missing)}.")
    return {k: config[k] for k in _BERT_SIZES["base"]}


def _bert_embedder_name(reader, prefix, kind):
    # `BertEncoder` names it `embedders_token_ids`, `FullEncoder`
    # `embedders_input_ids`.
    for name in (kind, "input_ids") if kind == "token_ids" else (kind,):
        key = f"{prefix}embedder/embedders_{name}/embedding"
        if reader.has(key):
            return key
    return f"{prefix}embedder/embedders_{kind}/embedding"


def bert_text_tower(
    vocabulary_size: int,
    num_layers: int,
    num_heads: int,
    hidden_dim: int,
    intermediate_dim: int,
    max_sequence_length: int,
    num_segments: int,
    num_classes: int | None,
    sequence_length: int = 16,
) -> keras.Model:
    """LiT's BERT text tower: keras-hub `BertBackbone`, `[CLS]`, `head`.

    Token id 0 is padding (the attention mask is `token_ids != 0`), all
    tokens are segment 0, and the `[CLS]` feature goes through a linear
    `head`, as in `vit_jax/models_lit.py`. The tower is a functional Keras
    model (`token_ids` in, features out), so it serialises with presets.

    Example:

    >>> tower = bert_text_tower(  # doctest: +SKIP
    ...     vocabulary_size=100, num_layers=2, num_heads=2, hidden_dim=32,
    ...     intermediate_dim=64, max_sequence_length=16, num_segments=2,
    ...     num_classes=8,
    ... )
    """
    bert = keras_hub.models.BertBackbone(
        vocabulary_size=vocabulary_size,
        num_layers=num_layers,
        num_heads=num_heads,
        hidden_dim=hidden_dim,
        intermediate_dim=intermediate_dim,
        dropout=0.0,
        max_sequence_length=max_sequence_length,
        num_segments=num_segments,
        name="bert",
    )
    token_ids = keras.Input(
        shape=(sequence_length,), dtype="int32", name="token_ids"
    )
    outputs = bert(
        {
            "token_ids": token_ids,
            "segment_ids": ops.zeros_like(token_ids),
            "padding_mask": ops.cast(ops.not_equal(token_ids, 0), "int32"),
        }
    )
    x = outputs["sequence_output"][:, 0]
    if num_classes:
        x = keras.layers.Dense(num_classes, name="head")(x)
    return keras.Model(token_ids, x, name="bert_text_tower")


def assign_flaxformer_bert(reader: CheckpointReader, bert, prefix: str) -> None:
    """Loads a flaxformer `BertEncoder` under `prefix` into a keras-hub
    `BertBackbone` (its unused pooler is zeroed: LiT never had one)."""
    p = prefix
    reader.assign(
        bert.get_layer("token_embedding").embeddings,
        _bert_embedder_name(reader, p, "token_ids"),
    )
    reader.assign(
        bert.get_layer("position_embedding").position_embeddings,
        _bert_embedder_name(reader, p, "position_ids"),
    )
    reader.assign(
        bert.get_layer("segment_embedding").embeddings,
        _bert_embedder_name(reader, p, "segment_ids"),
    )
    assign_layer_norm(
        reader, bert.get_layer("embeddings_layer_norm"), f"{p}layer_norm"
    )
    for i in range(bert.num_layers):
        layer = bert.get_layer(f"transformer_layer_{i}")
        q = f"{p}encoder_block/layer_sequence/layers_{i}"
        attention = layer._self_attention_layer
        for name in ("query", "key", "value"):
            dense = getattr(attention, f"{name}_dense")
            stem = f"{q}/attention_block/attention_layer/{name}"
            assign_reshaped(reader, dense.kernel, f"{stem}/kernel")
            assign_reshaped(reader, dense.bias, f"{stem}/bias")
        stem = f"{q}/attention_block/dense_layer"
        assign_reshaped(reader, attention.output_dense.kernel, f"{stem}/kernel")
        assign_reshaped(reader, attention.output_dense.bias, f"{stem}/bias")
        assign_layer_norm(
            reader,
            layer._self_attention_layer_norm,
            f"{q}/attention_block/layer_norm",
        )
        assign_dense(
            reader,
            layer._feedforward_intermediate_dense,
            f"{q}/mlp_block/mlp/dense_layer",
        )
        assign_dense(
            reader,
            layer._feedforward_output_dense,
            f"{q}/mlp_block/dense_layer",
        )
        assign_layer_norm(
            reader, layer._feedforward_layer_norm, f"{q}/mlp_block/layer_norm"
        )
    pooler = bert.get_layer("pooled_dense")
    pooler.kernel.assign(np.zeros(pooler.kernel.shape, "float32"))
    pooler.bias.assign(np.zeros(pooler.bias.shape, "float32"))


def _resolve_config(config, checkpoint) -> dict:
    if config is None:
        # The released files are named after their config.
        config = os.path.splitext(os.path.basename(os.fspath(checkpoint)))[0]
    if isinstance(config, str):
        if config not in VISION_TRANSFORMER_LIT_CONFIGS:
            raise ValueError(
                f"Unknown LiT model {config!r}. Pass a config dict or one "
                f"of {sorted(VISION_TRANSFORMER_LIT_CONFIGS)}."
            )
        config = VISION_TRANSFORMER_LIT_CONFIGS[config]
    config = dict(config.get("model_kwargs", config))
    for key in ("image", "text_model", "out_dim"):
        if key not in config:
            raise ValueError(f"The LiT config lacks {key!r}.")
    return config


def convert_vision_transformer_lit(
    checkpoint: str | os.PathLike,
    config: dict[str, Any] | str | None = None,
    image_size: int | None = None,
    sequence_length: int | None = None,
    preprocessor: LiTPreprocessor | None = None,
) -> LiT:
    """Builds a `LiT` task from a google-research/vision_transformer LiT
    checkpoint (`LiT-B16B`, `LiT-B16B_2`, `LiT-L16L`, `LiT-L16S`,
    `LiT-L16Ti`, or any `vit_jax/models_lit.py` model).

    Args:
        checkpoint: Path of the `.npz` (names `img/...`, `txt/...`, `t`,
            with or without a `params/` prefix).
        config: The `vit_jax` LiT config as a dict (`out_dim`, `image`,
            `text_model`, `text`, `pp`), or the name of a released model;
            defaults to the checkpoint's file name (`LiT-B16B.npz`).
        image_size: Input resolution. Defaults to the config's `pp.size`,
            else the size the checkpoint's position embedding implies, else
            224. Any other size resamples the position embedding (the class
            token's row is kept).
        sequence_length: Text length. `text_transformer` towers run at
            the length of the checkpoint's position embedding; BERT towers
            default to the config's `pp.max_len` (16 for the released
            models, their training length).
        preprocessor: The task's `LiTPreprocessor` (e.g. with the
            model's tokenizer); defaults to one taking token ids.

    Returns:
        A softmax-loss `LiT` task with every checkpoint parameter loaded.
        Text towers expect the token ids of the model's own tokenizer
        (BERT WordPiece with id 0 for padding, or SentencePiece).

    Example:

    >>> model = convert_vision_transformer_lit("LiT-B16B.npz")  # doctest: +SKIP
    >>> model.save_to_preset("./lit_b16b")  # doctest: +SKIP
    """
    config = _resolve_config(config, checkpoint)
    out_dim = config["out_dim"]
    if isinstance(out_dim, int) or out_dim is None:
        out_dim = (out_dim, out_dim)
    reader = big_vision.open_checkpoint(checkpoint, linen=True)
    root = (
        "params/" if any(k.startswith("params/") for k in reader.params) else ""
    )
    img, txt = f"{root}img/", f"{root}txt/"
    image = config["image"]
    # vit_jax puts the class token's row in front of the patch grid.
    class_rows = int(image.get("classifier", "token") == "token")
    image_size = checkpoint_image_size(
        reader,
        f"{img}Transformer/posembed_input/pos_embedding",
        tuple(image["patches"]["size"]),
        image_size or config.get("pp", {}).get("size"),
        num_prefix_tokens=class_rows,
    )

    vit = vit_from_vit_jax_config(image, out_dim[0], image_size)
    text_model = config["text_model"]
    text = config.get("text") or {}
    if text_model == "text_transformer":
        posemb = reader.params.get(f"{txt}pos_embedding")
        length = posemb.shape[1] if posemb is not None else None
        if sequence_length is not None and length and sequence_length != length:
            raise ValueError(
                f"`sequence_length` ({sequence_length}) differs from the "
                f"checkpoint's text position embedding ({length})."
            )
        text_tower = TextTransformer(
            vocab_size=text.get("vocab_size", 32_000),
            sequence_length=length or sequence_length or 16,
            width=text.get("width", 512),
            depth=text.get("num_layers", 12),
            mlp_dim=text.get("mlp_dim", 2048),
            num_heads=text.get("num_heads", 8),
            pool_type="last",
            num_classes=out_dim[1],
        )
    elif text_model == "bert":
        dims = _bert_dims(text)
        bert_prefix = f"{txt}BertEncoder_0/"

        def rows(kind):
            name = _bert_embedder_name(reader, bert_prefix, kind)
            return reader.params[name].shape[0] if reader.has(name) else None

        text_tower = bert_text_tower(
            vocabulary_size=rows("token_ids") or 30_522,
            num_layers=dims["num_hidden_layers"],
            num_heads=dims["num_attention_heads"],
            hidden_dim=dims["hidden_size"],
            intermediate_dim=dims["intermediate_dim"],
            max_sequence_length=rows("position_ids") or 512,
            num_segments=rows("segment_ids") or 2,
            num_classes=out_dim[1],
            sequence_length=(
                sequence_length or config.get("pp", {}).get("max_len") or 16
            ),
        )
    else:
        raise ValueError(
            "`text_model` must be 'bert' or 'text_transformer'. Received: "
            f"text_model={text_model!r}"
        )

    backbone = LiTBackbone(vit, text_tower)
    log_t = big_vision.first_value(reader, f"{root}t", float(np.log(10.0)))
    model = LiT(
        backbone,
        preprocessor,
        loss="softmax",
        temperature_init=float(np.exp(log_t)),
        **lit_task_kwargs(log_t),
    )
    assign_vit_jax(reader, vit, img)
    if text_model == "bert":
        assign_flaxformer_bert(
            reader, text_tower.get_layer("bert"), f"{txt}BertEncoder_0/"
        )
        if out_dim[1]:
            assign_dense(reader, text_tower.get_layer("head"), f"{txt}head")
    else:
        assign_text_transformer(reader, text_tower, txt)
    reader.assign(model.log_temperature, f"{root}t", transform=np.ravel)
    reader.finish()
    return model


def convert_lit_preset(
    checkpoint: str, entry: dict[str, Any], files: dict[str, str] | None = None
) -> LiT:
    """Converts a downloaded checkpoint of a registered LiT / SigLIP preset.

    Args:
        checkpoint: Path of the downloaded npz.
        entry: The preset's entry in `lit_presets.backbone_presets`: its
            `source` picks the converter, `config` configures it and
            `text` holds the tokenization rules.
        files: Downloaded extra files; `files["vocabulary"]` becomes the
            preprocessor's tokenizer.

    Returns:
        The converted task, ready for `save_to_preset`.

    Example:

    >>> model = convert_lit_preset(  # doctest: +SKIP
    ...     "webli_en_b16_224_63724782.npz",
    ...     lit_presets.backbone_presets["siglip_b16_224"],
    ...     files={"vocabulary": "c4_en.model"},
    ... )
    """
    source, config = entry.get("source"), entry["config"]
    if source == "vision_transformer":
        config = _resolve_config(config, checkpoint)
        image_size = config.get("pp", {}).get("size") or 224
        convert = convert_vision_transformer_lit
    elif source == "big_vision":
        image_size = config.get("image_size")
        convert = convert_lit
    else:
        raise ValueError(
            "A LiT preset's `source` must be 'vision_transformer' or "
            f"'big_vision'. Received: source={source!r}"
        )
    preprocessor = None
    vocabulary = (files or {}).get("vocabulary")
    if vocabulary is not None:
        text = entry["text"]
        preprocessor = LiTPreprocessor.from_vocabulary(
            vocabulary,
            text["rules"],
            sequence_length=text["sequence_length"],
            image_size=image_size,
        )
    return convert(checkpoint, config, preprocessor=preprocessor)
