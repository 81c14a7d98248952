"""big_vision and flax naming helpers: configs, Linen names, plain layers.

big_vision checkpoints are flat npz files whose keys join flax module names
with '/'. The helpers here open such files, renumber pre-Linen names, and
copy flax `Dense`, `LayerNorm` and `MultiHeadDotProductAttention`
parameters into plain Keras layers. Which keras_vl model a checkpoint fills
is decided by the model families' `*_convert.py` modules.
"""

import json
import math
import os
import re
from typing import Any

import numpy as np

from keras_vl.convert.checkpoint import CheckpointReader, load_npz_checkpoint

_NUMBERED = re.compile(r"(.*)_(\d+)$")


def linen_names(params: dict[str, Any]) -> dict[str, Any]:
    """Renumbers pre-Linen module names the way flax's `convert_pre_linen`
    does, on flat '/'-joined names.

    Pre-Linen flax numbered submodules with one counter per parent
    (`LayerNorm_0`, `MultiHeadDotProductAttention_1`, `LayerNorm_2`,
    `MlpBlock_3`); Linen counts per module class (`LayerNorm_0`,
    `MultiHeadDotProductAttention_0`, `LayerNorm_1`, `MlpBlock_0`). Names
    already in Linen form come back unchanged.

    Args:
        params: dict from '/'-joined names to arrays.

    Returns:
        A dict with the same arrays under Linen names.

    Example:

    >>> linen_names({"b/LayerNorm_0/scale": 1, "b/MlpBlock_3/bias": 2})
    {'b/LayerNorm_0/scale': 1, 'b/MlpBlock_0/bias': 2}
    """
    # Names are renumbered level by level among siblings of one parent.
    by_parent: dict[str, set[str]] = {}
    for key in params:
        parts = key.split("/")
        for depth in range(len(parts)):
            parent = "/".join(parts[:depth])
            by_parent.setdefault(parent, set()).add(parts[depth])
    new_part: dict[tuple[str, str], str] = {}
    for parent, names in by_parent.items():
        groups: dict[str, list[tuple[int, str]]] = {}
        for name in names:
            match = _NUMBERED.match(name)
            if match:
                groups.setdefault(match.group(1), []).append(
                    (int(match.group(2)), name)
                )
        for module, numbered in groups.items():
            for rank, (_, name) in enumerate(sorted(numbered)):
                new_part[(parent, name)] = f"{module}_{rank}"
    renamed = {}
    for key, value in params.items():
        parts = key.split("/")
        out = [
            new_part.get(("/".join(parts[:depth]), part), part)
            for depth, part in enumerate(parts)
        ]
        renamed["/".join(out)] = value
    return renamed


def read_config(path: str | os.PathLike) -> dict[str, Any]:
    """Reads a model config JSON object.

    The object holds the model's constructor keyword arguments, either
    directly or under `model_kwargs` next to an `image_size`.

    Args:
        path: Path of the JSON file.

    Returns:
        The parsed object.

    Raises:
        ValueError: If the file does not hold a JSON object.

    Example:

    >>> config = read_config("config.json")  # doctest: +SKIP
    """
    with open(path, encoding="utf-8") as f:
        try:
            config = json.load(f)
        except ValueError as error:  # Also a file that is not text.
            raise ValueError(
                f"Config {os.fspath(path)!r} is not a JSON file: {error}"
            ) from error
    if not isinstance(config, dict):
        raise ValueError(
            f"Config {os.fspath(path)!r} must hold a JSON object. "
            f"Received: {type(config).__name__}"
        )
    return config


def model_kwargs_of(config: dict[str, Any]) -> dict[str, Any]:
    """The model keyword arguments of a config: its `model_kwargs` entry,
    or the config itself when it has none.

    Raises:
        TypeError: If `config` is not a dict.

    Example:

    >>> model_kwargs_of({"model_kwargs": {"width": 8}, "image_size": 32})
    {'width': 8}
    """
    if not isinstance(config, dict):
        raise TypeError(
            "`config` must be a dict of big_vision keyword arguments. "
            f"Received: {type(config).__name__}"
        )
    return dict(config.get("model_kwargs", config))


