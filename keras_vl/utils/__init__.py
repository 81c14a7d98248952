"""Utilities: the glyph table, downloads."""

from keras_vl.utils.glyph_table import GlyphTable

__all__ = ["GlyphTable"]
