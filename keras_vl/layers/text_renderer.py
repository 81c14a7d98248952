"""Renders text as images with a bitmap font (CLIPPO's "text as pixels").

A re-implementation of big_vision's `render_unifont` preprocessing op that
matches it pixel for pixel, written with batched `keras.ops` so a whole
batch renders as one computation that also compiles under `jax.jit` and
`tf.function(jit_compile=True)` and runs on torch.

Layout rules (big_vision's), for one string with glyph cells of
``F = font_size`` pixels and an ``S x S`` image:

1. Code points: UTF-8 decoding, ASCII-only lowercasing (`lower`), first
   `max_chars` code points. Every code point, control characters included,
   is one glyph cell; there is no shaping and ``\\n`` is not a line break.
2. Glyph ``k`` keeps columns ``[a_k, b_k)`` of its cell, with
   ``a = max(first_ink - spacing, 0)`` and
   ``b = min(max(last_ink + spacing, a + min_width), F)`` (`monospace`
   keeps all ``F``). Its width is ``w_k = b_k - a_k``.
3. With ``W = max_k w_k`` and ``c_k = w_1 + ... + w_k``, glyph ``k`` goes
   to line ``floor(c_k / (S - W))``; a line's glyphs are packed from
   ``x = 0``, line ``j`` covers rows ``F*j .. F*j + F - 1``, and whatever
   falls below the image is cut off.
4. Ink pixels get `text_brightness`, all others `background_brightness`.

The vectorised version, for a batch of padded code point rows ``[B, L]``:
``x_k = (c_k - w_k) - base[line_k]`` with ``base[j]`` = total width of the
glyphs on lines before ``j``, so glyph ``k`` starts at pixel column
``p_k = line_k * S + x_k`` of the image seen as one long row of
``num_lines * S`` columns. One scatter writes every kept glyph column there
(as a 16-bit word, bit ``r`` = ink in row ``r``; glyphs never overlap), and
shifting the words out row by row gives the image. Padding (negative code
points) has width 0 and glyphs below the image go to a dump slot, so
neither affects the result. No Python loop runs over strings or glyphs.
"""

from __future__ import annotations

import functools
import os
import types
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_vl.distribute.tf_interop import (
    call_in_tf_graph,
    in_tf_graph,
    is_tf_tensor,
    tf_decode_utf8,
)
from keras_vl.distribute.tracing import constant_outside_trace, is_tracing
from keras_vl.distribute.xla_cache import cached_xla_function
from keras_vl.utils.glyph_table import GLYPH_SIZE, TABLE_NAMES, GlyphTable

_ASSET_FILE = "glyph_table.npz"
_MAX_FONT_SIZE = 32


