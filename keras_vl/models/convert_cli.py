"""Command-line conversion of original checkpoints into keras_vl presets.

Dispatch for `keras-vl convert`, `tools/convert_big_vision.py` and
`tools/convert_transformers.py` (the big_vision options are defined with the
rest of the command line in `keras_vl.cli`, which must not import models).
The weight mappings themselves live in each family's `*_convert.py`.
"""

import argparse
import os
from collections.abc import Callable
from typing import Any

from keras_vl.convert.big_vision import read_config
from keras_vl.models.clippo.clippo_convert import convert_clippo
from keras_vl.models.lit.lit_convert import convert_lit
from keras_vl.models.lit.lit_huggingface_convert import (
    convert_clip,
    convert_siglip,
)
from keras_vl.models.lit.lit_vision_transformer_convert import (
    convert_vision_transformer_lit,
)
from keras_vl.models.pali.pali_convert import convert_mt5
from keras_vl.models.vit.vit_convert import convert_vit

# `--model` of the big_vision converter: which model the npz holds.
BIG_VISION_CONVERTERS: dict[str, Callable[..., Any]] = {
    "vit": convert_vit,
    "clippo": convert_clippo,
    "lit": convert_lit,
    "lit_vit_jax": convert_vision_transformer_lit,
}
# `--model` of the Hugging Face converter.
HUGGINGFACE_CONVERTERS: dict[str, Callable[..., Any]] = {
    "siglip": convert_siglip,
    "clip": convert_clip,
    "mt5": convert_mt5,
}


def run_big_vision(args: argparse.Namespace) -> None:
    """Converts `args.checkpoint` and writes a keras_vl preset.

    Example:

    >>> from keras_vl.cli import add_big_vision_arguments  # doctest: +SKIP
    >>> parser = argparse.ArgumentParser()  # doctest: +SKIP
    >>> add_big_vision_arguments(parser)  # doctest: +SKIP
    >>> run_big_vision(parser.parse_args(argv))  # doctest: +SKIP
    """
    if args.model not in BIG_VISION_CONVERTERS:
        raise ValueError(
            f"`--model` must be one of {sorted(BIG_VISION_CONVERTERS)}, got "
            f"{args.model!r}."
        )
    if args.model == "lit_vit_jax" and (
        args.config is None or not os.path.exists(args.config)
    ):
        config = args.config  # A released model's name, or None.
    elif args.config is None:
        raise ValueError(f"`--config` is required for --model {args.model}.")
    elif not os.path.isfile(args.config):
        raise FileNotFoundError(
            f"`--config` file {args.config!r} does not exist."
        )
    else:
        config = read_config(args.config)
    kwargs: dict[str, Any] = {"image_size": args.image_size}
    if getattr(args, "sequence_length", None) is not None:
        if args.model == "vit":
            raise ValueError("`--sequence-length` does not apply to a ViT.")
        kwargs["sequence_length"] = args.sequence_length
    model = BIG_VISION_CONVERTERS[args.model](args.checkpoint, config, **kwargs)
    model.save_to_preset(args.output)
    print(f"Wrote {args.model} preset to {args.output}")


def add_huggingface_arguments(parser: argparse.ArgumentParser) -> None:
    """Adds the Hugging Face conversion options to `parser`.

    Example:

    >>> parser = argparse.ArgumentParser()
    >>> add_huggingface_arguments(parser)
    >>> parser.parse_args(
    ...     ["--model", "clip", "--source", "clip", "--output", "out"]
    ... ).config is None
    True
    """
    parser.add_argument(
        "--model",
        required=True,
        choices=sorted(HUGGINGFACE_CONVERTERS),
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


def run_huggingface(args: argparse.Namespace) -> None:
    """Converts `args.source` and writes a keras_vl preset.

    Example:

    >>> parser = argparse.ArgumentParser()  # doctest: +SKIP
    >>> add_huggingface_arguments(parser)  # doctest: +SKIP
    >>> run_huggingface(parser.parse_args(argv))  # doctest: +SKIP
    """
    model = HUGGINGFACE_CONVERTERS[args.model](args.source, args.config)
    model.save_to_preset(args.output)
    print(f"Wrote {args.model} preset to {args.output}")
