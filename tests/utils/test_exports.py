"""What `keras_vl.utils` exports, and where `render_text` lives now."""

import importlib

import numpy as np
import pytest

import keras_vl
from keras_vl import layers, utils
from keras_vl.utils.glyph_table import GlyphTable


def test_utils_exports_only_the_glyph_table():
    assert utils.__all__ == ["GlyphTable"]
    assert utils.GlyphTable is GlyphTable
    assert not hasattr(utils, "render_text")
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("keras_vl.utils.text_rendering")


def test_render_text_is_a_layers_function_with_a_top_level_alias():
    assert "render_text" in layers.__all__
    assert "render_text" in keras_vl.__all__
    assert keras_vl.render_text is layers.render_text
    assert layers.render_text.__module__ == "keras_vl.layers.text_renderer"
    image = keras_vl.render_text("A", image_size=20, text_brightness=255)
    assert image.shape == (20, 20, 3) and image.dtype == np.uint8
    # "a" (lowercased) in Unifont: ink within the first 16x16 cell only.
    assert set(np.unique(image)) == {127, 255}
    assert (image[16:] == 127).all() and (image[:, 16:] == 127).all()


def test_render_text_reuses_one_renderer_per_configuration():
    from keras_vl.layers import text_renderer

    text_renderer._cached_renderer.cache_clear()
    first = keras_vl.render_text(["ab"], image_size=24, spacing=0)
    again = keras_vl.render_text(["ab"], spacing=0, image_size=24)
    other = keras_vl.render_text(["ab"], image_size=24)
    info = text_renderer._cached_renderer.cache_info()
    assert (info.hits, info.misses, info.currsize) == (1, 2, 2)
    np.testing.assert_array_equal(first, again)
    # spacing=0 trims the blank column kept left of "b" with spacing=1.
    assert not np.array_equal(first, other)
