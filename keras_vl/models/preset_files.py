"""Checks of a local preset's files before keras-hub reads any of them.

A preset is data from elsewhere. keras-hub deserialises its JSON configs
(Keras' `safe_mode` stays on) and reads its assets; these checks refuse,
before that, what a keras_vl preset never holds: classes from outside
Keras, keras-hub and keras_vl (unless this program registered them
itself, as users do for their own layers), lambdas, asset paths leaving
the preset, and assets (glyph tables, SentencePiece models) that are not
what their names claim. Nothing from a preset is executed or unpickled here.
"""

import json
import os
import pathlib
from typing import Any

import keras
import numpy as np

from keras_vl.utils.glyph_table import GlyphTable

# Packages whose classes a preset may name.
ALLOWED_PACKAGES = ("keras", "keras_hub", "keras_vl")
# Config entries that name a file to read.
PATH_KEYS = ("glyph_table",)
SENTENCEPIECE_SUFFIXES = (".spm", ".model")


class PresetError(ValueError):
    """A preset file is malformed or names something it may not."""


class CheckedPresetFiles:
    """Mixed in before a keras-hub class (by way of `FinitePresets` for
    backbones and tasks, directly for preprocessors): `from_preset` checks
    a local preset's files before keras-hub reads them."""

    @classmethod
    def from_preset(cls, preset: str, *args, **kwargs):
        check_preset_files(preset)
        return super().from_preset(preset, *args, **kwargs)


def check_preset_files(preset: Any) -> None:
    """Checks a local preset directory's configs and assets.

    Presets that are not local directories (`kaggle://`, `hf://`, names
    of registered presets) are left to keras-hub.

    Args:
        preset: The `preset` argument of `from_preset`.

    Raises:
        PresetError: naming the file and what is wrong with it.

    Example:

    ```python
    check_preset_files("./my_clippo_preset")
    ```
    """
    if not isinstance(preset, str | os.PathLike) or not os.path.isdir(preset):
        return
    root = pathlib.Path(preset)
    for path in sorted(root.glob("*.json")):
        _check_config(path, _read_json(path))
    assets = root / "assets"
    if assets.is_dir():
        for path in sorted(assets.rglob("*")):
            if path.suffix == ".npz":
                _check_npz(path)
            elif path.suffix in SENTENCEPIECE_SUFFIXES:
                _check_sentencepiece(path)


def _read_json(path: pathlib.Path) -> Any:
    try:
        return json.loads(path.read_text("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise PresetError(f"{path} is not valid JSON: {error}") from None


def _check_config(path: pathlib.Path, config: Any) -> None:
    """Walks every nested object of a config."""
    stack = [config]
    while stack:
        item = stack.pop()
        if isinstance(item, list):
            stack.extend(item)
        elif isinstance(item, dict):
            _check_object(path, item)
            stack.extend(item.values())


def _check_object(path: pathlib.Path, item: dict) -> None:
    class_name = item.get("class_name")
    module = item.get("module")
    if class_name == "__lambda__":
        raise PresetError(
            f"{path} holds a lambda; presets never execute code from "
            "their configs."
        )
    _check_class(path, class_name, module, item.get("registered_name"))
    for key in PATH_KEYS:
        value = item.get(key)
        if isinstance(value, str) and _leaves_preset(value):
            raise PresetError(
                f"{path} sets {key}={value!r}: a preset's files are named "
                "relative to it, without '..'."
            )


def _check_class(
    path: pathlib.Path, class_name: Any, module: Any, registered: Any
) -> None:
    if _registered_here(module, registered):
        return
    allowed = (
        f"a preset may only name classes of {', '.join(ALLOWED_PACKAGES)}, "
        "or classes this program registered itself"
    )
    if isinstance(module, str) and not _allowed(module):
        raise PresetError(
            f"{path} names class {class_name!r} of module {module!r}; "
            f"{allowed}."
        )
    if isinstance(registered, str) and ">" in registered:
        package = registered.split(">")[0]
        if not _allowed(package):
            raise PresetError(
                f"{path} names class {registered!r} registered by "
                f"{package!r}; {allowed}."
            )


def _registered_here(module: Any, registered: Any) -> bool:
    """Whether the class is one this process registered with
    `keras.saving.register_keras_serializable` (a user's own layer): its
    code is already imported, so naming it runs nothing from the preset."""
    if not isinstance(module, str) or not isinstance(registered, str):
        return False
    cls = keras.saving.get_registered_object(registered)
    return isinstance(cls, type) and cls.__module__ == module


def _allowed(module: str) -> bool:
    return module.split(".")[0] in ALLOWED_PACKAGES


def _leaves_preset(name: str) -> bool:
    return (
        os.path.isabs(name)
        or pathlib.PureWindowsPath(name).is_absolute()
        or ".." in pathlib.PurePath(name.replace("\\", "/")).parts
    )


def _check_npz(path: pathlib.Path) -> None:
    if path.name == "glyph_table.npz":
        GlyphTable.load(path)  # Validates; errors name the file.
        return
    try:
        with np.load(path, allow_pickle=False) as data:
            for key in data.files:
                data[key]
    except (OSError, ValueError, EOFError) as error:
        raise PresetError(
            f"{path} is not a readable .npz of plain arrays (pickled "
            f"objects are refused): {error}"
        ) from None


def _check_sentencepiece(path: pathlib.Path) -> None:
    try:
        import sentencepiece
    except ImportError:  # pragma: no cover - keras-hub's tokenizers check
        return
    processor = sentencepiece.SentencePieceProcessor()
    try:
        processor.LoadFromSerializedProto(path.read_bytes())
    except (RuntimeError, TypeError, ValueError) as error:
        raise PresetError(
            f"{path} is not a SentencePiece model: {error}"
        ) from None
    if processor.GetPieceSize() == 0:
        raise PresetError(f"{path} is a SentencePiece model without pieces.")
