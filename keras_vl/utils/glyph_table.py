"""Compact 16x16 bitmap font tables built from GNU Unifont `.hex` files
(`tools/build_glyph_table.py` also reads Unifont's OpenType files).

A `.hex` file has one glyph per line, ``CODEPOINT:BITS``: the code point in
hex (4 to 6 digits), then 32 hex digits (an 8x16 half-width glyph, drawn in
the *left* 8 columns of the 16x16 cell) or 64 hex digits (a 16x16 glyph).
Rows run top to bottom and bits are most-significant first (= leftmost
pixel).

`GlyphTable` keeps every glyph as 16 row words (``uint16``, bit 15 = column
0) plus a sorted code point list; glyph 0 is the blank glyph that every code
point without an entry maps to. On disk it is a compressed ``.npz`` that
loads with ``allow_pickle=False``.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

FORMAT_VERSION = 1
GLYPH_SIZE = 16
MAX_UNICODE = 0x10FFFF
_SURROGATES = (0xD800, 0xDFFF)
_DEFAULT_ASSET = Path(__file__).resolve().parents[1] / "assets"
DEFAULT_TABLE_PATH = _DEFAULT_ASSET / "unifont_glyphs.npz"
# Shipped tables `GlyphTable.named` knows, the default first.
TABLE_NAMES = ("unifont", "unifont_bmp")

# Keys of the `.npz` file. The row words are stored as two byte planes
# ([high bytes, low bytes]), which deflate ~25% smaller than uint16 rows, and
# the code points as runs ``[start, stop)``, since fonts cover whole blocks.
_NPZ_KEYS = {
    "format_version",
    "codepoint_ranges",
    "row_bytes",
    "license",
    "source",
}

PathLike = str | os.PathLike


class GlyphTable:
    """A 16x16 monochrome bitmap font indexed by Unicode code point.

    Glyph ``0`` is always blank. Code points without a glyph, surrogates
    (U+D800..U+DFFF), negative values and anything above the table map to
    glyph 0: looking a code point up never fails.

    Args:
        codepoints: int array ``[G]``, strictly increasing code points
            (``0 .. 0x10FFFF``) that have a glyph.
        rows: uint16 array ``[G + 1, 16]``; ``rows[i + 1]`` are the 16 row
            words of the glyph of ``codepoints[i]`` (bit 15 = leftmost
            column); ``rows[0]`` must be all zero (the blank glyph).
        license: the font's license notice, stored with the table.
        source: free text saying where the bitmaps came from.

    Example:

    ```python
    table = GlyphTable.default()
    table.bitmap(ord("A")).shape  # (16, 16) bool
    table.glyph_index([ord("A"), 0xE000, -1])  # [i, 0, 0]
    ```
    """

    def __init__(
        self,
        codepoints: np.ndarray,
        rows: np.ndarray,
        license: str = "",
        source: str = "",
    ) -> None:
        codepoints = np.asarray(codepoints)
        rows = np.asarray(rows)
        problem = _check_arrays(codepoints, rows)
        if problem:
            raise ValueError(f"Invalid glyph table: {problem}")
        self._codepoints = codepoints.astype(np.int32)
        self._codepoints.setflags(write=False)
        self._rows = rows.astype(np.uint16)
        self._rows.setflags(write=False)
        self.license = str(license)
        self.source = str(source)
        self._cache: dict[str, np.ndarray] = {}

    # ------------------------------------------------------------------
    # Construction / persistence.

    @classmethod
    def from_hex_files(
        cls,
        paths: PathLike | Sequence[PathLike],
        max_codepoint: int | None = None,
        license: str = "",
        source: str | None = None,
    ) -> GlyphTable:
        """Parses one or more Unifont `.hex` files.

        Later files override earlier ones where a code point repeats (as
        does a later line of the same file).

        Args:
            paths: a `.hex` path or a sequence of them.
            max_codepoint: glyphs above this code point are ignored.
            license: license text to store in the table.
            source: provenance text; defaults to the file names.

        Returns:
            The table.

        Raises:
            ValueError: a malformed line (the message names file and line).

        Example:

        ```python
        table = GlyphTable.from_hex_files(["unifont.hex"], 0xFFFF)
        ```
        """
        if isinstance(paths, str | os.PathLike):
            paths = [paths]
        paths = [Path(p) for p in paths]
        if not paths:
            raise ValueError("from_hex_files: `paths` is empty")
        glyphs: dict[int, list[int]] = {}
        for path in paths:
            with open(path, encoding="ascii", errors="strict") as f:
                for line_no, line in enumerate(f, start=1):
                    parsed = _parse_hex_line(line, path, line_no)
                    if parsed is None:
                        continue
                    codepoint, words = parsed
                    if max_codepoint is not None and codepoint > max_codepoint:
                        continue
                    glyphs[codepoint] = words
        if source is None:
            source = "built from " + ", ".join(p.name for p in paths)
        return cls.from_glyphs(glyphs, license=license, source=source)

    @classmethod
    def from_glyphs(
        cls,
        glyphs: Mapping[int, Sequence[int]],
        license: str = "",
        source: str = "",
    ) -> GlyphTable:
        """Builds a table from ``{code point: 16 row words}``.

        Surrogates (U+D800..U+DFFF) are dropped: they are not characters.

        Args:
            glyphs: per code point, 16 row words (bit 15 = leftmost column).
            license: license text to store in the table.
            source: provenance text.

        Returns:
            The table.

        Example:

        ```python
        table = GlyphTable.from_glyphs({ord("-"): [0] * 7 + [0xFF00] + [0] * 8})
        ```
        """
        order = sorted(c for c in glyphs if not _is_surrogate(c))
        codepoints = np.asarray(order, dtype=np.int32)
        rows = np.zeros((len(order) + 1, GLYPH_SIZE), dtype=np.uint16)
        if order:
            rows[1:] = np.asarray([glyphs[c] for c in order], np.uint16)
        return cls(codepoints, rows, license=license, source=source)

    def up_to(self, max_codepoint: int) -> GlyphTable:
        """The glyphs of code points ``<= max_codepoint`` as a new table.

        Example:

        ```python
        plane0 = GlyphTable.default().up_to(0xFFFF)
        ```
        """
        if isinstance(max_codepoint, bool) or not isinstance(
            max_codepoint, int | np.integer
        ):
            raise TypeError(
                "`max_codepoint` must be an int, got "
                f"{type(max_codepoint).__name__}"
            )
        keep = int(np.searchsorted(self._codepoints, max_codepoint, "right"))
        source = f"{self.source}; code points <= {max_codepoint:#x}"
        return GlyphTable(
            self._codepoints[:keep],
            self._rows[: keep + 1],
            license=self.license,
            source=source,
        )

    def subset(self, codepoints: Iterable[int] | np.ndarray) -> GlyphTable:
        """The glyphs of `codepoints` alone as a new table (code points
        without a glyph, repeats and negatives are ignored).

        A renderer that needs a few glyphs derives its lookup tables from
        such a table instead of from the whole font.

        Example:

        ```python
        small = GlyphTable.default().subset([ord(c) for c in "a cat"])
        small.num_glyphs  # 3
        ```
        """
        wanted = np.unique(np.asarray(codepoints, np.int64).reshape(-1))
        position = np.searchsorted(self._codepoints, wanted)
        position = np.minimum(position, max(self.num_glyphs - 1, 0))
        found = (
            self._codepoints[position] == wanted
            if self.num_glyphs
            else np.zeros(len(wanted), bool)
        )
        rows = np.concatenate([self._rows[:1], self._rows[position[found] + 1]])
        return GlyphTable(
            wanted[found],
            rows,
            license=self.license,
            source=f"{self.source}; {int(found.sum())} glyphs",
        )

    def save(self, path: PathLike) -> None:
        """Writes the table as a compressed `.npz` file.

        Example:

        ```python
        GlyphTable.default().save("/tmp/font.npz")
        ```
        """
        row_bytes = np.stack([self._rows >> 8, self._rows & 0xFF])
        with open(path, "wb") as f:
            np.savez_compressed(
                f,
                format_version=np.asarray(FORMAT_VERSION, np.int32),
                codepoint_ranges=_to_ranges(self._codepoints),
                row_bytes=row_bytes.astype(np.uint8),
                license=np.asarray(self.license),
                source=np.asarray(self.source),
            )

    @classmethod
    def load(cls, path: PathLike) -> GlyphTable:
        """Reads a table written by `save` (validating it).

        Raises:
            ValueError: the file is not a valid glyph table; the message
                names the file and what is wrong.

        Example:

        ```python
        table = GlyphTable.load("font.npz")
        ```
        """
        path = Path(path)
        try:
            with np.load(path, allow_pickle=False) as data:
                arrays = {key: data[key] for key in data.files}
        except FileNotFoundError:
            raise
        except (OSError, ValueError) as e:
            raise ValueError(
                f"Glyph table {str(path)!r} is not a readable .npz file: {e}"
            ) from e
        problem = _check_npz(arrays)
        if problem:
            raise ValueError(f"Invalid glyph table {str(path)!r}: {problem}")
        planes = arrays["row_bytes"].astype(np.uint16)
        rows = (planes[0] << 8) | planes[1]
        try:
            return cls(
                _from_ranges(arrays["codepoint_ranges"]),
                rows,
                license=str(arrays["license"]),
                source=str(arrays["source"]),
            )
        except ValueError as e:
            raise ValueError(f"Invalid glyph table {str(path)!r}: {e}") from e

    @staticmethod
    def default() -> GlyphTable:
        """The shipped GNU Unifont 15.0.01 table, all planes (cached).

        Same as ``GlyphTable.named("unifont")``.

        Example:

        ```python
        table = GlyphTable.default()
        ```
        """
        return _load_named("unifont")

    @staticmethod
    def named(name: str) -> GlyphTable:
        """A shipped table by name (cached), one of `TABLE_NAMES`:

        - ``"unifont"``: GNU Unifont 15.0.01, plane 0 from ``unifont.hex``
          and planes 1, 2 and 14 from ``unifont_upper.otf`` (the released
          CLIPPO models were trained with Unifont's upper planes too).
        - ``"unifont_bmp"``: the same glyphs up to U+FFFF only; code points
          above render blank, as in big_vision runs whose upper-plane font
          file was empty (the renderer fixtures were made that way).

        Raises:
            ValueError: `name` is not one of `TABLE_NAMES`.

        Example:

        ```python
        plane0 = GlyphTable.named("unifont_bmp")
        ```
        """
        if name not in TABLE_NAMES:
            raise ValueError(
                f"Unknown glyph table name {name!r}; expected one of "
                f"{list(TABLE_NAMES)}"
            )
        return _load_named(name)

    # ------------------------------------------------------------------
    # Accessors.

    @property
    def codepoints(self) -> np.ndarray:
        """int32 ``[G]``: the code points that have a glyph, sorted."""
        return self._codepoints

    @property
    def rows(self) -> np.ndarray:
        """uint16 ``[G + 1, 16]``: row words, bit 15 = column 0."""
        return self._rows

    @property
    def num_glyphs(self) -> int:
        """Number of glyphs, not counting the blank glyph 0."""
        return len(self._codepoints)

    @property
    def max_codepoint(self) -> int:
        """The highest code point with a glyph (-1 for an empty table)."""
        return int(self._codepoints[-1]) if len(self._codepoints) else -1

    @property
    def index(self) -> np.ndarray:
        """int32 ``[max_codepoint + 1]`` (at least 1): code point -> glyph
        index."""
        if "index" not in self._cache:
            index = np.zeros(max(self.max_codepoint + 1, 1), dtype=np.int32)
            index[self._codepoints] = np.arange(
                1, self.num_glyphs + 1, dtype=np.int32
            )
            self._cache["index"] = _readonly(index)
        return self._cache["index"]

    @property
    def bitmaps(self) -> np.ndarray:
        """bool ``[G + 1, 16, 16]`` (glyph, row, column)."""
        shifts = np.arange(GLYPH_SIZE - 1, -1, -1, dtype=np.uint16)
        return ((self._rows[:, :, None] >> shifts) & 1).astype(bool)

    @property
    def first_ink(self) -> np.ndarray:
        """int32 ``[G + 1]``: leftmost column with ink (0 when blank)."""
        self._ink_columns()
        return self._cache["first_ink"]

    @property
    def last_ink(self) -> np.ndarray:
        """int32 ``[G + 1]``: rightmost column with ink (0 when blank)."""
        self._ink_columns()
        return self._cache["last_ink"]

    @property
    def column_words(self) -> np.ndarray:
        """int32 ``[G + 1, 16]``: per column, bit ``r`` = ink at row ``r``.

        The transposed form of `rows`, which lets a renderer fetch one
        glyph column with a single gather.
        """
        if "column_words" not in self._cache:
            # Bit 15 - c of row word r -> bit r of column word c, 16 rows
            # at a time on the packed words (no [G, 16, 16] bool array).
            shifts = np.arange(GLYPH_SIZE - 1, -1, -1, dtype=np.int32)
            rows = self._rows.astype(np.int32)
            words = np.zeros((len(rows), GLYPH_SIZE), np.int32)
            for r in range(GLYPH_SIZE):
                words |= ((rows[:, r, None] >> shifts) & 1) << r
            self._cache["column_words"] = _readonly(words)
        return self._cache["column_words"]

    def glyph_index(self, codepoints: Iterable[int] | np.ndarray) -> np.ndarray:
        """Maps code points to glyph indices (0 = blank), never failing.

        Example:

        ```python
        GlyphTable.default().glyph_index([ord("a"), 0x1F600])  # [i, 0]
        ```
        """
        cps = np.asarray(codepoints, dtype=np.int64)
        index = self.index
        inside = (cps >= 0) & (cps < len(index))
        return np.where(inside, index[np.where(inside, cps, 0)], 0).astype(
            np.int32
        )

    def bitmap(self, codepoint: int) -> np.ndarray:
        """bool ``[16, 16]`` (row, column) bitmap of one code point.

        Example:

        ```python
        GlyphTable.default().bitmap(ord("x")).sum()  # number of ink pixels
        ```
        """
        glyph = int(self.glyph_index([codepoint])[0])
        shifts = np.arange(GLYPH_SIZE - 1, -1, -1, dtype=np.uint16)
        return ((self._rows[glyph][:, None] >> shifts) & 1).astype(bool)

    def equals(self, other: GlyphTable) -> bool:
        """Whether two tables hold the same glyphs (ignores license text)."""
        return np.array_equal(
            self._codepoints, other._codepoints
        ) and np.array_equal(self._rows, other._rows)

    def __repr__(self) -> str:
        return (
            f"GlyphTable(num_glyphs={self.num_glyphs}, "
            f"max_codepoint={self.max_codepoint:#x}, source={self.source!r})"
        )

    def _ink_columns(self) -> None:
        if "first_ink" in self._cache:
            return
        # OR of a glyph's row words: bit 15 - c set where column c has ink.
        ink = np.bitwise_or.reduce(self._rows, axis=1).astype(np.int32)
        has_ink = ink > 0
        safe = np.where(has_ink, ink, 1)
        highest_bit = np.floor(np.log2(safe)).astype(np.int32)
        lowest_bit = np.floor(np.log2(safe & -safe)).astype(np.int32)
        first = np.where(has_ink, GLYPH_SIZE - 1 - highest_bit, 0)
        last = np.where(has_ink, GLYPH_SIZE - 1 - lowest_bit, 0)
        self._cache["first_ink"] = _readonly(first.astype(np.int32))
        self._cache["last_ink"] = _readonly(last.astype(np.int32))


@functools.cache
def _load_named(name: str) -> GlyphTable:
    if name == "unifont_bmp":
        return _load_named("unifont").up_to(0xFFFF)
    return GlyphTable.load(DEFAULT_TABLE_PATH)


def _readonly(array: np.ndarray) -> np.ndarray:
    array.setflags(write=False)
    return array


def _to_ranges(codepoints: np.ndarray) -> np.ndarray:
    """Sorted code points -> int32 ``[R, 2]`` runs ``[start, stop)``."""
    if not len(codepoints):
        return np.zeros((0, 2), np.int32)
    breaks = np.flatnonzero(np.diff(codepoints) != 1) + 1
    starts = codepoints[np.concatenate([[0], breaks])]
    stops = codepoints[np.concatenate([breaks - 1, [len(codepoints) - 1]])]
    return np.stack([starts, stops + 1], axis=1).astype(np.int32)


def _from_ranges(ranges: np.ndarray) -> np.ndarray:
    if not len(ranges):
        return np.zeros((0,), np.int32)
    return np.concatenate(
        [np.arange(a, b, dtype=np.int32) for a, b in ranges.tolist()]
    )


def _is_surrogate(codepoint: int) -> bool:
    return _SURROGATES[0] <= codepoint <= _SURROGATES[1]


def _parse_hex_line(
    line: str, path: Path, line_no: int
) -> tuple[int, list[int]] | None:
    """Returns ``(codepoint, 16 row words)``, or None for blank lines."""
    text = line.strip()
    if not text or text.startswith("#"):
        return None
    where = f"{path}:{line_no}"
    key, sep, bits = text.partition(":")
    if not sep:
        raise ValueError(f"{where}: expected 'CODEPOINT:HEXBITS'")
    try:
        codepoint = int(key, 16)
        if not 4 <= len(key) <= 6 or not 0 <= codepoint <= MAX_UNICODE:
            raise ValueError
    except ValueError:
        raise ValueError(f"{where}: invalid code point {key!r}") from None
    try:
        data = bytes.fromhex(bits)
    except ValueError:
        raise ValueError(f"{where}: invalid hex digits") from None
    if len(bits) == 32:  # 8x16: one byte per row, left half of the cell.
        words = [b << 8 for b in data]
    elif len(bits) == 64:  # 16x16: two bytes per row.
        words = [(data[i] << 8) | data[i + 1] for i in range(0, 32, 2)]
    else:
        raise ValueError(
            f"{where}: glyph has {len(bits)} hex digits; only 32 (8x16) "
            "and 64 (16x16) are supported"
        )
    return codepoint, words


def _check_arrays(codepoints: np.ndarray, rows: np.ndarray) -> str | None:
    if codepoints.ndim != 1 or not np.issubdtype(codepoints.dtype, np.integer):
        return (
            "`codepoints` must be a 1-D integer array, got "
            f"{codepoints.dtype} {codepoints.shape}"
        )
    if rows.shape != (len(codepoints) + 1, GLYPH_SIZE) or rows.dtype not in (
        np.uint16,
        np.dtype(">u2"),
    ):
        return (
            f"`rows` must be uint16 [{len(codepoints) + 1}, {GLYPH_SIZE}], "
            f"got {rows.dtype} {rows.shape}"
        )
    if len(codepoints):
        if codepoints.min() < 0 or codepoints.max() > MAX_UNICODE:
            return "`codepoints` must lie in 0..0x10FFFF"
        if np.any(np.diff(codepoints.astype(np.int64)) <= 0):
            return "`codepoints` must be strictly increasing"
        lo, hi = _SURROGATES
        if np.any((codepoints >= lo) & (codepoints <= hi)):
            return "`codepoints` must not contain surrogates"
    if np.any(rows[0] != 0):
        return "`rows[0]` (the blank glyph) must be all zero"
    return None


def _check_npz(arrays: dict[str, np.ndarray]) -> str | None:
    keys = set(arrays)
    if keys != _NPZ_KEYS:
        missing = sorted(_NPZ_KEYS - keys)
        extra = sorted(keys - _NPZ_KEYS)
        return f"wrong keys (missing {missing}, unexpected {extra})"
    version = arrays["format_version"]
    if version.shape != () or int(version) != FORMAT_VERSION:
        return f"unsupported format_version {version!r}"
    ranges = arrays["codepoint_ranges"]
    if ranges.dtype != np.int32 or ranges.ndim != 2 or ranges.shape[1] != 2:
        return (
            "`codepoint_ranges` must be int32 [R, 2], got "
            f"{ranges.dtype} {list(ranges.shape)}"
        )
    starts, stops = ranges[:, 0].astype(np.int64), ranges[:, 1]
    if np.any(stops <= starts) or np.any(starts[1:] < stops[:-1]):
        return "`codepoint_ranges` must be increasing, non-empty runs"
    if len(ranges) and (starts[0] < 0 or stops[-1] > MAX_UNICODE + 1):
        return "`codepoint_ranges` must lie in 0..0x10FFFF"
    num_glyphs = int(np.sum(stops - starts))
    row_bytes = arrays["row_bytes"]
    expected = (2, num_glyphs + 1, GLYPH_SIZE)
    if row_bytes.dtype != np.uint8 or row_bytes.shape != expected:
        return (
            f"`row_bytes` must be uint8 {list(expected)}, got "
            f"{row_bytes.dtype} {list(row_bytes.shape)}"
        )
    for key in ("license", "source"):
        if arrays[key].shape != () or arrays[key].dtype.kind != "U":
            return f"`{key}` must be a string scalar"
    return None
