"""Builds keras_vl's compact glyph table from GNU Unifont `.hex` and `.otf`
files.

Usage:

```
python tools/build_glyph_table.py unifont.hex [more.hex|.otf ...] \
    --output keras_vl/assets/unifont_glyphs.npz [--max-codepoint 0xFFFF] \
    [--upper unifont_upper.otf] [--license LICENSE.txt] \
    [--source "GNU Unifont 15.0.01"] [--compare-with reference.hex]
```

Later files override earlier ones for repeated code points; `--upper` files
only add (or override) glyphs above U+FFFF. `.hex` parsing lives in
`keras_vl.utils.glyph_table`; this tool adds Unifont's OpenType files
(needs `fonttools`, the `tools` extra), which Debian and Unifoundry ship for
the upper planes.

Unifont's OpenType outlines are unions of axis-aligned pixel squares on a
16-pixel-high grid (one pixel = ``(ascent - descent) / 16`` font units), so
`read_otf` rasterises them exactly: it checks every vertex lies on that
grid and fills each pixel whose centre has a non-zero winding number.
The advance width says whether a glyph is 8 or 16 pixels wide; combining
marks have advance 0 and are shifted left by their cell width, which the
font stores as the left side bearing, so the cell starts there.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from keras_vl.utils.glyph_table import GLYPH_SIZE, GlyphTable

UPPER_PLANES_START = 0x10000
_HALF_WIDTH = GLYPH_SIZE // 2


def _int(text: str) -> int:
    return int(text, 0)


def rasterize_contours(
    contours: Sequence[Sequence[tuple[float, float]]],
    pixel: float,
    left: float,
    top: float,
    width: int = GLYPH_SIZE,
    name: str = "glyph",
) -> list[int]:
    """Fills closed, axis-aligned polygons on a ``16 x width`` pixel grid.

    Args:
        contours: closed polygons as vertex lists (the last vertex joins the
            first), in font units with y pointing up.
        pixel: font units per pixel.
        left: x of the cell's left edge.
        top: y of the cell's top edge.
        width: cell width in pixels (8 or 16).
        name: names the glyph in errors.

    Returns:
        16 row words, bit 15 = column 0 (an 8-wide cell fills the left half).

    Raises:
        ValueError: a vertex off the pixel grid, a slanted edge or ink
            outside the cell; the message names the glyph.

    Example:

    ```python
    # One pixel at row 0, column 1 of a cell whose top-left is (0, 64).
    square = [(4, 64), (8, 64), (8, 60), (4, 60)]
    rasterize_contours([square], pixel=4, left=0, top=64)[0]  # 0x4000
    ```
    """
    # Vertical edges decide the winding number of every pixel centre: a
    # ray from the centre towards +x crosses them, horizontal ones never.
    edges = []  # (column of the edge, top row, bottom row, +1/-1)
    for contour in contours:
        grid = []
        for x, y in contour:
            col, row = (x - left) / pixel, (top - y) / pixel
            if col != round(col) or row != round(row):
                raise ValueError(
                    f"{name}: vertex ({x}, {y}) is off the {pixel}-unit "
                    "pixel grid; only outlines made of pixel squares can be "
                    "rasterised exactly"
                )
            grid.append((round(col), round(row)))
        for (c0, r0), (c1, r1) in zip(grid, grid[1:] + grid[:1], strict=True):
            if c0 != c1 and r0 != r1:
                raise ValueError(
                    f"{name}: slanted edge {(c0, r0)} -> {(c1, r1)} (in "
                    "pixels); only axis-aligned outlines are supported"
                )
            if c0 == c1 and r0 != r1:
                edges.append(
                    (c0, min(r0, r1), max(r0, r1), 1 if r1 > r0 else -1)
                )
    bits = np.zeros((GLYPH_SIZE, width), bool)
    if edges:
        e = np.asarray(edges)
        centre_rows = np.arange(GLYPH_SIZE)[:, None, None] + 0.5
        centre_cols = np.arange(width)[None, :, None] + 0.5
        crosses = (
            (e[:, 1] < centre_rows)
            & (centre_rows < e[:, 2])
            & (e[:, 0] > centre_cols)
        )
        winding = np.sum(crosses * e[:, 3], axis=-1)
        bits = winding != 0
        # Ink outside the cell cannot be stored: refuse rather than crop.
        lo_col, hi_col = e[:, 0].min(), e[:, 0].max()
        lo_row, hi_row = e[:, 1].min(), e[:, 2].max()
        if lo_col < 0 or hi_col > width or lo_row < 0 or hi_row > GLYPH_SIZE:
            raise ValueError(
                f"{name}: outline reaches outside its {width}x{GLYPH_SIZE} "
                f"cell (columns {lo_col}..{hi_col}, rows {lo_row}..{hi_row})"
            )
    weights = 1 << np.arange(GLYPH_SIZE - 1, GLYPH_SIZE - 1 - width, -1)
    return [int(w) for w in bits.astype(np.int64) @ weights]


def read_otf(
    path: str | Path,
    min_codepoint: int = 0,
    max_codepoint: int | None = None,
) -> dict[int, list[int]]:
    """Reads the bitmaps of a Unifont OpenType file (needs `fonttools`).

    Args:
        path: a Unifont ``.otf`` (or ``.ttf``) file.
        min_codepoint: glyphs below this code point are ignored.
        max_codepoint: glyphs above this code point are ignored.

    Returns:
        ``{code point: 16 row words}``, ready for `GlyphTable.from_glyphs`.

    Raises:
        ValueError: the font's grid is not 16 pixels high, a glyph is not
            8 or 16 pixels wide, or an outline is not made of pixel squares
            (the message names the glyph and code point).

    Example:

    ```python
    glyphs = read_otf("unifont_upper.otf", min_codepoint=0x10000)
    ```
    """
    try:
        from fontTools.pens.recordingPen import RecordingPen
        from fontTools.ttLib import TTFont
    except ImportError as e:
        raise ImportError(
            "Reading OpenType fonts needs fonttools: "
            "pip install 'keras-vl[tools]'"
        ) from e
    font = TTFont(path, lazy=True)
    ascent, descent = font["hhea"].ascent, font["hhea"].descent
    pixel = (ascent - descent) / GLYPH_SIZE
    if pixel <= 0:
        raise ValueError(
            f"{path}: ascent {ascent} and descent {descent} give no "
            f"{GLYPH_SIZE}-pixel grid"
        )
    metrics, glyph_set = font["hmtx"], font.getGlyphSet()
    cache: dict[str, list[int]] = {}
    glyphs = {}
    for codepoint, name in sorted(font.getBestCmap().items()):
        if codepoint < min_codepoint or (
            max_codepoint is not None and codepoint > max_codepoint
        ):
            continue
        if name not in cache:
            label = f"{Path(path).name} U+{codepoint:04X} ({name})"
            advance, bearing = metrics[name]
            if advance:
                left, width = 0, round(advance / pixel)
                if width not in (_HALF_WIDTH, GLYPH_SIZE):
                    raise ValueError(
                        f"{label}: advance {advance} is {advance / pixel} "
                        f"pixels; expected {_HALF_WIDTH} or {GLYPH_SIZE}"
                    )
            else:
                # A combining mark: the cell moved left by the bearing.
                left, width = min(bearing, 0), GLYPH_SIZE
            pen = RecordingPen()
            glyph_set[name].draw(pen)
            cache[name] = rasterize_contours(
                _contours(pen.value, label),
                pixel=pixel,
                left=left,
                top=ascent,
                width=width,
                name=label,
            )
        glyphs[codepoint] = cache[name]
    return glyphs


def _contours(commands, label: str) -> list[list[tuple[float, float]]]:
    """A pen recording's closed polygons (outlines must be straight)."""
    contours, current = [], []
    for op, points in commands:
        if op == "moveTo":
            current = [points[0]]
        elif op == "lineTo":
            current.append(points[0])
        elif op in ("closePath", "endPath"):
            if current and current[-1] == current[0]:
                current.pop()
            if current:
                contours.append(current)
            current = []
        else:
            raise ValueError(
                f"{label}: outline has a {op!r} segment; only straight "
                "pixel-square outlines are supported"
            )
    return contours


