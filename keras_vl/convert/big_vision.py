"""big_vision checkpoints (flat npz, '/'-joined names) -> keras_vl models."""

import json
import os

from keras_vl.convert.checkpoint import CheckpointReader, load_npz_checkpoint
from keras_vl.models.vit.vit_backbone import ViTBackbone


def _assign_dense(reader, layer, prefix):
    reader.assign(layer.kernel, f"{prefix}/kernel")
    reader.assign(layer.bias, f"{prefix}/bias")


def _assign_layer_norm(reader, layer, prefix):
    reader.assign(layer.gamma, f"{prefix}/scale")
    reader.assign(layer.beta, f"{prefix}/bias")


def _assign_attention(reader, attention, prefix):
    for name in ("query", "key", "value"):
        _assign_dense(
            reader, getattr(attention, f"{name}_dense"), f"{prefix}/{name}"
        )
    _assign_dense(reader, attention.output_dense, f"{prefix}/out")


def _assign_mlp(reader, mlp, prefix):
    _assign_dense(reader, mlp.dense_0, f"{prefix}/Dense_0")
    _assign_dense(reader, mlp.dense_1, f"{prefix}/Dense_1")


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
    for i, block in enumerate(vit.encoder_blocks):
        assign_encoder_block(reader, block, f"{p}Transformer/encoderblock_{i}")
    _assign_layer_norm(reader, vit.encoder_norm, f"{p}Transformer/encoder_norm")
    if vit.map_head is not None:
        head = vit.map_head
        reader.assign(head.probe, f"{p}MAPHead_0/probe")
        _assign_attention(
            reader,
            head.attention,
            f"{p}MAPHead_0/MultiHeadDotProductAttention_0",
        )
        _assign_layer_norm(reader, head.norm, f"{p}MAPHead_0/LayerNorm_0")
        _assign_mlp(reader, head.mlp, f"{p}MAPHead_0/MlpBlock_0")
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


def _open_checkpoint(checkpoint) -> CheckpointReader:
    reader = CheckpointReader(
        load_npz_checkpoint(checkpoint), source=os.fspath(checkpoint)
    )
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


CONVERTERS = {"vit": convert_vit, "clippo": convert_clippo}


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
        required=True,
        help="JSON with the big_vision model kwargs (optionally under "
        "'model_kwargs', with an 'image_size')",
    )
    parser.add_argument("--output", required=True, help="preset directory")
    parser.add_argument(
        "--image-size",
        type=int,
        default=None,
        help="input resolution (default: the config's, else 224)",
    )


def run(args) -> None:
    """Converts `args.checkpoint` and writes a keras_vl preset."""
    config = read_config(args.config)
    model = CONVERTERS[args.model](
        args.checkpoint, config, image_size=args.image_size
    )
    model.save_to_preset(args.output)
    print(f"Wrote {args.model} preset to {args.output}")
