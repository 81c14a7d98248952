"""Hugging Face `SiglipModel` / `CLIPModel` checkpoints -> `LiT`.

Reads a `save_pretrained` folder (`config.json` plus `model.safetensors`,
sharded safetensors or `pytorch_model.bin`) or a single state-dict file,
without needing `transformers` itself.

- **SigLIP** is big_vision's model, so it becomes keras_vl's own towers: a
  `ViTBackbone` with MAP pooling and no class token, and a
  `TextTransformer` with `"last"` pooling and a `head`. The loss is
  sigmoid, with the checkpoint's `logit_scale` (a log) and `logit_bias`.
- **CLIP** differs from the big_vision layout in ways keras_vl's layers do
  not express (a LayerNorm before the ViT encoder, QuickGELU, LayerNorm
  epsilon 1e-5, a causal text mask, pooling at the EOS token), so its
  towers are functional Keras models built from keras-hub's CLIP layers
  (`CLIPVisionEncoder`, `CLIPEncoderLayer`, `TokenAndPositionEmbedding`)
  followed by the bias-free projections. The loss is softmax.

Embeddings are L2-normalised by the `LiTBackbone`, as in both models.
"""

import math
import os
from typing import Any

import keras
import keras_hub
import numpy as np
from keras import ops
from keras_hub.layers import TokenAndPositionEmbedding
from keras_hub.src.models.clip.clip_layers import CLIPEncoderLayer

from keras_vl.convert.huggingface import (
    assign_attention,
    assign_conv,
    assign_layer_norm,
    assign_linear,
    load_transformers_checkpoint,
    open_reader,
    require_choice,
    sub_config,
)
from keras_vl.models.lit.lit import LiT
from keras_vl.models.lit.lit_backbone import LiTBackbone
from keras_vl.models.lit.lit_convert import lit_task_kwargs
from keras_vl.models.lit.text_transformer import TextTransformer
from keras_vl.models.vit.vit_convert import (
    SIGLIP_VISION_DEFAULTS,
    assign_huggingface_block,
    assign_siglip_vision,
    vit_from_siglip_config,
)

_SIGLIP_TEXT = dict(
    vocab_size=32000,
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    max_position_embeddings=64,
    hidden_act="gelu_pytorch_tanh",
    layer_norm_eps=1e-6,
    projection_size=None,
)
_CLIP_TEXT = dict(
    vocab_size=49408,
    hidden_size=512,
    intermediate_size=2048,
    num_hidden_layers=12,
    num_attention_heads=8,
    max_position_embeddings=77,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
    eos_token_id=49407,
)
_CLIP_VISION = dict(
    hidden_size=768,
    intermediate_size=3072,
    num_hidden_layers=12,
    num_attention_heads=12,
    num_channels=3,
    image_size=224,
    patch_size=32,
    hidden_act="quick_gelu",
    layer_norm_eps=1e-5,
)


def _clip_block(reader, block, prefix: str) -> None:
    """A HF CLIP encoder layer -> keras-hub `CLIPEncoderLayer`."""
    assign_layer_norm(reader, block.layer_norm_1, f"{prefix}.layer_norm1")
    assign_attention(reader, block.attention, f"{prefix}.self_attn")
    assign_layer_norm(reader, block.layer_norm_2, f"{prefix}.layer_norm2")
    assign_linear(reader, block.dense_1, f"{prefix}.mlp.fc1")
    assign_linear(reader, block.dense_2, f"{prefix}.mlp.fc2")


# === SigLIP ===


