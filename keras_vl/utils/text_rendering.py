"""`render_text`: strings in, CLIPPO-style text images out (numpy)."""

from __future__ import annotations

import functools
from typing import Any

import keras
import numpy as np


def render_text(texts, **config: Any) -> np.ndarray:
    """Renders strings as images exactly like big_vision's `render_unifont`.

    A function form of `keras_vl.layers.TextRenderer`: builds (and caches)
    one renderer per configuration and returns numpy arrays.

    Args:
        texts: a string, or a list / tuple / 1-D array of strings (``str``
            or UTF-8 ``bytes``).
        **config: `TextRenderer` arguments (`image_size`, `font_size`,
            `max_chars`, `background_brightness`, `text_brightness`,
            `lower`, `monospace`, `spacing`, `min_width`, `glyph_table`).

    Returns:
        uint8 ``[B, image_size, image_size, 3]``, or
        ``[image_size, image_size, 3]`` for a single string.

    Example:

    ```python
    images = keras_vl.utils.render_text(["hello world"], image_size=224)
    images.shape  # (1, 224, 224, 3)
    ```
    """
    try:
        key = tuple(sorted(config.items()))
        hash(key)
    except TypeError:
        # Unhashable arguments (e.g. a numpy scalar array): no caching.
        renderer = _make_renderer(config)
    else:
        renderer = _cached_renderer(key, keras.backend.backend())
    return keras.ops.convert_to_numpy(renderer(texts))


def _make_renderer(config: dict[str, Any]):
    # Imported here: keras_vl.layers imports keras_vl.utils.
    from keras_vl.layers.text_renderer import TextRenderer

    return TextRenderer(**config)


@functools.lru_cache(maxsize=16)
def _cached_renderer(key: tuple, backend: str):
    del backend  # Part of the cache key only.
    return _make_renderer(dict(key))