def read_glyphs(
    path: str | Path,
    min_codepoint: int = 0,
    max_codepoint: int | None = None,
) -> dict[int, list[int]]:
    """Reads a `.hex` or OpenType file into ``{code point: row words}``.

    Example:

    ```python
    glyphs = read_glyphs("unifont.hex", max_codepoint=0xFFFF)
    ```
    """
    path = Path(path)
    if path.suffix.lower() in (".otf", ".ttf"):
        return read_otf(path, min_codepoint, max_codepoint)
    table = GlyphTable.from_hex_files(path, max_codepoint=max_codepoint)
    rows = table.rows[1:].tolist()
    return {
        int(cp): words
        for cp, words in zip(table.codepoints.tolist(), rows, strict=True)
        if cp >= min_codepoint
    }


def compare(
    table: GlyphTable, reference: GlyphTable
) -> dict[str, list[int] | int]:
    """Compares two tables glyph by glyph.

    Returns:
        ``compared``: number of code points both tables have;
        ``mismatched``, ``only_in_table``, ``only_in_reference``: sorted
        code point lists.

    Example:

    ```python
    compare(GlyphTable.named("unifont_bmp"), GlyphTable.default())
    ```
    """
    mine = dict(zip(table.codepoints.tolist(), table.rows[1:], strict=True))
    theirs = dict(
        zip(reference.codepoints.tolist(), reference.rows[1:], strict=True)
    )
    both = sorted(mine.keys() & theirs.keys())
    return {
        "compared": len(both),
        "mismatched": [c for c in both if (mine[c] != theirs[c]).any()],
        "only_in_table": sorted(mine.keys() - theirs.keys()),
        "only_in_reference": sorted(theirs.keys() - mine.keys()),
    }