def convert_siglip(
    source: str | os.PathLike,
    config: dict[str, Any] | str | None = None,
) -> LiT:
    """Builds a `LiT` task from a Hugging Face `SiglipModel` checkpoint.

    Args:
        source: A `save_pretrained` folder or a state-dict file.
        config: The model's config (dict or `config.json` path); defaults
            to the folder's `config.json`.

    Returns:
        A sigmoid-loss `LiT` whose image tower is a MAP-pooled
        `ViTBackbone` and whose text tower is a `TextTransformer`. Images
        are model-ready pixels `[B, S, S, 3]` (channels last; SigLIP's
        processors map `[0, 255]` to `[-1, 1]`); token ids are padded to
        the full `max_position_embeddings` as SigLIP expects.

    Example:

    >>> model = convert_siglip("./siglip-base-patch16-224")  # doctest: +SKIP
    >>> model.save_to_preset("./siglip_b16")  # doctest: +SKIP
    """
    params, config = load_transformers_checkpoint(source, config)
    vision = sub_config(
        config, "vision_config", SIGLIP_VISION_DEFAULTS, "siglip"
    )
    text = sub_config(config, "text_config", _SIGLIP_TEXT, "siglip")
    why = "keras_vl's ViT and text towers use tanh-approximated GELU."
    for name, tower in (("vision", vision), ("text", text)):
        require_choice(
            tower["hidden_act"],
            ("gelu_pytorch_tanh", "gelu_new"),
            f"{name}_config.hidden_act",
            why,
        )
        if not math.isclose(tower["layer_norm_eps"], 1e-6):
            raise ValueError(
                f"Unsupported {name}_config.layer_norm_eps="
                f"{tower['layer_norm_eps']}: keras_vl's towers use 1e-6."
            )
    if not vision["vision_use_head"]:
        raise ValueError(
            "SigLIP models without the attention-pooling head "
            "(`vision_use_head=False`) are not supported."
        )

    vit = vit_from_siglip_config(vision)
    text_tower = TextTransformer(
        vocab_size=text["vocab_size"],
        sequence_length=text["max_position_embeddings"],
        width=text["hidden_size"],
        depth=text["num_hidden_layers"],
        mlp_dim=text["intermediate_size"],
        num_heads=text["num_attention_heads"],
        pool_type="last",
        num_classes=text["projection_size"] or text["hidden_size"],
        name="siglip_text_tower",
    )
    scale = float(np.ravel(params.get("logit_scale", [0.0]))[0])
    bias = float(np.ravel(params.get("logit_bias", [0.0]))[0])
    model = LiT(
        LiTBackbone(vit, text_tower),
        loss="sigmoid",
        temperature_init=math.exp(scale),
        bias_init=bias,
        **lit_task_kwargs(scale),
    )

    reader = open_reader(params, source)
    assign_siglip_vision(reader, vit)

    t = "text_model"
    reader.assign(
        text_tower.token_embedding.embeddings,
        f"{t}.embeddings.token_embedding.weight",
    )
    reader.assign(
        text_tower.position_embedding.embedding,
        f"{t}.embeddings.position_embedding.weight",
        transform=lambda w: w[None],
    )
    for i, block in enumerate(text_tower.encoder.blocks):
        assign_huggingface_block(reader, block, f"{t}.encoder.layers.{i}")
    assign_layer_norm(reader, text_tower.encoder.norm, f"{t}.final_layer_norm")
    assign_linear(reader, text_tower.head, f"{t}.head")

    reader.assign(
        model.log_temperature, "logit_scale", transform=lambda x: x.reshape(1)
    )
    reader.assign(
        model.logit_bias, "logit_bias", transform=lambda x: x.reshape(1)
    )
    reader.finish()
    return model


# === CLIP ===

_CLIP_ACTIVATIONS = {"quick_gelu": "quick_gelu", "gelu": "gelu"}


