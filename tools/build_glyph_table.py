"""Builds keras_vl's compact glyph table from GNU Unifont `.hex` files.

Usage:

```
python tools/build_glyph_table.py unifont.hex [more.hex ...] \
    --output keras_vl/assets/unifont_glyphs.npz [--max-codepoint 0xFFFF] \
    [--license LICENSE.txt] [--source "GNU Unifont 15.0.01"]
```

Later files override earlier ones for repeated code points. The parsing
lives in `keras_vl.utils.glyph_table.GlyphTable.from_hex_files`; this is a
thin command-line wrapper around it.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
from collections.abc import Sequence
from pathlib import Path

from keras_vl.utils.glyph_table import GlyphTable


def _int(text: str) -> int:
    return int(text, 0)


def build(
    hex_files: Sequence[str | Path],
    output: str | Path,
    max_codepoint: int | None = None,
    license_file: str | Path | None = None,
    source: str | None = None,
) -> GlyphTable:
    """Parses `hex_files`, writes the table to `output` and returns it.

    Example:

    ```python
    build(["unifont.hex"], "unifont_glyphs.npz", max_codepoint=0xFFFF)
    ```
    """
    paths = [Path(p) for p in hex_files]
    license_text = ""
    if license_file is not None:
        license_text = Path(license_file).read_text(encoding="utf-8")
    if source is None:
        source = "; ".join(
            f"{p.name} sha256={hashlib.sha256(p.read_bytes()).hexdigest()}"
            for p in paths
        )
        if max_codepoint is not None:
            source += f"; code points <= {max_codepoint:#x}"
    table = GlyphTable.from_hex_files(
        paths, max_codepoint=max_codepoint, license=license_text, source=source
    )
    Path(output).parent.mkdir(parents=True, exist_ok=True)
    table.save(output)
    return table


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("hex_files", nargs="+", help="Unifont .hex files")
    parser.add_argument("--output", required=True, help="output .npz path")
    parser.add_argument(
        "--max-codepoint",
        type=_int,
        default=None,
        help="ignore glyphs above this code point (e.g. 0xFFFF)",
    )
    parser.add_argument(
        "--license", default=None, help="text file with the font's license"
    )
    parser.add_argument(
        "--source", default=None, help="provenance text stored in the table"
    )
    args = parser.parse_args(argv)
    table = build(
        args.hex_files,
        args.output,
        max_codepoint=args.max_codepoint,
        license_file=args.license,
        source=args.source,
    )
    size = Path(args.output).stat().st_size
    print(f"wrote {args.output}: {table!r}, {size / 1024:.0f} KiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