@keras.saving.register_keras_serializable(package="keras_vl")
class TextRenderer(keras.layers.Layer):
    """Renders strings into square images, exactly like big_vision's
    `render_unifont` (the CLIPPO text renderer).

    Inputs, one of:

    - strings: a Python ``str``/``bytes``, a list/tuple or 1-D numpy array
      of them, or a ``tf.string`` tensor of rank 0 or 1. Strings are
      decoded as UTF-8 (invalid bytes become U+FFFD; a lone surrogate in a
      Python ``str`` renders as a blank cell).
    - code points: an integer tensor ``[B, L]`` as returned by
      `codepoints()`. Negative entries mean "no character" and are skipped
      (pad with ``-1``; ``0`` is U+0000, which has a visible glyph). ASCII
      lowercasing and `max_chars` are applied here too, so raw code points
      give the same images as the strings they came from. This is the path
      to use inside `jax.jit` / `tf.function(jit_compile=True)` (pad ``L``
      to a few fixed buckets to limit recompilation).

    Output: uint8 ``[B, image_size, image_size, 3]`` with three equal
    channels, or ``[image_size, image_size, 3]`` for a scalar string.

    Eager calls on JAX and TensorFlow run one XLA-compiled program (the
    length is padded to a power of two, so few programs get compiled);
    inside a caller's `jax.jit` / `tf.function` the ops are traced as usual.
    ``tf.string`` inputs also work inside `tf.data` pipelines, on any
    backend. Torch runs the same ops eagerly.

    Args:
        image_size: int. Side of the square output image; must exceed
            `font_size`.
        font_size: int. Glyph cell size in pixels. 16 is Unifont's native
            size; other sizes (1..32) first area-resize every glyph to
            ``font_size x font_size`` like big_vision (so pixels take
            intermediate gray values too), at the cost of a per-renderer
            lookup table of ``71k * font_size**2`` bytes.
        max_chars: int. Only the first `max_chars` code points are rendered
            (0 or None: no limit).
        background_brightness: int in 0..255. Value of non-ink pixels.
        text_brightness: int in 0..255. Value of ink pixels.
        lower: bool. Lowercase ASCII ``A-Z`` (other letters are unchanged).
        monospace: bool. Keep whole glyph cells instead of trimming them.
        spacing: int >= 0. Blank columns kept left of a trimmed glyph.
        min_width: int >= 0. Minimum width of a trimmed glyph.
        glyph_table: None (the shipped GNU Unifont 15.0.01 table with
            its upper planes, as the released CLIPPO models were trained),
            the name of a shipped table (``"unifont"``, the same;
            ``"unifont_bmp"``, code points up to U+FFFF only, as big_vision
            renders with an empty upper-plane font; see
            `GlyphTable.named`), a `GlyphTable`, or the path of a glyph
            table `.npz`. A name or path is kept by `get_config`; an
            in-memory table must be passed again to `from_config`. Saving
            through `keras.saving` (``.keras`` files) stores the table as
            an asset (`save_assets`/`load_assets`), so a saved model keeps
            its font.
        **kwargs: Standard layer arguments (`name`, ...).

    Example:

    ```python
    renderer = keras_vl.layers.TextRenderer(image_size=224)
    images = renderer(["hello world", "Καλημέρα"])  # uint8 (2, 224, 224, 3)

    # Inside a jitted function, from padded code points:
    cps = renderer.codepoints(["hello world"])  # int32 (1, 11), -1 padded
    images = jax.jit(renderer.render_codepoints)(cps)
    ```
    """

    def __init__(
        self,
        image_size: int = 224,
        font_size: int = 16,
        max_chars: int | None = 768,
        background_brightness: int = 127,
        text_brightness: int = 0,
        lower: bool = True,
        monospace: bool = False,
        spacing: int = 1,
        min_width: int = 4,
        glyph_table: GlyphTable | str | os.PathLike | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.font_size = _check_int("font_size", font_size, 1, _MAX_FONT_SIZE)
        self.image_size = _check_int("image_size", image_size, 1)
        if self.image_size <= self.font_size:
            raise ValueError(
                f"`image_size` must be larger than `font_size` "
                f"({self.font_size}), got image_size={image_size!r}"
            )
        if max_chars is None:
            max_chars = 0
        self.max_chars = _check_int("max_chars", max_chars, 0)
        self.background_brightness = _check_int(
            "background_brightness", background_brightness, 0, 255
        )
        self.text_brightness = _check_int(
            "text_brightness", text_brightness, 0, 255
        )
        self.lower = _check_bool("lower", lower)
        self.monospace = _check_bool("monospace", monospace)
        self.spacing = _check_int("spacing", spacing, 0)
        self.min_width = _check_int("min_width", min_width, 0)

        # The name or path `get_config` keeps (None: the default table).
        self._glyph_table_setting: str | None = None
        self._glyph_table: GlyphTable | None = None
        self._set_glyph_table(glyph_table)
        # Inputs may be Python strings; convert them ourselves.
        self._convert_input_args = False
        self._allow_non_tensor_positional_args = True
        self.built = True  # No weights.

    # ------------------------------------------------------------------
    # Glyph table.

    @property
    def glyph_table(self) -> GlyphTable:
        """The `GlyphTable` in use."""
        if self._glyph_table is None:
            # Only reachable for a path that did not exist at construction
            # and was not replaced by `load_assets`.
            self._glyph_table = GlyphTable.load(self._glyph_table_setting)
        return self._glyph_table

    def _set_glyph_table(self, glyph_table) -> None:
        self._tables_np = None
        self._table_tensors = None
        if glyph_table is None:
            self._glyph_table = GlyphTable.default()
        elif isinstance(glyph_table, GlyphTable):
            self._glyph_table = glyph_table
        elif isinstance(glyph_table, str) and glyph_table in TABLE_NAMES:
            self._glyph_table_setting = glyph_table
            self._glyph_table = GlyphTable.named(glyph_table)
        elif isinstance(glyph_table, str | os.PathLike):
            self._glyph_table_setting = os.fspath(glyph_table)
            try:
                self._glyph_table = GlyphTable.load(glyph_table)
            except FileNotFoundError:
                # E.g. `from_config` of a model saved elsewhere: the table
                # usually comes back through `load_assets` right after.
                self._glyph_table = None
        else:
            raise TypeError(
                f"`glyph_table` must be None, a name in {list(TABLE_NAMES)}, "
                "a GlyphTable or a path to a glyph table .npz, got "
                f"{type(glyph_table).__name__}"
            )

    def save_assets(self, dir_path: str) -> None:
        """Writes the glyph table into `dir_path` (called by Keras saving)."""
        self.glyph_table.save(os.path.join(dir_path, _ASSET_FILE))

    def load_assets(self, dir_path: str) -> None:
        """Reads the glyph table written by `save_assets`, if present."""
        path = os.path.join(dir_path, _ASSET_FILE)
        if os.path.exists(path):
            setting = self._glyph_table_setting
            self._set_glyph_table(GlyphTable.load(path))
            self._glyph_table_setting = setting

    def _numpy_tables(self) -> dict[str, np.ndarray]:
        """The lookup tables the renderer gathers from (built once)."""
        if self._tables_np is None:
            self._tables_np = self._lookup_tables(self.glyph_table)
        return self._tables_np

    def _lookup_tables(self, table: GlyphTable) -> dict[str, np.ndarray]:
        """The lookup tables of `table`'s glyphs, in numpy."""
        if self.font_size == GLYPH_SIZE:
            first, last = table.first_ink, table.last_ink
            # Glyph g's column c is entry g * 16 + c: a 16-bit word
            # with bit r set where row r has ink.
            pixels = table.column_words.reshape(-1)
        else:
            first, last, pixels = _resized_tables(
                table,
                self.font_size,
                self.text_brightness,
                self.background_brightness,
            )
        # byte_pixels[v, i]: the pixel value of bit i of byte v.
        bits = (np.arange(256)[:, None] >> np.arange(8)) & 1
        byte_pixels = np.where(
            bits > 0, self.text_brightness, self.background_brightness
        ).astype(np.uint8)
        return {
            "byte_pixels": byte_pixels,
            "index": table.index,
            "first": np.asarray(first, np.int32),
            "last": np.asarray(last, np.int32),
            "pixels": pixels,
        }

    def _tables(self) -> dict[str, Any]:
        """The lookup tables as backend tensors, converted once.

        They are created outside of any trace (`jax.jit`, `tf.function`)
        so one copy serves eager calls and every compiled version.
        """
        if self._table_tensors is None:
            self._table_tensors = {
                name: constant_outside_trace(table)
                for name, table in self._numpy_tables().items()
            }
        # A plain dict: the layer stores its attribute as a tracked dict,
        # which compiled programs do not take as an argument.
        return dict(self._table_tensors)

    # ------------------------------------------------------------------
    # Strings -> code points.

    def codepoints(self, texts) -> np.ndarray:
        """Decodes strings into a padded code point matrix (numpy only).

        Applies UTF-8 decoding, ASCII lowercasing (if `lower`) and the
        `max_chars` cut, then pads with -1 to the longest string (at least
        length 1).

        Args:
            texts: a string or a sequence / 1-D array of strings (``str``
                or UTF-8 ``bytes``), or an eager ``tf.string`` tensor.

        Returns:
            int32 ``[B, L]`` (``B = 1`` for a single string).

        Example:

        ```python
        TextRenderer().codepoints(["Hi", "a"])  # [[104, 105], [97, -1]]
        ```
        """
        strings, _ = _as_string_list(texts, "texts")
        return _encode(strings, self.max_chars, self.lower)

    # ------------------------------------------------------------------
    # Layer API.

    def call(self, inputs):
        if is_tf_tensor(inputs) and inputs.dtype.name == "string":
            return self._call_tf_strings(inputs)
        if _is_string_input(inputs):
            strings, scalar = _as_string_list(inputs)
            images = self.render_codepoints(
                _encode(strings, self.max_chars, self.lower)
            )
            return images[0] if scalar else images
        return self.render_codepoints(inputs)

    def render_codepoints(self, codepoints):
        """Renders an integer code point tensor ``[B, L]`` (-1 = none).

        Pure `keras.ops`: usable inside `jax.jit` and
        `tf.function(jit_compile=True)`.

        Returns:
            uint8 ``[B, image_size, image_size, 3]``.
        """
        codepoints = _as_codepoint_tensor(codepoints)
        batch, length = ops.shape(codepoints)
        if isinstance(batch, int) and batch == 0:
            return self._no_images(ops)
        if isinstance(length, int) and length == 0:
            codepoints = ops.full((batch, 1), -1, "int32")
            length = 1
        if is_tracing(codepoints):
            # The caller's `jax.jit` / `tf.function` compiles everything.
            return self._render(codepoints)
        compiled = self._compiled_render()
        if compiled is None:
            return self._render(codepoints, op_by_op=True)
        # Pad the length to a power of two so eager calls with strings of
        # varying length reuse a few compiled programs.
        bucket = max(16, 1 << (length - 1).bit_length())
        if bucket > length:
            codepoints = ops.pad(
                codepoints, [[0, 0], [0, bucket - length]], constant_values=-1
            )
        return compiled(self._tables(), codepoints)

    def render_numpy(self, codepoints) -> np.ndarray:
        """Renders an integer code point array ``[B, L]`` (-1 = none) on
        the host, in numpy.

        The same images as `render_codepoints`, with nothing to compile:
        the quicker way to render a few strings once, while a compiled
        program pays off over many or large batches.

        Returns:
            uint8 numpy ``[B, image_size, image_size, 3]``.

        Example:

        ```python
        renderer = TextRenderer(image_size=64)
        images = renderer.render_numpy(renderer.codepoints(["a cat"]))
        ```
        """
        if not isinstance(codepoints, np.ndarray) and hasattr(
            codepoints, "dtype"
        ):
            codepoints = ops.convert_to_numpy(codepoints)
        codepoints = _as_codepoint_tensor(codepoints, _NUMPY_OPS, "codepoints")
        batch, length = codepoints.shape
        if batch == 0:
            return self._no_images(np)
        if length == 0:
            codepoints = np.full((batch, 1), -1, np.int32)
        # Only the glyphs these strings use (lowercased ones too), rather
        # than tables of the whole font, which take longer to build than a
        # few strings take to render.
        used = codepoints[codepoints >= 0]
        if self.lower:
            used = np.concatenate([used, used + 32])
        tables = self._lookup_tables(self.glyph_table.subset(used))
        return self._render(codepoints, tables, op_by_op=True, xp=_NUMPY_OPS)

    def _no_images(self, xp) -> Any:
        size = self.image_size
        return xp.zeros((0, size, size, 3), "uint8")

    def _compiled_render(self):
        """`_render` compiled with XLA for eager calls, or None (torch).

        Renderers with equal settings share compiled programs: the glyph
        tables are arguments, not constants baked into the program.
        """
        settings = self._settings()
        # Compile against the settings alone, so the cache keeps no
        # renderer (and none of its tables) alive.
        fixed = types.SimpleNamespace(**settings)

        def render(tables, codepoints):
            return TextRenderer._render(fixed, codepoints, tables)

        key = ("TextRenderer._render", tuple(settings.items()))
        return cached_xla_function(key, render)

    def _settings(self) -> dict[str, Any]:
        """Everything `_render` reads besides the tables."""
        names = (
            "image_size",
            "font_size",
            "max_chars",
            "background_brightness",
            "text_brightness",
            "lower",
            "monospace",
            "spacing",
            "min_width",
        )
        return {name: getattr(self, name) for name in names}

    def _render(self, cps, tables=None, op_by_op=False, xp=ops):
        # Reads only the attributes listed in `_settings` (and `_tables`
        # when `tables` is None): compiled programs run it on a namespace.
        # `op_by_op`: the ops run eagerly one at a time with no compiler
        # to fuse them (torch, numpy), which changes the fastest pixel
        # lookup. `xp`: `keras.ops`, or `_NUMPY_OPS` to run on the host.
        tables = self._tables() if tables is None else tables
        size, cell = self.image_size, self.font_size
        num_lines = -(-size // cell)  # Lines that reach into the image.
        num_pixels = num_lines * size  # The image as one long row.
        batch, length = xp.shape(cps)

        # Which entries are characters; lowercase; look up glyphs.
        valid = xp.greater_equal(cps, 0)
        if self.max_chars:
            rank = xp.cumsum(xp.cast(valid, "int32"), axis=1)
            valid = xp.logical_and(valid, rank <= self.max_chars)
        if self.lower:
            is_upper = xp.logical_and(cps >= 65, cps <= 90)
            cps = xp.where(is_upper, cps + 32, cps)
        num_codepoints = xp.shape(tables["index"])[0]
        glyph = xp.take(tables["index"], xp.clip(cps, 0, num_codepoints - 1))
        in_table = xp.logical_and(valid, cps < num_codepoints)
        glyph = xp.where(in_table, glyph, 0)

        # Kept columns [a, a + w) of each glyph cell.
        if self.monospace:
            start_col = xp.zeros_like(glyph)
            width = xp.full_like(glyph, cell)
        else:
            first = xp.take(tables["first"], glyph)
            last = xp.take(tables["last"], glyph)
            start_col = xp.maximum(first - self.spacing, 0)
            end_col = xp.maximum(
                last + self.spacing, start_col + self.min_width
            )
            width = xp.maximum(xp.minimum(end_col, cell) - start_col, 0)
        width = xp.where(valid, width, 0)  # Padding takes no room.

        # Line of each glyph: floor(c_k / (S - W)). Exact integer division
        # equals big_vision's float32 one for every glyph that can be seen
        # (c_k < 2**24).
        max_width = xp.max(width, axis=1, keepdims=True)
        cum = xp.cast(xp.cumsum(width, axis=1), "int32")
        line = xp.floor_divide(cum, size - max_width)
        start = cum - width

        # base[j] = total width of the glyphs on lines < j, so a glyph's x
        # within its line is start - base[line].
        line_ids = xp.arange(num_lines, dtype="int32")
        before = xp.cast(line[:, :, None] < line_ids, "int32")
        base = xp.sum(width[:, :, None] * before, axis=1)  # [B, lines]
        visible = line < num_lines
        line_c = xp.minimum(line, num_lines - 1)
        x = start - xp.take_along_axis(base, line_c, axis=1)
        pos = line_c * size + x  # First pixel of each glyph, [B, L].

        # Scatter every kept column of every visible glyph onto the image
        # seen as one row of num_lines * S pixel columns. Glyphs never
        # overlap, so targets are unique; everything else goes to a dump
        # slot after each string's row.
        offset = xp.arange(cell, dtype="int32")
        keep = xp.logical_and(visible[:, :, None], offset < width[:, :, None])
        column = (glyph * cell + start_col)[:, :, None] + offset
        column = xp.where(keep, column, 0)  # Column 0 of glyph 0: blank.
        target = xp.where(keep, pos[:, :, None] + offset, num_pixels)
        row_start = xp.arange(batch, dtype="int32") * (num_pixels + 1)
        target = xp.reshape(target + row_start[:, None, None], (-1, 1))
        if cell == GLYPH_SIZE:
            # Scatter the 16-bit column words themselves (bit r = row r).
            column = xp.take(tables["pixels"], xp.reshape(column, (-1,)))
        canvas = xp.scatter_update(
            xp.zeros((batch * (num_pixels + 1),), "int32"),
            target,
            xp.reshape(column, (-1,)),
        )
        canvas = xp.reshape(canvas, (batch, num_pixels + 1))[:, :num_pixels]

        if cell == GLYPH_SIZE and op_by_op:
            # Op by op, two lookups of 8 pixel values per byte of a column
            # word beat shifting its 16 bits out one at a time.
            low = xp.take(tables["byte_pixels"], canvas & 0xFF, axis=0)
            high = xp.take(tables["byte_pixels"], canvas >> 8, axis=0)
            values = xp.concatenate([low, high], axis=-1)  # [B, P, 16]
            values = xp.reshape(values, (batch, num_lines, size, cell))
            values = xp.transpose(values, (0, 1, 3, 2))
            image = xp.reshape(values, (batch, num_lines * cell, size))
            image = image[:, :size]
        elif cell == GLYPH_SIZE:
            words = xp.reshape(canvas, (batch, num_lines, 1, size))
            rows = xp.arange(GLYPH_SIZE, dtype="int32")[:, None]
            ink = xp.bitwise_and(xp.right_shift(words, rows), 1)
            ink = xp.reshape(ink, (batch, num_lines * cell, size))
            image = xp.where(
                ink[:, :size] > 0,
                xp.convert_to_tensor(self.text_brightness, "uint8"),
                xp.convert_to_tensor(self.background_brightness, "uint8"),
            )
        else:
            # Canvas holds table columns; fetch their (resized) pixels.
            values = xp.take(tables["pixels"], canvas, axis=0)  # [B, P, F]
            values = xp.reshape(values, (batch, num_lines, size, cell))
            values = xp.transpose(values, (0, 1, 3, 2))
            image = xp.reshape(values, (batch, num_lines * cell, size))
            image = image[:, :size]
        # Stacking planes then transposing is far faster under XLA than
        # repeating along a new last axis of size 3.
        return xp.transpose(xp.stack([image] * 3, axis=1), (0, 2, 3, 1))

    def _call_tf_strings(self, inputs):
        rank = inputs.shape.rank
        if rank is None or rank > 1:
            raise ValueError(
                "`inputs` strings must be a scalar or a 1-D batch, got a "
                f"tf.string tensor of shape {inputs.shape}"
            )
        if not in_tf_graph():
            strings, scalar = _as_string_list(inputs)
            images = self.render_codepoints(
                _encode(strings, self.max_chars, self.lower)
            )
            return images[0] if scalar else images

        # A tf.data pipeline or tf.function: decode in the graph and render
        # there with the TensorFlow backend, else render each batch eagerly
        # on the host.
        def traced(texts):
            # `lower`: ASCII only, like big_vision.
            codepoints = tf_decode_utf8(
                texts, lower_ascii=self.lower, max_chars=self.max_chars
            )
            images = self._render(codepoints)
            return images[0] if rank == 0 else images

        size = self.image_size
        return call_in_tf_graph(
            inputs,
            traced,
            self,  # Numpy strings in, images out.
            dtype="uint8",
            shape=[size, size, 3] if rank == 0 else [None, size, size, 3],
        )

    def compute_output_spec(self, inputs):
        shape = getattr(inputs, "shape", None)
        size = self.image_size
        if isinstance(inputs, str | bytes) or shape == ():
            out_shape = (size, size, 3)
        elif shape is not None and len(shape) >= 1:
            out_shape = (shape[0], size, size, 3)
        else:
            out_shape = (None, size, size, 3)
        return keras.KerasTensor(out_shape, dtype="uint8")

    def compute_output_shape(self, input_shape):
        size = self.image_size
        if len(input_shape) == 0:
            return (size, size, 3)
        return (input_shape[0], size, size, 3)

    def get_config(self) -> dict[str, Any]:
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "font_size": self.font_size,
                "max_chars": self.max_chars,
                "background_brightness": self.background_brightness,
                "text_brightness": self.text_brightness,
                "lower": self.lower,
                "monospace": self.monospace,
                "spacing": self.spacing,
                "min_width": self.min_width,
                "glyph_table": self._glyph_table_setting,
            }
        )
        return config