def clip_vision_tower(
    image_size: int,
    patch_size: int,
    width: int,
    depth: int,
    num_heads: int,
    mlp_dim: int,
    projection_dim: int,
    activation: str = "quick_gelu",
    num_channels: int = 3,
) -> keras.Model:
    """CLIP's image tower: keras-hub `CLIPVisionEncoder` (class token,
    pre-LayerNorm, encoder, final LayerNorm), the class token, and the
    bias-free `visual_projection`. Images `[B, S, S, C]` -> `[B, P]`.

    Example:

    >>> tower = clip_vision_tower(  # doctest: +SKIP
    ...     image_size=32, patch_size=8, width=32, depth=2, num_heads=2,
    ...     mlp_dim=64, projection_dim=16,
    ... )
    """
    encoder = keras_hub.models.CLIPVisionEncoder(
        patch_size=patch_size,
        hidden_dim=width,
        num_layers=depth,
        num_heads=num_heads,
        intermediate_dim=mlp_dim,
        intermediate_activation=activation,
        image_shape=(image_size, image_size, num_channels),
        name="vision_encoder",
    )
    images = keras.Input((image_size, image_size, num_channels), name="images")
    x = encoder({"images": images})[:, 0]
    x = keras.layers.Dense(
        projection_dim, use_bias=False, name="visual_projection"
    )(x)
    return keras.Model(images, x, name="clip_vision_tower")


def clip_text_tower(
    vocab_size: int,
    max_sequence_length: int,
    width: int,
    depth: int,
    num_heads: int,
    mlp_dim: int,
    projection_dim: int,
    eos_token_id: int,
    activation: str = "quick_gelu",
    layer_norm_epsilon: float = 1e-5,
) -> keras.Model:
    """CLIP's text tower from keras-hub layers: token + position embedding,
    causally masked `CLIPEncoderLayer`s, a final LayerNorm, the feature at
    the first `eos_token_id` (at the largest id when `eos_token_id == 2`,
    as `transformers` does for old configs), and the bias-free
    `text_projection`. Token ids `[B, max_sequence_length]` -> `[B, P]`;
    the causal mask makes any padding after the EOS token irrelevant.

    Example:

    >>> tower = clip_text_tower(  # doctest: +SKIP
    ...     vocab_size=100, max_sequence_length=16, width=32, depth=2,
    ...     num_heads=2, mlp_dim=64, projection_dim=16, eos_token_id=99,
    ... )
    """
    token_ids = keras.Input(
        (max_sequence_length,), dtype="int32", name="token_ids"
    )
    x = TokenAndPositionEmbedding(
        vocabulary_size=vocab_size,
        sequence_length=max_sequence_length,
        embedding_dim=width,
        name="embedding",
    )(token_ids)
    for i in range(depth):
        x = CLIPEncoderLayer(
            width,
            num_heads,
            mlp_dim,
            activation,
            use_causal_mask=True,
            name=f"encoder_block_{i}",
        )(x)
    x = keras.layers.LayerNormalization(
        epsilon=layer_norm_epsilon, name="final_layer_norm"
    )(x)
    if eos_token_id == 2:
        eos = ops.argmax(token_ids, axis=-1)
    else:
        eos = ops.argmax(
            ops.cast(ops.equal(token_ids, eos_token_id), "int32"), axis=-1
        )
    x = ops.take_along_axis(x, eos[:, None, None], axis=1)[:, 0]
    x = keras.layers.Dense(
        projection_dim, use_bias=False, name="text_projection"
    )(x)
    return keras.Model(token_ids, x, name="clip_text_tower")


