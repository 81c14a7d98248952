"""Hugging Face checkpoints: `config.json` and state dicts as numpy arrays.

Reads a `save_pretrained` folder (`config.json` with `model.safetensors`,
sharded safetensors or `pytorch_model.bin`) or a single state-dict file,
without needing `transformers` itself, and copies PyTorch-layout
parameters (`nn.Linear`, `nn.LayerNorm`, `nn.Conv2d`, separate or packed
attention projections) into plain Keras layers. Which keras_vl model a
checkpoint fills is decided by the model families' `*_convert.py` modules.
"""

import json
import os
from typing import Any

# Registers bfloat16 with numpy, so safetensors can hand such tensors out.
import ml_dtypes  # noqa: F401
import numpy as np
from safetensors import SafetensorError, safe_open

from keras_vl.convert.checkpoint import CheckpointReader

CONFIG_FILE = "config.json"
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)


# === Reading state dicts ===


def _widen(array: np.ndarray) -> np.ndarray:
    """Half-precision floats (float16, bfloat16) become float32."""
    if array.dtype.kind in "fV" and array.dtype.itemsize == 2:
        return array.astype(np.float32)
    return array


def read_safetensors(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a `.safetensors` file into numpy arrays.

    Uses the `safetensors` package's numpy API; float16 and bfloat16
    tensors come back as float32. The format holds raw arrays only, so
    reading a file never executes code from it.

    Args:
        path: Path of the `.safetensors` file.

    Returns:
        A dict from tensor names to numpy arrays.

    Raises:
        ValueError: If the file is missing or not a readable safetensors
            file; the message names the file.

    Example:

    >>> arrays = read_safetensors("model.safetensors")  # doctest: +SKIP
    >>> arrays["logit_scale"].dtype  # doctest: +SKIP
    dtype('float32')
    """
    path = os.fspath(path)
    try:
        with safe_open(path, framework="np") as f:
            return {name: _widen(f.get_tensor(name)) for name in f.keys()}
    except (SafetensorError, OSError, TypeError) as error:
        raise ValueError(
            f"{path!r} is not a readable .safetensors file: {error}"
        ) from error


def read_torch_state_dict(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a PyTorch `.bin` state dict into float32/integer numpy arrays.

    Needs `torch`. Only tensors are unpickled (`weights_only=True`), so no
    code stored in the file runs.

    Args:
        path: Path of the `.bin` (or `.pt`, `.pth`) file.

    Returns:
        A dict from tensor names to numpy arrays.

    Example:

    >>> arrays = read_torch_state_dict("pytorch_model.bin")  # doctest: +SKIP
    """
    try:
        import torch
    except ImportError as error:
        raise ImportError(
            "Reading a .bin state dict needs PyTorch; convert it to "
            ".safetensors or install torch."
        ) from error
    path = os.fspath(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many kinds on bad files.
        raise ValueError(
            f"{path!r} is not a readable PyTorch state dict: {error}"
        ) from error
    return {
        name: tensor.detach().float().numpy()
        if tensor.is_floating_point()
        else tensor.detach().numpy()
        for name, tensor in state.items()
    }


def read_weights(path: str | os.PathLike) -> dict[str, np.ndarray]:
    """Reads a `.safetensors` or `.bin` state dict, or every shard listed
    by a sharded checkpoint's `.index.json`.

    Args:
        path: The weights file or the shard index.

    Returns:
        A dict from tensor names to numpy arrays.

    Example:

    >>> params = read_weights("model.safetensors.index.json")  # doctest: +SKIP
    """
    path = os.fspath(path)
    if path.endswith(".index.json"):
        with open(path, encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        folder = os.path.dirname(path)
        params = {}
        for shard in shards:
            params.update(read_weights(os.path.join(folder, shard)))
        return params
    if path.endswith(".safetensors"):
        return read_safetensors(path)
    if path.endswith((".bin", ".pt", ".pth")):
        return read_torch_state_dict(path)
    raise ValueError(
        f"Unsupported weights file {path!r}; expected .safetensors or .bin."
    )


def load_transformers_checkpoint(
    source: str | os.PathLike,
    config: dict[str, Any] | str | os.PathLike | None = None,
) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Reads a Hugging Face checkpoint's weights and config.

    Args:
        source: A `save_pretrained` folder, or one `.safetensors` / `.bin`
            state dict (sharded checkpoints: the `.index.json`).
        config: The model config as a dict or the path of its
            `config.json`; by default the `config.json` in the folder (or
            next to the file).

    Returns:
        `(params, config)`: arrays by state-dict name, and the config.

    Example:

    >>> params, config = load_transformers_checkpoint(  # doctest: +SKIP
    ...     "./siglip-base-patch16-224"
    ... )
    """
    source = os.fspath(source)
    if os.path.isdir(source):
        folder = source
        weights = next(
            (
                os.path.join(source, name)
                for name in WEIGHT_FILES
                if os.path.exists(os.path.join(source, name))
            ),
            None,
        )
        if weights is None:
            raise ValueError(
                f"No weights in {source!r}: expected one of {WEIGHT_FILES}."
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
        config = _read_json(config)
    return read_weights(weights), config


def _read_json(path) -> dict[str, Any]:
    with open(path, encoding="utf-8") as f:
        config = json.load(f)
    if not isinstance(config, dict):
        raise ValueError(f"Config {os.fspath(path)!r} must hold an object.")
    return config


def open_reader(
    params: dict[str, np.ndarray], source: str | os.PathLike
) -> CheckpointReader:
    """A `CheckpointReader` over a Hugging Face state dict.

    Non-persistent `position_ids` buffers that older checkpoints saved
    carry no weights and are marked as used.
    """
    reader = CheckpointReader(params, source=os.fspath(source))
    reader.used.update(k for k in params if k.endswith(".position_ids"))
    return reader


# === Configs ===


def sub_config(
    config: dict[str, Any], key: str, defaults: dict[str, Any], model_type: str
) -> dict[str, Any]:
    """One tower's settings (`vision_config` / `text_config`) over the
    `transformers` defaults, after checking the checkpoint's model type.

    Args:
        config: The checkpoint's whole config.
        key: The tower's key in `config`.
        defaults: Every setting the converter reads, with the value
            `transformers` assumes when the config omits it.
        model_type: The expected `model_type`, e.g. `"siglip"`.

    Returns:
        The settings named in `defaults`.
    """
    if config.get("model_type", model_type) != model_type:
        raise ValueError(
            f"Expected a {model_type!r} checkpoint. Received "
            f"model_type={config.get('model_type')!r}"
        )
    values = {**defaults, **(config.get(key) or {})}
    return {k: values[k] for k in defaults}


def require_choice(value, expected: tuple, name: str, why: str) -> None:
    """Raises a ValueError naming `name` unless `value` is in `expected`."""
    if value not in expected:
        raise ValueError(
            f"Unsupported {name}={value!r}: {why} Expected one of {expected}."
        )


# === PyTorch layouts -> plain Keras layers ===


def assign_linear(reader: CheckpointReader, dense, prefix: str) -> None:
    """`nn.Linear` `[out, in]` -> `Dense` kernel `[in, out]` (+ bias)."""
    reader.assign(dense.kernel, f"{prefix}.weight", transform=np.transpose)
    if dense.bias is not None:
        reader.assign(dense.bias, f"{prefix}.bias")


def assign_layer_norm(reader: CheckpointReader, layer, prefix: str) -> None:
    """`nn.LayerNorm` `weight`/`bias` -> `LayerNormalization`."""
    reader.assign(layer.gamma, f"{prefix}.weight")
    reader.assign(layer.beta, f"{prefix}.bias")


def _assign_output_projection(reader, attention, prefix: str) -> None:
    out = attention.output_dense
    reader.assign(
        out.kernel,
        f"{prefix}.out_proj.weight",
        transform=lambda w: w.T.reshape(out.kernel.shape),
    )
    reader.assign(out.bias, f"{prefix}.out_proj.bias")


def assign_attention(reader: CheckpointReader, attention, prefix: str) -> None:
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
    _assign_output_projection(reader, attention, prefix)


def assign_packed_attention(
    reader: CheckpointReader, attention, prefix: str
) -> None:
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
    for i, name in enumerate(("query", "key", "value")):
        dense = getattr(attention, f"{name}_dense")
        rows = slice(i * width, (i + 1) * width)
        dense.kernel.assign(weight[rows].T.reshape(dense.kernel.shape))
        dense.bias.assign(bias[rows].reshape(dense.bias.shape))
    _assign_output_projection(reader, attention, prefix)


def assign_conv(reader: CheckpointReader, conv, prefix: str) -> None:
    """`nn.Conv2d` `[out, in, h, w]` -> Keras `Conv2D` `[h, w, in, out]`."""
    reader.assign(
        conv.kernel,
        f"{prefix}.weight",
        transform=lambda w: w.transpose(2, 3, 1, 0),
    )
    if conv.bias is not None:
        reader.assign(conv.bias, f"{prefix}.bias")