# ----------------------------------------------------------------------
# Function form.


def render_text(
    texts: str | bytes | Sequence[str | bytes] | np.ndarray, **config: Any
) -> np.ndarray:
    """Renders strings as images exactly like big_vision's `render_unifont`.

    A function form of `TextRenderer`: builds (and caches) one renderer per
    configuration and returns numpy arrays.

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
    images = keras_vl.layers.render_text(["hello world"], image_size=224)
    images.shape  # (1, 224, 224, 3)
    ```
    """
    _as_string_list(texts, "texts")  # Errors name this argument.
    try:
        key = tuple(sorted(config.items()))
        hash(key)
    except TypeError:
        # Unhashable arguments (e.g. a numpy scalar array): no caching.
        renderer = TextRenderer(**config)
    else:
        renderer = _cached_renderer(key)
    return ops.convert_to_numpy(renderer(texts))


@functools.lru_cache(maxsize=16)
def _cached_renderer(key: tuple) -> TextRenderer:
    return TextRenderer(**dict(key))


# ----------------------------------------------------------------------
# Helpers.


def _check_int(name: str, value, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise TypeError(
            f"`{name}` must be an int, got {value!r} ({type(value).__name__})"
        )
    value = int(value)
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"in {low}..{high}"
        raise ValueError(f"`{name}` must be {bounds}, got {value}")
    return value


def _check_bool(name: str, value) -> bool:
    if not isinstance(value, bool | np.bool_):
        raise TypeError(f"`{name}` must be a bool, got {value!r}")
    return bool(value)


def _is_string_input(x) -> bool:
    if isinstance(x, str | bytes | list | tuple):
        return True
    return isinstance(x, np.ndarray) and x.dtype.kind in "USO"


def _as_string_list(
    texts, name: str = "inputs"
) -> tuple[list[str | bytes], bool]:
    """Returns (list of str/bytes, whether the input was a scalar); errors
    name the argument `name`."""
    if isinstance(texts, str | bytes):
        return [texts], True
    if is_tf_tensor(texts):
        if texts.dtype.name != "string":
            raise TypeError(
                f"`{name}` must be strings, got a tf tensor of {texts.dtype}"
            )
        texts = texts.numpy()
        if isinstance(texts, bytes):
            return [texts], True
    if isinstance(texts, np.ndarray):
        if texts.dtype.kind not in "USO":
            raise TypeError(
                f"`{name}` must be strings, got an array of {texts.dtype}"
            )
        if texts.ndim > 1:
            raise ValueError(
                f"`{name}` strings must be a scalar or a 1-D batch, got "
                f"shape {texts.shape}"
            )
        scalar = texts.ndim == 0
        texts = [texts.item()] if scalar else texts.tolist()
    elif isinstance(texts, list | tuple):
        scalar = False
    else:
        raise TypeError(
            f"`{name}` must be strings (str/bytes, a list of them, a string "
            f"array) or an integer code point tensor, got {type(texts)}"
        )
    for text in texts:
        if not isinstance(text, str | bytes):
            raise TypeError(
                f"`{name}` must contain only strings (str or UTF-8 bytes), "
                f"got an element of type {type(text).__name__}: {text!r}"
            )
    return list(texts), scalar


def _encode(strings: Sequence[str | bytes], max_chars: int, lower: bool):
    """Strings -> int32 [B, max(1, longest)] code points, -1 padded."""
    texts = [
        t.decode("utf-8", errors="replace") if isinstance(t, bytes) else t
        for t in strings
    ]
    if max_chars:
        texts = [t[:max_chars] for t in texts]
    lengths = np.fromiter((len(t) for t in texts), np.int64, len(texts))
    width = max(1, int(lengths.max(initial=0)))
    out = np.full((len(texts), width), -1, dtype=np.int32)
    # One UTF-32 encode of everything; "surrogatepass" keeps lone
    # surrogates (which the glyph table maps to blank) instead of failing.
    flat = np.frombuffer(
        "".join(texts).encode("utf-32-le", "surrogatepass"), "<u4"
    ).astype(np.int32)
    out[np.arange(width)[None, :] < lengths[:, None]] = flat
    if lower:
        upper = (out >= 65) & (out <= 90)
        out[upper] += 32
    return out


def _as_codepoint_tensor(x, xp=ops, name: str = "inputs"):
    """`x` checked and as int32 code points: a backend tensor, or a numpy
    array for `xp=_NUMPY_OPS`. Errors name the argument `name`."""
    try:
        dtype = keras.backend.standardize_dtype(x.dtype)
    except (AttributeError, ValueError):
        expected = "strings or an integer" if name == "inputs" else "an integer"
        raise TypeError(
            f"`{name}` must be {expected} code point tensor, got "
            f"{type(x).__name__}"
        ) from None
    if "int" not in dtype:
        raise TypeError(
            f"`{name}` code points must be an integer tensor, got dtype {dtype}"
        )
    if len(x.shape) != 2:
        raise ValueError(
            f"`{name}` code points must have rank 2 ([batch, length]), got "
            f"shape {tuple(x.shape)}"
        )
    x = xp.convert_to_tensor(x)
    if dtype != "int32":
        if dtype in ("int64", "uint32", "uint64"):
            x = xp.clip(x, -1, 0x110000)
        x = xp.cast(x, "int32")
    return x


def _numpy_scatter_update(inputs, indices, updates):
    """`ops.scatter_update` in numpy: a copy of `inputs` with
    `updates` written at `indices` `[N, rank]`."""
    outputs = np.array(inputs)
    outputs[tuple(np.moveaxis(indices, -1, 0))] = updates
    return outputs


# The `keras.ops` that `TextRenderer._render` uses, in numpy, for rendering
# on the host. Integer ops only, so the images are the same bit for bit.
_NUMPY_OPS = types.SimpleNamespace(
    **{
        name: getattr(np, name)
        for name in (
            "arange",
            "bitwise_and",
            "clip",
            "concatenate",
            "cumsum",
            "floor_divide",
            "full_like",
            "greater_equal",
            "logical_and",
            "max",
            "maximum",
            "minimum",
            "reshape",
            "right_shift",
            "shape",
            "stack",
            "sum",
            "take",
            "take_along_axis",
            "transpose",
            "where",
            "zeros",
            "zeros_like",
        )
    },
    cast=lambda x, dtype: np.asarray(x).astype(dtype),
    convert_to_tensor=np.asarray,
    scatter_update=_numpy_scatter_update,
)


def _area_weights(size: int) -> list[list[tuple[int, np.float32]]]:
    """For each of `size` output pixels, (input index, weight) pairs of an
    area resize from 16, in TF `ResizeArea`'s float32 arithmetic."""
    f32 = np.float32
    scale = f32(GLYPH_SIZE) / f32(size)
    weights = []
    for out in range(size):
        lo, hi = f32(out) * scale, f32(out + 1) * scale
        taps = []
        for i in range(int(np.floor(lo)), int(np.ceil(hi))):
            if i < lo:
                w = scale if i + 1 > hi else f32(i + 1) - lo
            else:
                w = hi - f32(i) if i + 1 > hi else f32(1.0)
            taps.append((min(max(i, 0), GLYPH_SIZE - 1), f32(w)))
        weights.append(taps)
    return weights


def area_resize_glyphs(bitmaps: np.ndarray, size: int) -> np.ndarray:
    """Area-resizes ``[N, 16, 16]`` glyph bitmaps to ``[N, size, size]``.

    Reproduces TensorFlow's ``tf.image.resize(..., method="area")`` (which
    big_vision uses for ``font_size != 16``) bit for bit: the same float32
    weights, summed in the same order.
    """
    f32 = np.float32
    bitmaps = np.asarray(bitmaps, f32)
    taps = _area_weights(size)
    scale = f32(GLYPH_SIZE) / f32(size)
    norm = f32(1.0 / float(scale * scale))
    resized = np.zeros((len(bitmaps), size, size), f32)
    # For each output pixel: sum over input rows of (weighted sum over
    # input columns, first and last column weighted) * row weight.
    for y, row_taps in enumerate(taps):
        for x, col_taps in enumerate(taps):
            total = np.zeros(len(bitmaps), f32)
            for i, row_weight in row_taps:
                line = bitmaps[:, i, :]
                part = line[:, col_taps[0][0]] * col_taps[0][1]
                for j, _ in col_taps[1:-1]:
                    part = part + line[:, j]
                if len(col_taps) > 1:
                    part = part + line[:, col_taps[-1][0]] * col_taps[-1][1]
                total = total + part * row_weight
            resized[:, y, x] = total * norm
    return resized


def _resized_tables(
    table: GlyphTable, size: int, text: int, background: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Lookup tables for ``font_size != 16``: glyphs area-resized to `size`
    as big_vision does, their first/last ink columns, and a pixel table
    uint8 ``[(G + 1) * size, size]`` (row ``g * size + column`` holds that
    column of glyph ``g``, already mapped to brightness values)."""
    f32 = np.float32
    resized = area_resize_glyphs(table.bitmaps, size)
    ink = (resized > 0).any(axis=1)  # [G+1, col]
    has_ink = ink.any(axis=1)
    first = np.where(has_ink, ink.argmax(axis=1), 0)
    last = np.where(has_ink, size - 1 - ink[:, ::-1].argmax(axis=1), 0)
    # big_vision: value * (text - background) + background in float32,
    # then a truncating cast to uint8.
    values = resized * f32(text - background) + f32(background)
    values = np.clip(np.trunc(values), 0, 255).astype(np.uint8)
    pixels = values.transpose(0, 2, 1).reshape(-1, size)  # [(G+1)*col, row]
    return first, last, np.ascontiguousarray(pixels)