def _describe(path: Path) -> str:
    return f"{path.name} sha256={hashlib.sha256(path.read_bytes()).hexdigest()}"


def build(
    font_files: Sequence[str | Path],
    output: str | Path,
    max_codepoint: int | None = None,
    license_file: str | Path | None = None,
    source: str | None = None,
    upper_files: Sequence[str | Path] = (),
) -> GlyphTable:
    """Reads `font_files` (then `upper_files` above U+FFFF), writes the
    table to `output` and returns it.

    Example:

    ```python
    build(
        ["unifont.hex"],
        "unifont_glyphs.npz",
        max_codepoint=0xFFFF,
        upper_files=["unifont_upper.otf"],
    )
    ```
    """
    paths = [Path(p) for p in font_files]
    uppers = [Path(p) for p in upper_files]
    if not paths and not uppers:
        raise ValueError("build: no font files given")
    license_text = ""
    if license_file is not None:
        license_text = Path(license_file).read_text(encoding="utf-8")
    glyphs: dict[int, list[int]] = {}
    for path in paths:
        glyphs.update(read_glyphs(path, max_codepoint=max_codepoint))
    for path in uppers:
        glyphs.update(read_glyphs(path, min_codepoint=UPPER_PLANES_START))
    if source is None:
        parts = [_describe(p) for p in paths]
        if paths and max_codepoint is not None:
            parts.append(f"code points <= {max_codepoint:#x}")
        if uppers:
            parts.append("above U+FFFF: " + ", ".join(map(_describe, uppers)))
        source = "; ".join(parts)
    table = GlyphTable.from_glyphs(glyphs, license=license_text, source=source)
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    table.save(output)
    return table


def _load_reference(path: str) -> GlyphTable:
    if path.endswith(".npz"):
        return GlyphTable.load(path)
    return GlyphTable.from_glyphs(read_glyphs(path))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "font_files", nargs="*", help="Unifont .hex or .otf files"
    )
    parser.add_argument("--output", required=True, help="output .npz path")
    parser.add_argument(
        "--max-codepoint",
        type=_int,
        default=None,
        help="ignore glyphs of FONT_FILES above this code point (e.g. 0xFFFF)",
    )
    parser.add_argument(
        "--upper",
        action="append",
        default=[],
        help="a .hex or .otf file whose glyphs above U+FFFF are added "
        "(repeatable)",
    )
    parser.add_argument(
        "--license", default=None, help="text file with the font's license"
    )
    parser.add_argument(
        "--source", default=None, help="provenance text stored in the table"
    )
    parser.add_argument(
        "--compare-with",
        default=None,
        help="a .hex, .otf or .npz table to compare the result with, glyph "
        "by glyph",
    )
    args = parser.parse_args(argv)
    if not args.font_files and not args.upper:
        parser.error("give at least one font file or --upper file")
    table = build(
        args.font_files,
        args.output,
        max_codepoint=args.max_codepoint,
        license_file=args.license,
        source=args.source,
        upper_files=args.upper,
    )
    size = Path(args.output).stat().st_size
    print(f"wrote {args.output}: {table!r}, {size / 1024:.0f} KiB")
    if args.compare_with is not None:
        report = compare(table, _load_reference(args.compare_with))
        print(
            f"compared {report['compared']} glyphs with "
            f"{args.compare_with}: {len(report['mismatched'])} differ, "
            f"{len(report['only_in_table'])} only in the new table, "
            f"{len(report['only_in_reference'])} only in the reference"
        )
        for key in ("mismatched", "only_in_table", "only_in_reference"):
            if report[key]:
                listed = " ".join(f"U+{c:04X}" for c in report[key][:40])
                print(f"  {key}: {listed}")
        if report["mismatched"]:
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