def open_checkpoint(
    path: str | os.PathLike, linen: bool = False
) -> CheckpointReader:
    """Opens a big_vision npz checkpoint for conversion.

    Optimizer state (`opt/`) and timers (`chrono/`) of training
    checkpoints are marked as deliberately unused.

    Args:
        path: Path of the flat npz checkpoint.
        linen: Whether to renumber pre-Linen names (see `linen_names`).

    Returns:
        A `CheckpointReader` over the checkpoint's parameters.

    Example:

    >>> reader = open_checkpoint("vit.npz")  # doctest: +SKIP
    >>> kernel = reader.take("embedding/kernel")  # doctest: +SKIP
    """
    params = load_npz_checkpoint(path)
    if linen:
        params = linen_names(params)
    reader = CheckpointReader(params, source=os.fspath(path))
    reader.ignore("opt/")
    reader.ignore("chrono/")
    return reader


def strip_params_prefix(reader: CheckpointReader, prefix: str) -> str:
    """Returns `prefix`, or `prefix` without `params/` when only that form
    occurs (bare parameter trees, as `big_vision.utils.save_params` writes
    them)."""
    if any(k.startswith(prefix) for k in reader.params):
        return prefix
    stripped = prefix.removeprefix("params/")
    if any(k.startswith(stripped) for k in reader.params):
        return stripped
    return prefix


def learned_grid_size(
    reader: CheckpointReader,
    name: str,
    patch_size: int | tuple[int, int],
    num_prefix_tokens: int = 0,
) -> int | tuple[int, int] | None:
    """The image size implied by a learned `[1, N, D]` position embedding
    of a square patch grid.

    Args:
        reader: The checkpoint.
        name: Name of the position embedding.
        patch_size: int or `(height, width)` of the patches.
        num_prefix_tokens: Leading rows that are not on the grid (the class
            token of vision_transformer ViTs).

    Returns:
        The side in pixels (`(height, width)` for non-square patches), or
        None if the checkpoint has no parameter `name`.

    Raises:
        ValueError: If the grid rows are not a square number, so that the
            image size cannot be told.

    Example:

    >>> learned_grid_size(reader, "img/pos_embedding", 16)  # doctest: +SKIP
    96
    """
    if not reader.has(name):
        return None
    length = reader.params[name].shape[1] - num_prefix_tokens
    side = math.isqrt(max(length, 0))
    if length <= 0 or side * side != length:
        raise ValueError(
            f"Cannot infer the image size of {reader.source}: its position "
            f"embedding {name!r} has {length} grid tokens, which is not a "
            "square grid. Pass the image size explicitly."
        )
    patch = (
        (patch_size, patch_size) if isinstance(patch_size, int) else patch_size
    )
    height, width = (side * p for p in patch)
    return height if height == width else (height, width)


def first_value(reader: CheckpointReader, name: str, default: float) -> float:
    """The first element of scalar-like parameter `name`, or `default`.

    Reads without marking the name as used, e.g. to size a model before
    its parameters are assigned.
    """
    return float(np.ravel(reader.params.get(name, [default]))[0])


def assign_dense(reader: CheckpointReader, layer, prefix: str) -> None:
    """Copies flax `Dense` `kernel` and `bias` under `prefix` into a Keras
    `Dense` (same `[in, out]` layout)."""
    reader.assign(layer.kernel, f"{prefix}/kernel")
    reader.assign(layer.bias, f"{prefix}/bias")


def assign_layer_norm(reader: CheckpointReader, layer, prefix: str) -> None:
    """Copies flax `LayerNorm` `scale` and `bias` into a Keras
    `LayerNormalization`."""
    reader.assign(layer.gamma, f"{prefix}/scale")
    reader.assign(layer.beta, f"{prefix}/bias")


def assign_attention(reader: CheckpointReader, attention, prefix: str) -> None:
    """Copies flax `MultiHeadDotProductAttention` (`query`, `key`, `value`,
    `out`) into a `keras.layers.MultiHeadAttention`; both keep kernels as
    `[D, H, Dh]` and `[H, Dh, D]`."""
    for name in ("query", "key", "value"):
        assign_dense(
            reader, getattr(attention, f"{name}_dense"), f"{prefix}/{name}"
        )
    assign_dense(reader, attention.output_dense, f"{prefix}/out")


def assign_reshaped(reader: CheckpointReader, variable, name: str) -> None:
    """Assigns `name` to `variable`, reshaping when only the layout differs
    (flattened `DenseGeneral` kernels and biases)."""

    def reshape(value):
        if value.size != math.prod(variable.shape):
            return value  # `assign` reports the mismatch with both names.
        return value.reshape(variable.shape)

    reader.assign(variable, name, transform=reshape)
