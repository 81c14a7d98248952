"""Named presets that are converted from an original checkpoint on first use.

A model family registers a table of presets (name -> entry with a `url`)
together with the function that turns a downloaded checkpoint into a
model. `converted_preset_dir(name)` then downloads the checkpoint into the
keras_vl cache, converts it once into a preset directory next to it and
returns that directory; later calls only look the directory up. Tasks and
backbones call it from `from_preset`, so they need not import their
family's converter.

An entry may also name extra `files` (e.g. the tokenizer vocabulary a
checkpoint was trained with); they are downloaded next to the checkpoint
and handed to the converter by their key.
"""

import os
import shutil
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from keras_vl.utils.download import default_cache_dir, download_file

# (checkpoint path, preset entry) -> an object with `save_to_preset`;
# entries with `files` also pass `files={key: local path}`.
Converter = Callable[..., Any]

# Tables are kept by reference, so an entry is read when it is converted.
_REGISTRY: list[tuple[Mapping[str, Mapping[str, Any]], Converter]] = []


def register_converted_presets(
    presets: Mapping[str, Mapping[str, Any]], convert: Converter
) -> None:
    """Registers a family's presets and the function converting them.

    Args:
        presets: dict from preset name to an entry holding at least `url`
            (an `http(s)://` or `gs://` URL of the original checkpoint)
            and optionally `files`: a dict from a key to the URL of an
            extra file, or to `{"url": ..., "filename": ...}` when the
            URL's own file name could clash with another preset's (two
            vocabularies both called `sentencepiece.model`).
        convert: Called as `convert(checkpoint_path, entry)`, or as
            `convert(checkpoint_path, entry, files={key: path})` for
            entries with `files`; returns a model whose
            `save_to_preset(directory)` writes the preset.

    Example:

    >>> register_converted_presets(  # doctest: +SKIP
    ...     backbone_presets, convert_clippo_preset
    ... )
    """
    if not isinstance(presets, Mapping):
        raise TypeError(
            f"`presets` must be a mapping. Received: {type(presets).__name__}"
        )
    if not callable(convert):
        raise TypeError(f"`convert` must be callable. Received: {convert!r}")
    for table, _ in _REGISTRY:
        if table is presets:
            return
    _REGISTRY.append((presets, convert))


def _lookup(name: str) -> tuple[Mapping[str, Any], Converter] | None:
    for table, convert in _REGISTRY:
        if name in table:
            return table[name], convert
    return None


def is_converted_preset(preset: Any) -> bool:
    """Whether `preset` is the name of a registered converted preset."""
    return isinstance(preset, str) and _lookup(preset) is not None


def converted_preset_dir(
    name: str, cache_dir: str | os.PathLike | None = None
) -> str:
    """Returns the local preset directory of a registered preset `name`.

    The first call downloads the entry's extra `files` and then its
    checkpoint into `<cache>/checkpoints/` and converts them into
    `<cache>/presets/<name>/`; later calls only look that directory up.
    Every download is atomic and the preset is written to a staging
    directory and renamed into place, so a failed download or conversion
    leaves no partial file and no preset behind.

    Args:
        name: A registered preset name, e.g. `"clippo_b16_yfcc100m"`.
        cache_dir: Cache root; defaults to `$KERAS_VL_CACHE` or
            `~/.cache/keras_vl`.

    Returns:
        The path of the preset directory.

    Raises:
        ValueError: If no registered table holds `name`.

    Example:

    >>> path = converted_preset_dir("clippo_b16_yfcc100m")  # doctest: +SKIP
    """
    found = _lookup(name) if isinstance(name, str) else None
    if found is None:
        known = sorted(k for table, _ in _REGISTRY for k in table)
        raise ValueError(f"Unknown converted preset {name!r}. Known: {known}")
    entry, convert = found
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    preset_dir = root / "presets" / name
    if (preset_dir / "config.json").exists():
        return str(preset_dir)
    downloads = root / "checkpoints"
    # The small extra files first: a bad one fails before a long download.
    files = {
        key: str(_download_extra(spec, downloads, name, key))
        for key, spec in entry.get("files", {}).items()
    }
    checkpoint = download_file(entry["url"], cache_dir=downloads)
    if files:
        model = convert(str(checkpoint), entry, files=files)
    else:
        model = convert(str(checkpoint), entry)
    preset_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}-", dir=preset_dir.parent)
    try:
        model.save_to_preset(staging)
        os.replace(staging, preset_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(preset_dir)


def _download_extra(spec: Any, directory: Path, name: str, key: str) -> Path:
    if isinstance(spec, str):
        return download_file(spec, cache_dir=directory)
    if isinstance(spec, Mapping) and isinstance(spec.get("url"), str):
        return download_file(
            spec["url"], cache_dir=directory, filename=spec.get("filename")
        )
    raise ValueError(
        f"File {key!r} of preset {name!r} must be a URL or a dict with "
        f"'url' (and optionally 'filename'). Received: {spec!r}"
    )
