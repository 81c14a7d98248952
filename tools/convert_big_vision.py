"""Converts a big_vision checkpoint (flat npz) into a keras_vl preset.

Usage:

    python tools/convert_big_vision.py --model vit \
        --checkpoint vit.npz --config config.json --output ./vit_preset

The config JSON holds the big_vision model keyword arguments, either as the
whole object or under `model_kwargs` (optionally with `image_size`).

Models: `vit`, `clippo`, `lit` (big_vision two towers: LiT and SigLIP npz
files with `params/img`, `params/txt`, `params/t` and optionally
`params/b`), and `lit_vit_jax` (the LiT releases of
google-research/vision_transformer; `--config` may name one, e.g.
`LiT-B16B`, and defaults to the checkpoint's file name):

    python tools/convert_big_vision.py --model lit_vit_jax \
        --checkpoint LiT-B16B.npz --output ./lit_b16b
"""

import argparse

from keras_vl.cli import add_big_vision_arguments
from keras_vl.models import convert_cli


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_big_vision_arguments(parser)
    convert_cli.run_big_vision(parser.parse_args(argv))


if __name__ == "__main__":
    main()
