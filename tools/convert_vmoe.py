"""Converts a V-MoE checkpoint (google-research/vmoe) into a keras_vl preset.

Usage:

    python tools/convert_vmoe.py --checkpoint vmoe.npz \
        --config config.json --image-size 224 --output ./vmoe_preset

The checkpoint is a flat npz of the `VisionTransformerMoe` parameters with
'/'-joined flax names (`embedding/kernel`, `cls`,
`Encoder/posembed_input/pos_embedding`, `Encoder/encoderblock_<i>/...`,
`head/kernel`). The config JSON holds the model's keyword arguments, either
as the whole object or under `model` / `kwargs`.

vmoe's ViT is vit_jax's: the position embedding has a row for the class
token and is added after the class token is prepended. keras_vl's
`ViTBackbone` adds it before, so the first row is folded into the class
token (`cls + posemb[0]`), which gives the encoder the same input. Blocks
listed in `encoder.moe.layers` become `SparseMoeMlp`s with the router
settings of the config.
"""

import argparse
import json
import os

from keras_vl.convert.checkpoint import CheckpointReader, load_npz_checkpoint
from keras_vl.layers import SparseMoeMlp
from keras_vl.models import ViTBackbone

# vit_jax `classifier` -> ViTBackbone `pool_type`.
_CLASSIFIERS = {"token": "tok", "gap": "gap", "0": "0"}


def _pair(value):
    return tuple(value) if isinstance(value, list | tuple) else (value, value)


def sparse_mlp_kwargs(moe: dict, mlp_dim: int) -> dict:
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
    dispatcher.pop("bfloat16", None)  # a compute-dtype choice
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


def vit_moe_backbone(model_kwargs: dict, image_size) -> ViTBackbone:
    """A `ViTBackbone` shaped like a vmoe `VisionTransformerMoe`.

    Args:
        model_kwargs: The `VisionTransformerMoe` keyword arguments.
        image_size: int or `(height, width)` of the input images.

    Returns:
        An initialised (not loaded) backbone.
    """
    encoder = model_kwargs["encoder"]
    classifier = model_kwargs.get("classifier", "token")
    if classifier not in _CLASSIFIERS:
        raise ValueError(
            f"Unsupported `classifier` {classifier!r}; expected one of "
            f"{sorted(_CLASSIFIERS)}."
        )
    moe = encoder.get("moe") or {}
    moe_layers = set(moe.get("layers") or ())
    mlp_dim = encoder["mlp_dim"]
    factory = [
        SparseMoeMlp(**sparse_mlp_kwargs(moe, mlp_dim))
        if i in moe_layers
        else None
        for i in range(encoder["num_layers"])
    ]
    return ViTBackbone(
        image_size=_pair(image_size),
        patch_size=_pair(model_kwargs["patch_size"]),
        width=model_kwargs["hidden_size"],
        depth=encoder["num_layers"],
        mlp_dim=mlp_dim,
        num_heads=encoder["num_heads"],
        posemb="learn",
        pool_type=_CLASSIFIERS[classifier],
        rep_size=model_kwargs.get("representation_size") or False,
        num_classes=model_kwargs.get("num_classes"),
        head_zeroinit=False,
        dropout_rate=encoder.get("dropout_rate", 0.0),
        mlp_factory=factory,
    )


def _dense(reader, layer, prefix):
    reader.assign(layer.kernel, f"{prefix}/kernel")
    reader.assign(layer.bias, f"{prefix}/bias")


def _layer_norm(reader, layer, prefix):
    reader.assign(layer.gamma, f"{prefix}/scale")
    reader.assign(layer.beta, f"{prefix}/bias")


def assign_vit_moe(reader: CheckpointReader, vit: ViTBackbone) -> None:
    """Loads vmoe `VisionTransformerMoe` parameters into `vit`."""
    conv = vit.patch_embedding.projection
    _dense(reader, conv, "embedding")
    posemb = reader.take("Encoder/posembed_input/pos_embedding")
    if vit.class_token is not None:
        reader.assign(
            vit.class_token.token,
            "cls",
            transform=lambda cls: cls + posemb[:, :1],
        )
        posemb = posemb[:, 1:]
    expected = tuple(vit.position_embedding.embedding.shape)
    if tuple(posemb.shape) != expected:
        raise ValueError(
            "`Encoder/posembed_input/pos_embedding` does not fit the model: "
            f"{tuple(posemb.shape)} patch rows, expected {expected}. Check "
            "the image size and the patch size."
        )
    vit.position_embedding.embedding.assign(posemb)
    for i, block in enumerate(vit.encoder.blocks):
        p = f"Encoder/encoderblock_{i}"
        _layer_norm(reader, block.norm_0, f"{p}/LayerNorm_0")
        attention = block.attention
        for name in ("query", "key", "value"):
            _dense(
                reader,
                getattr(attention, f"{name}_dense"),
                f"{p}/SelfAttention/{name}",
            )
        _dense(reader, attention.output_dense, f"{p}/SelfAttention/out")
        _layer_norm(reader, block.norm_1, f"{p}/LayerNorm_1")
        mlp = block.mlp
        if isinstance(mlp, SparseMoeMlp):
            reader.assign(mlp.router.kernel, f"{p}/Moe/Router/dense/kernel")
            reader.assign(mlp.kernel_0, f"{p}/Moe/Mlp/Dense_0/kernel")
            reader.assign(mlp.bias_0, f"{p}/Moe/Mlp/Dense_0/bias")
            reader.assign(mlp.kernel_1, f"{p}/Moe/Mlp/Dense_1/kernel")
            reader.assign(mlp.bias_1, f"{p}/Moe/Mlp/Dense_1/bias")
        else:
            _dense(reader, mlp.dense_0, f"{p}/Mlp/Dense_0")
            _dense(reader, mlp.dense_1, f"{p}/Mlp/Dense_1")
    _layer_norm(reader, vit.encoder.norm, "Encoder/encoder_norm")
    if vit.pre_logits is not None:
        _dense(reader, vit.pre_logits, "pre_logits")
    if vit.head is not None:
        _dense(reader, vit.head, "head")


def convert_vmoe(
    checkpoint: str | os.PathLike, model_kwargs: dict, image_size
) -> ViTBackbone:
    """Builds a `ViTBackbone` with sparse MoE blocks from a vmoe npz.

    Args:
        checkpoint: Path of the flat npz with '/'-joined flax names.
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
    vit = vit_moe_backbone(model_kwargs, image_size)
    reader = CheckpointReader(
        load_npz_checkpoint(checkpoint), source=os.fspath(checkpoint)
    )
    assign_vit_moe(reader, vit)
    reader.finish()
    return vit


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--checkpoint", required=True, help="vmoe npz file")
    parser.add_argument(
        "--config",
        required=True,
        help="JSON with the VisionTransformerMoe keyword arguments",
    )
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--output", required=True, help="preset directory")
    args = parser.parse_args(argv)
    with open(args.config) as file:
        config = json.load(file)
    model_kwargs = config.get("model", config.get("kwargs", config))
    vit = convert_vmoe(args.checkpoint, model_kwargs, args.image_size)
    vit.save_to_preset(args.output)
    print(f"Saved {args.output}")


if __name__ == "__main__":
    main()
