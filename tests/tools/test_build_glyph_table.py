"""tools/build_glyph_table.py: parsing .hex files into a glyph table."""

import hashlib
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from keras_vl.utils.glyph_table import DEFAULT_TABLE_PATH, GlyphTable

REPO = Path(__file__).resolve().parents[2]
DEBIAN_HEX_SHA256 = (
    "fe93c0df9a69e71df0fcf9e71af3adab3c85a393b1a3cae1eb32f69880fc1841"
)
DEBIAN_HEX_CANDIDATES = [
    Path("/usr/share/unifont/unifont.hex"),
    Path("/tmp/unifont_pkg/usr/share/unifont/unifont.hex"),
]


def load_tool():
    spec = importlib.util.spec_from_file_location(
        "build_glyph_table", REPO / "tools" / "build_glyph_table.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


HALF = "00000000" + "FF" * 4 + "81" * 4 + "00" * 4  # 8x16
FULL = "8001" * 15 + "FFFF"  # 16x16


def write_hex(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="ascii")
    return path


def test_parses_half_and_full_width(tmp_path):
    path = write_hex(
        tmp_path / "a.hex",
        ["# comment", "", f"0041:{HALF}", f"4E00:{FULL}", f"1F600:{FULL}"],
    )
    table = GlyphTable.from_hex_files(path)
    assert table.codepoints.tolist() == [0x41, 0x4E00, 0x1F600]
    half = table.bitmap(0x41)
    assert not half[:4].any() and half[4:8, :8].all()
    assert half[8:12, 0].all() and half[8:12, 7].all()
    assert not half[8:12, 1:7].any() and not half[:, 8:].any()  # Left half.
    full = table.bitmap(0x4E00)
    assert full[:15, 0].all() and full[:15, 15].all()
    assert not full[:15, 1:15].any() and full[15].all()
    assert table.rows[table.glyph_index([0x4E00])[0], 0] == 0x8001
    assert table.glyph_index([0x42, 0xD800, -1])[0] == 0
    # Upper planes are supported.
    np.testing.assert_array_equal(table.bitmap(0x1F600), full)


def test_later_files_override(tmp_path):
    first = write_hex(tmp_path / "1.hex", [f"0041:{HALF}", f"0042:{HALF}"])
    second = write_hex(tmp_path / "2.hex", [f"0042:{FULL}", f"0041:{FULL}"])
    table = GlyphTable.from_hex_files([first, second])
    assert table.num_glyphs == 2
    assert table.bitmap(0x41)[15].all() and table.bitmap(0x42)[15].all()
    # Within one file, the later line wins too.
    same = write_hex(tmp_path / "3.hex", [f"0043:{FULL}", f"0043:{HALF}"])
    assert not GlyphTable.from_hex_files(same).bitmap(0x43)[15].any()


def test_max_codepoint_and_surrogates(tmp_path):
    path = write_hex(
        tmp_path / "a.hex", [f"0041:{HALF}", f"D800:{FULL}", f"10000:{FULL}"]
    )
    table = GlyphTable.from_hex_files(path, max_codepoint=0xFFFF)
    assert table.codepoints.tolist() == [0x41]  # Surrogate dropped too.


@pytest.mark.parametrize(
    "line, message",
    [
        ("0041", "CODEPOINT:HEXBITS"),
        ("XYZ1:" + HALF, "code point"),
        ("110000:" + HALF, "code point"),
        ("0041:" + HALF[:-1] + "G", "hex digits"),
        ("0041:" + "00" * 24, "48 hex digits"),
    ],
)
def test_malformed_lines(tmp_path, line, message):
    path = write_hex(tmp_path / "bad.hex", [f"0040:{HALF}", line])
    with pytest.raises(ValueError, match=message) as info:
        GlyphTable.from_hex_files(path)
    assert "bad.hex:2" in str(info.value)


def test_cli(tmp_path, capsys):
    tool = load_tool()
    hex_path = write_hex(tmp_path / "a.hex", [f"0041:{HALF}", f"0042:{FULL}"])
    license_path = tmp_path / "LICENSE.txt"
    license_path.write_text("Some license\n", encoding="utf-8")
    output = tmp_path / "out" / "table.npz"
    status = tool.main(
        [
            str(hex_path),
            "--output",
            str(output),
            "--max-codepoint",
            "0x41",
            "--license",
            str(license_path),
        ]
    )
    assert status == 0
    assert "wrote" in capsys.readouterr().out
    table = GlyphTable.load(output)
    assert table.codepoints.tolist() == [0x41]
    assert table.license == "Some license\n"
    digest = hashlib.sha256(hex_path.read_bytes()).hexdigest()
    assert f"a.hex sha256={digest}" in table.source


def test_shipped_asset_matches_debian_hex(tmp_path):
    hex_path = next((p for p in DEBIAN_HEX_CANDIDATES if p.exists()), None)
    if hex_path is None:
        pytest.skip("Debian's unifont.hex is not installed")
    if hashlib.sha256(hex_path.read_bytes()).hexdigest() != DEBIAN_HEX_SHA256:
        pytest.skip(f"{hex_path} is not unifont 1:15.0.01")
    rebuilt = load_tool().build(
        [hex_path], tmp_path / "rebuilt.npz", max_codepoint=0xFFFF
    )
    shipped = GlyphTable.load(DEFAULT_TABLE_PATH)
    assert rebuilt.equals(shipped)
    assert shipped.num_glyphs == 57086