def convert_clip(
    source: str | os.PathLike,
    config: dict[str, Any] | str | None = None,
) -> LiT:
    """Builds a `LiT` task from a Hugging Face `CLIPModel` checkpoint.

    Args:
        source: A `save_pretrained` folder or a state-dict file.
        config: The model's config (dict or `config.json` path); defaults
            to the folder's `config.json`.

    Returns:
        A softmax-loss `LiT` with keras-hub CLIP towers (see the module
        docstring). Images are model-ready pixels `[B, S, S, 3]` (channels
        last, normalised with CLIP's mean and std); token ids come from
        CLIP's tokenizer (BOS ... EOS, any padding after the first EOS).

    Example:

    >>> model = convert_clip("./clip-vit-base-patch32")  # doctest: +SKIP
    >>> model.save_to_preset("./clip_b32")  # doctest: +SKIP
    """
    params, config = load_transformers_checkpoint(source, config)
    vision = sub_config(config, "vision_config", _CLIP_VISION, "clip")
    text = sub_config(config, "text_config", _CLIP_TEXT, "clip")
    for name, tower in (("vision", vision), ("text", text)):
        require_choice(
            tower["hidden_act"],
            tuple(_CLIP_ACTIVATIONS),
            f"{name}_config.hidden_act",
            "keras-hub's CLIP layers implement these.",
        )
    if not math.isclose(vision["layer_norm_eps"], 1e-5):
        raise ValueError(
            "Unsupported vision_config.layer_norm_eps="
            f"{vision['layer_norm_eps']}: keras-hub's CLIP vision encoder "
            "uses 1e-5."
        )
    projection_dim = params["visual_projection.weight"].shape[0]

    vision_tower = clip_vision_tower(
        image_size=vision["image_size"],
        patch_size=vision["patch_size"],
        width=vision["hidden_size"],
        depth=vision["num_hidden_layers"],
        num_heads=vision["num_attention_heads"],
        mlp_dim=vision["intermediate_size"],
        projection_dim=projection_dim,
        activation=_CLIP_ACTIVATIONS[vision["hidden_act"]],
        num_channels=vision["num_channels"],
    )
    text_tower = clip_text_tower(
        vocab_size=text["vocab_size"],
        max_sequence_length=text["max_position_embeddings"],
        width=text["hidden_size"],
        depth=text["num_hidden_layers"],
        num_heads=text["num_attention_heads"],
        mlp_dim=text["intermediate_size"],
        projection_dim=params["text_projection.weight"].shape[0],
        eos_token_id=text["eos_token_id"],
        activation=_CLIP_ACTIVATIONS[text["hidden_act"]],
        layer_norm_epsilon=text["layer_norm_eps"],
    )
    scale = float(np.ravel(params.get("logit_scale", [math.log(1 / 0.07)]))[0])
    model = LiT(
        LiTBackbone(vision_tower, text_tower),
        loss="softmax",
        temperature_init=math.exp(scale),
        **lit_task_kwargs(scale),
    )

    reader = open_reader(params, source)
    v = "vision_model"
    encoder = vision_tower.get_layer("vision_encoder")
    embedding = encoder.embedding
    assign_conv(
        reader, embedding.patch_embedding, f"{v}.embeddings.patch_embedding"
    )
    reader.assign(embedding.class_embedding, f"{v}.embeddings.class_embedding")
    reader.assign(
        embedding.position_embedding.embeddings,
        f"{v}.embeddings.position_embedding.weight",
    )
    # keras-hub leaves the position ids at zero until weights are loaded.
    embedding.position_ids.assign(
        np.arange(embedding.num_positions, dtype="int32")[None]
    )
    assign_layer_norm(reader, encoder.pre_layer_norm, f"{v}.pre_layrnorm")
    for i, block in enumerate(encoder.encoder_layers):
        _clip_block(reader, block, f"{v}.encoder.layers.{i}")
    assign_layer_norm(reader, encoder.layer_norm, f"{v}.post_layernorm")
    assign_linear(
        reader, vision_tower.get_layer("visual_projection"), "visual_projection"
    )

    t = "text_model"
    embedding = text_tower.get_layer("embedding")
    reader.assign(
        embedding.token_embedding.embeddings,
        f"{t}.embeddings.token_embedding.weight",
    )
    reader.assign(
        embedding.position_embedding.position_embeddings,
        f"{t}.embeddings.position_embedding.weight",
    )
    for i in range(text["num_hidden_layers"]):
        _clip_block(
            reader,
            text_tower.get_layer(f"encoder_block_{i}"),
            f"{t}.encoder.layers.{i}",
        )
    assign_layer_norm(
        reader,
        text_tower.get_layer("final_layer_norm"),
        f"{t}.final_layer_norm",
    )
    assign_linear(
        reader, text_tower.get_layer("text_projection"), "text_projection"
    )

    reader.assign(
        model.log_temperature, "logit_scale", transform=lambda x: x.reshape(1)
    )
    reader.finish()
    return model
