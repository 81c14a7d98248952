"""Hugging Face `MT5ForConditionalGeneration` -> `PaLILanguageModel`.

Reads a `save_pretrained` folder, a single `.safetensors` / `.bin` state
dict, or a state dict already in memory, without needing `transformers`
itself. The output projection comes from `lm_head.weight`; a checkpoint
saved with tied embeddings (which drops it) uses `shared.weight`, as
transformers does. mT5's logits are never rescaled.
"""

import os
from typing import Any

import numpy as np

from keras_vl.convert.huggingface import (
    assign_linear,
    load_transformers_checkpoint,
    open_reader,
    require_choice,
)
from keras_vl.models.pali.pali_language_model import PaLILanguageModel

# Every setting the converter reads, with transformers' default.
MT5_DEFAULTS: dict[str, Any] = dict(
    vocab_size=250112,
    d_model=512,
    d_kv=64,
    d_ff=1024,
    num_layers=8,
    num_decoder_layers=None,
    num_heads=6,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    dropout_rate=0.1,
    layer_norm_epsilon=1e-6,
    feed_forward_proj="gated-gelu",
)


def mt5_language_kwargs(config: dict[str, Any]) -> dict[str, Any]:
    """`PaLILanguageModel` arguments for an mT5 `config.json` dict.

    Example:

    >>> mt5_language_kwargs({"d_model": 64, "num_heads": 2})["hidden_dim"]
    64
    """
    if config.get("model_type", "mt5") not in ("mt5", "t5"):
        raise ValueError(
            "Expected an 'mt5' checkpoint. Received "
            f"model_type={config.get('model_type')!r}"
        )
    values = {
        **MT5_DEFAULTS,
        **{k: v for k, v in config.items() if v is not None},
    }
    require_choice(
        values["feed_forward_proj"],
        ("gated-gelu",),
        "feed_forward_proj",
        "PaLI's language model is mT5, whose feed-forward is gated GELU.",
    )
    return dict(
        vocabulary_size=int(values["vocab_size"]),
        hidden_dim=int(values["d_model"]),
        intermediate_dim=int(values["d_ff"]),
        num_heads=int(values["num_heads"]),
        key_value_dim=int(values["d_kv"]),
        num_encoder_layers=int(values["num_layers"]),
        num_decoder_layers=int(
            values["num_decoder_layers"] or values["num_layers"]
        ),
        dropout=float(values["dropout_rate"]),
        layer_norm_epsilon=float(values["layer_norm_epsilon"]),
        relative_attention_num_buckets=int(
            values["relative_attention_num_buckets"]
        ),
        relative_attention_max_distance=int(
            values["relative_attention_max_distance"]
        ),
    )


def _as_numpy(value) -> np.ndarray:
    # torch tensors (an in-memory state dict) go through float32.
    if hasattr(value, "detach"):
        value = value.detach().cpu()
        if value.is_floating_point():
            value = value.float()
        value = value.numpy()
    return np.asarray(value)


def _assign_attention(reader, attention, prefix: str) -> None:
    for name, dense in (
        ("q", attention.query),
        ("k", attention.key),
        ("v", attention.value),
        ("o", attention.output_dense),
    ):
        assign_linear(reader, dense, f"{prefix}.{name}")


def _assign_stack(reader, stack, prefix: str) -> None:
    reader.assign(
        stack.relative_attention_bias,
        f"{prefix}.block.0.layer.0.SelfAttention.relative_attention_bias"
        ".weight",
    )
    for i, block in enumerate(stack.blocks):
        layer = f"{prefix}.block.{i}.layer"
        reader.assign(
            block.self_attention_norm.scale, f"{layer}.0.layer_norm.weight"
        )
        _assign_attention(
            reader, block.self_attention, f"{layer}.0.SelfAttention"
        )
        mlp = 1
        if stack.is_decoder:
            reader.assign(
                block.cross_attention_norm.scale, f"{layer}.1.layer_norm.weight"
            )
            _assign_attention(
                reader, block.cross_attention, f"{layer}.1.EncDecAttention"
            )
            mlp = 2
        reader.assign(block.mlp_norm.scale, f"{layer}.{mlp}.layer_norm.weight")
        dense = f"{layer}.{mlp}.DenseReluDense"
        assign_linear(reader, block.mlp_gate, f"{dense}.wi_0")
        assign_linear(reader, block.mlp_linear, f"{dense}.wi_1")
        assign_linear(reader, block.mlp_output, f"{dense}.wo")
    reader.assign(stack.final_norm.scale, f"{prefix}.final_layer_norm.weight")


def convert_mt5(
    source: str | os.PathLike | dict[str, Any],
    config: dict[str, Any] | str | os.PathLike | None = None,
    dtype=None,
) -> PaLILanguageModel:
    """Builds a `PaLILanguageModel` holding an mT5 checkpoint's weights.

    Args:
        source: A `save_pretrained` folder of `MT5ForConditionalGeneration`,
            one `.safetensors` / `.bin` state dict, or a state dict in
            memory (`model.state_dict()`: names to torch tensors or numpy
            arrays).
        config: The config as a dict or a `config.json` path; by default
            the one in (or next to) `source`. Required for an in-memory
            state dict (`model.config.to_dict()`).
        dtype: Dtype policy of the built model.

    Returns:
        The language model, ready for `PaLI.from_parts(language=...)` or
        `save_to_preset`.

    Example:

    >>> language = convert_mt5("./mt5-small")  # doctest: +SKIP
    >>> language.save_to_preset("./mt5_small_preset")  # doctest: +SKIP
    """
    if isinstance(source, dict):
        if not isinstance(config, dict):
            raise ValueError(
                "`config` must be the model's config dict when `source` is "
                "a state dict in memory."
            )
        params = {name: _as_numpy(v) for name, v in source.items()}
        origin = "the given state dict"
    else:
        params, config = load_transformers_checkpoint(source, config)
        origin = os.fspath(source)
    model = PaLILanguageModel(**mt5_language_kwargs(config), dtype=dtype)
    reader = open_reader(params, origin)
    reader.assign(model.token_embedding.embeddings, "shared.weight")
    # Copies of `shared.weight` that some state dicts list as well.
    reader.ignore("encoder.embed_tokens.")
    reader.ignore("decoder.embed_tokens.")
    _assign_stack(reader, model.encoder, "encoder")
    _assign_stack(reader, model.decoder, "decoder")
    head = "lm_head.weight" if "lm_head.weight" in params else "shared.weight"
    reader.assign(model.lm_head.kernel, head, transform=np.transpose)
    reader.finish()
    return model
