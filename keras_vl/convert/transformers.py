"""Hugging Face `SiglipModel` / `CLIPModel` checkpoints -> keras_vl `LiT`.

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

import json
import math
import os
import struct

import keras
import numpy as np
from keras import ops

from keras_vl.convert.big_vision import lit_task_kwargs
from keras_vl.convert.checkpoint import CheckpointReader

CONFIG_FILE = "config.json"
_WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

# === Reading state dicts ===

_SAFETENSORS_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
}


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a `.safetensors` file into numpy arrays (bf16/f16 -> f32).

    The format is an 8-byte little-endian header size, a JSON header of
    `{name: {dtype, shape, data_offsets}}` and the raw little-endian data.
    """
    path = os.fspath(path)
    with open(path, "rb") as f:
        data = f.read()
    try:
        (header_size,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + header_size])
    except (struct.error, ValueError) as error:
        raise ValueError(
            f"{path!r} is not a readable .safetensors file: {error}"
        ) from error
    start = 8 + header_size
    arrays = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        begin, end = info["data_offsets"]
        buffer = data[start + begin : start + end]
        dtype = info["dtype"]
        if dtype == "BF16":
            bits = np.frombuffer(buffer, "<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        elif dtype in _SAFETENSORS_DTYPES:
            array = np.frombuffer(
                buffer, np.dtype(_SAFETENSORS_DTYPES[dtype]).newbyteorder("<")
            )
        else:
            raise ValueError(f"Unsupported safetensors dtype {dtype!r}.")
        array = array.reshape(info["shape"])
        if array.dtype == np.float16:
            array = array.astype(np.float32)
        arrays[name] = array
    return arrays


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a PyTorch `.bin` state dict (needs `torch`; tensors only, no
    pickled code: `weights_only=True`)."""
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "Reading a .bin state dict needs PyTorch; convert it to "
            ".safetensors or install torch."
        ) from error
    state = torch.load(os.fspath(path), map_location="cpu", weights_only=True)
    return {
        name: tensor.detach().float().numpy()
        if tensor.is_floating_point()
        else tensor.detach().numpy()
        for name, tensor in state.items()
    }


def _read_weights(path: str) -> dict[str, np.ndarray]:
    if path.endswith(".index.json"):
        with open(path, encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        folder = os.path.dirname(path)
        params = {}
        for shard in shards:
            params.update(_read_weights(os.path.join(folder, shard)))
        return params
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    if path.endswith((".bin", ".pt", ".pth")):
        return read_torch_state_dict(path)
    raise ValueError(
        f"Unsupported weights file {path!r}; expected .safetensors or .bin."
    )


def load_transformers_checkpoint(
    source: str | os.PathLike, config: dict | str | None = None
) -> tuple[dict[str, np.ndarray], dict]:
    """Reads a Hugging Face checkpoint's weights and config.

    Args:
        source: A `save_pretrained` folder, or one `.safetensors` / `.bin`
            state dict (sharded checkpoints: the `.index.json`).
        config: The model config as a dict or the path of its
            `config.json`; by default the `config.json` in the folder (or
            next to the file).

    Returns:
        `(params, config)`: float arrays by state-dict name, and the config.
    """
    source = os.fspath(source)
    if os.path.isdir(source):
        folder = source
        weights = next(
            (
                os.path.join(source, name)
                for name in _WEIGHT_FILES
                if os.path.exists(os.path.join(source, name))
            ),
            None,
        )
        if weights is None:
            raise ValueError(
                f"No weights in {source!r}: expected one of {_WEIGHT_FILES}."
            )
    elif os.path.isfile(source):
        folder, weights = os.path.dirname(source), source
    else:
        raise ValueError(f"`source` {source!r} does not exist.")
    if config is None:
        config = os.path.join(folder, CONFIG_FILE)
        if not os.path.exists(config):
            raise ValueError(
                f"No {CONFIG_FILE} next to {source!r}; pass `config`."
            )
    if not isinstance(config, dict):
        with open(config, encoding="utf-8") as f:
            config = json.load(f)
    return _read_weights(weights), config


# === Configs ===

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
_SIGLIP_VISION = dict(
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


def _sub_config(config: dict, key: str, defaults: dict, model_type: str):
    if config.get("model_type", model_type) != model_type:
        raise ValueError(
            f"Expected a {model_type!r} checkpoint. Received "
            f"model_type={config.get('model_type')!r}"
        )
    values = {**defaults, **(config.get(key) or {})}
    return {k: values[k] for k in defaults}


def _require(value, expected, name: str, why: str):
    if value not in expected:
        raise ValueError(
            f"Unsupported {name}={value!r}: {why} Expected one of {expected}."
        )


# === Assignment helpers (PyTorch layouts -> Keras) ===


def _linear(reader, dense, prefix: str) -> None:
    """`nn.Linear` `[out, in]` -> `Dense` kernel `[in, out]` (+ bias)."""
    reader.assign(dense.kernel, f"{prefix}.weight", transform=np.transpose)
    if dense.bias is not None:
        reader.assign(dense.bias, f"{prefix}.bias")


def _layer_norm(reader, layer, prefix: str) -> None:
    reader.assign(layer.gamma, f"{prefix}.weight")
    reader.assign(layer.beta, f"{prefix}.bias")


def _attention(reader, attention, prefix: str) -> None:
    """`q_proj`/`k_proj`/`v_proj`/`out_proj` -> `keras.layers.MultiHead
    Attention` (kernels `[D, H, Dh]`, output `[H, Dh, D]`)."""
    for name, hf in (("query", "q"), ("key", "k"), ("value", "v")):
        dense = getattr(attention, f"{name}_dense")
        reader.assign(
            dense.kernel,
            f"{prefix}.{hf}_proj.weight",
            transform=lambda w, d=dense: w.T.reshape(d.kernel.shape),
        )
        reader.assign(
            dense.bias,
            f"{prefix}.{hf}_proj.bias",
            transform=lambda b, d=dense: b.reshape(d.bias.shape),
        )
    out = attention.output_dense
    reader.assign(
        out.kernel,
        f"{prefix}.out_proj.weight",
        transform=lambda w: w.T.reshape(out.kernel.shape),
    )
    reader.assign(out.bias, f"{prefix}.out_proj.bias")


def _packed_attention(reader, attention, prefix: str) -> None:
    """`torch.nn.MultiheadAttention` (packed `in_proj`) -> Keras MHA."""
    weight = reader.take(f"{prefix}.in_proj_weight")
    bias = reader.take(f"{prefix}.in_proj_bias")
    width = attention.query_dense.kernel.shape[0]
    if weight.shape != (3 * width, width) or bias.shape != (3 * width,):
        raise ValueError(
            f"Parameters {prefix}.in_proj_* of {reader.source} have shapes "
            f"{weight.shape} and {bias.shape}; the model expects "
            f"{(3 * width, width)} and {(3 * width,)}."
        )
    names = ("query", "key", "value")
    for i, name in enumerate(names):
        dense = getattr(attention, f"{name}_dense")
        rows = slice(i * width, (i + 1) * width)
        dense.kernel.assign(weight[rows].T.reshape(dense.kernel.shape))
        dense.bias.assign(bias[rows].reshape(dense.bias.shape))
    out = attention.output_dense
    reader.assign(
        out.kernel,
        f"{prefix}.out_proj.weight",
        transform=lambda w: w.T.reshape(out.kernel.shape),
    )
    reader.assign(out.bias, f"{prefix}.out_proj.bias")


def _conv(reader, conv, prefix: str) -> None:
    """`nn.Conv2d` `[out, in, h, w]` -> Keras `[h, w, in, out]`."""
    reader.assign(
        conv.kernel,
        f"{prefix}.weight",
        transform=lambda w: w.transpose(2, 3, 1, 0),
    )
    if conv.bias is not None:
        reader.assign(conv.bias, f"{prefix}.bias")


def _encoder_block(reader, block, prefix: str) -> None:
    """A HF SigLIP/CLIP encoder layer -> `TransformerEncoderBlock`."""
    _layer_norm(reader, block.norm_0, f"{prefix}.layer_norm1")
    _attention(reader, block.attention, f"{prefix}.self_attn")
    _layer_norm(reader, block.norm_1, f"{prefix}.layer_norm2")
    _linear(reader, block.mlp.dense_0, f"{prefix}.mlp.fc1")
    _linear(reader, block.mlp.dense_1, f"{prefix}.mlp.fc2")


def _clip_block(reader, block, prefix: str) -> None:
    """A HF CLIP encoder layer -> keras-hub `CLIPEncoderLayer`."""
    _layer_norm(reader, block.layer_norm_1, f"{prefix}.layer_norm1")
    _attention(reader, block.attention, f"{prefix}.self_attn")
    _layer_norm(reader, block.layer_norm_2, f"{prefix}.layer_norm2")
    _linear(reader, block.dense_1, f"{prefix}.mlp.fc1")
    _linear(reader, block.dense_2, f"{prefix}.mlp.fc2")


def _reader(params: dict, source) -> CheckpointReader:
    reader = CheckpointReader(params, source=os.fspath(source))
    # Non-persistent index buffers of older checkpoints carry no weights.
    reader.used.update(k for k in params if k.endswith(".position_ids"))
    return reader


# === SigLIP ===


def convert_siglip(source: str | os.PathLike, config: dict | str | None = None):
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
    """
    from keras_vl.models.lit.lit import LiT
    from keras_vl.models.lit.lit_backbone import LiTBackbone
    from keras_vl.models.lit.text_transformer import TextTransformer
    from keras_vl.models.vit.vit_backbone import ViTBackbone

    params, config = load_transformers_checkpoint(source, config)
    vision = _sub_config(config, "vision_config", _SIGLIP_VISION, "siglip")
    text = _sub_config(config, "text_config", _SIGLIP_TEXT, "siglip")
    why = "keras_vl's ViT and text towers use tanh-approximated GELU."
    for name, tower in (("vision", vision), ("text", text)):
        _require(
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

    vit = ViTBackbone(
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

    reader = _reader(params, source)
    v = "vision_model"
    _conv(
        reader,
        vit.patch_embedding.projection,
        f"{v}.embeddings.patch_embedding",
    )
    reader.assign(
        vit.position_embedding.embedding,
        f"{v}.embeddings.position_embedding.weight",
        transform=lambda w: w[None],
    )
    for i, block in enumerate(vit.encoder.blocks):
        _encoder_block(reader, block, f"{v}.encoder.layers.{i}")
    _layer_norm(reader, vit.encoder.norm, f"{v}.post_layernorm")
    head = vit.map_head
    reader.assign(head.probe, f"{v}.head.probe")
    _packed_attention(reader, head.attention, f"{v}.head.attention")
    _layer_norm(reader, head.norm, f"{v}.head.layernorm")
    _linear(reader, head.mlp.dense_0, f"{v}.head.mlp.fc1")
    _linear(reader, head.mlp.dense_1, f"{v}.head.mlp.fc2")

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
        _encoder_block(reader, block, f"{t}.encoder.layers.{i}")
    _layer_norm(reader, text_tower.encoder.norm, f"{t}.final_layer_norm")
    _linear(reader, text_tower.head, f"{t}.head")

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
    bias-free `visual_projection`. Images `[B, S, S, C]` -> `[B, P]`."""
    import keras_hub

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
    the causal mask makes any padding after the EOS token irrelevant."""
    from keras_hub.layers import TokenAndPositionEmbedding
    from keras_hub.src.models.clip.clip_layers import CLIPEncoderLayer

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


def convert_clip(source: str | os.PathLike, config: dict | str | None = None):
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
    """
    from keras_vl.models.lit.lit import LiT
    from keras_vl.models.lit.lit_backbone import LiTBackbone

    params, config = load_transformers_checkpoint(source, config)
    vision = _sub_config(config, "vision_config", _CLIP_VISION, "clip")
    text = _sub_config(config, "text_config", _CLIP_TEXT, "clip")
    for name, tower in (("vision", vision), ("text", text)):
        _require(
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

    reader = _reader(params, source)
    v = "vision_model"
    encoder = vision_tower.get_layer("vision_encoder")
    embedding = encoder.embedding
    _conv(reader, embedding.patch_embedding, f"{v}.embeddings.patch_embedding")
    reader.assign(embedding.class_embedding, f"{v}.embeddings.class_embedding")
    reader.assign(
        embedding.position_embedding.embeddings,
        f"{v}.embeddings.position_embedding.weight",
    )
    # keras-hub leaves the position ids at zero until weights are loaded.
    embedding.position_ids.assign(
        np.arange(embedding.num_positions, dtype="int32")[None]
    )
    _layer_norm(reader, encoder.pre_layer_norm, f"{v}.pre_layrnorm")
    for i, block in enumerate(encoder.encoder_layers):
        _clip_block(reader, block, f"{v}.encoder.layers.{i}")
    _layer_norm(reader, encoder.layer_norm, f"{v}.post_layernorm")
    _linear(
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
    _layer_norm(
        reader,
        text_tower.get_layer("final_layer_norm"),
        f"{t}.final_layer_norm",
    )
    _linear(reader, text_tower.get_layer("text_projection"), "text_projection")

    reader.assign(
        model.log_temperature, "logit_scale", transform=lambda x: x.reshape(1)
    )
    reader.finish()
    return model


CONVERTERS = {"siglip": convert_siglip, "clip": convert_clip}


def add_arguments(parser) -> None:
    """Adds the Hugging Face conversion options to an argparse parser."""
    parser.add_argument(
        "--model",
        required=True,
        choices=sorted(CONVERTERS),
        help="which transformers model the checkpoint holds",
    )
    parser.add_argument(
        "--source",
        required=True,
        help="save_pretrained folder, or a .safetensors/.bin state dict",
    )
    parser.add_argument(
        "--config",
        default=None,
        help="config.json (default: the one in or next to --source)",
    )
    parser.add_argument("--output", required=True, help="preset directory")


def run(args) -> None:
    """Converts `args.source` and writes a keras_vl preset."""
    model = CONVERTERS[args.model](args.source, args.config)
    model.save_to_preset(args.output)
    print(f"Wrote {args.model} preset to {args.output}")
