"""Utilities: text rendering, checkpoint reading."""

from keras_vl.utils.glyph_table import GlyphTable
from keras_vl.utils.text_rendering import render_text

__all__ = ["GlyphTable", "render_text"]
