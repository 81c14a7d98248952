"""Converts a V-MoE checkpoint (google-research/vmoe) into a keras_vl preset.

Usage:

    python tools/convert_vmoe.py --checkpoint vmoe.npz \
        --config config.json --image-size 224 --output ./vmoe_preset

The checkpoint is a flat npz of the `VisionTransformerMoe` parameters with
'/'-joined flax names (`embedding/kernel`, `cls`,
`Encoder/posembed_input/pos_embedding`, `Encoder/encoderblock_<i>/...`,
`head/kernel`). The config JSON holds the model's keyword arguments, either
as the whole object or under `model` / `kwargs`.

The mapping lives in `keras_vl.models.vit.vit_convert.convert_vmoe`: blocks
listed in `encoder.moe.layers` become `SparseMoeMlp`s with the router
settings of the config.
"""

import argparse
import json

from keras_vl.models.vit.vit_convert import convert_vmoe


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
