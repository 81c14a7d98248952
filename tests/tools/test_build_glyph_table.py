"""tools/build_glyph_table.py: .hex files and Unifont-style OpenType fonts
(pixel-square outlines) into a glyph table."""

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
    shipped = GlyphTable.load(DEFAULT_TABLE_PATH).up_to(0xFFFF)
    assert rebuilt.equals(shipped)
    assert shipped.num_glyphs == 57086


OTF_DIRS = [
    Path("/usr/share/fonts/opentype/unifont"),
    Path("/tmp/unifont_pkg/usr/share/fonts/opentype/unifont"),
]
OTF_SHA256 = {
    "unifont.otf": (
        "db1960227adcb14640063e7384fdcd2867aaf819d9ca4866bca289d4db9a9f67"
    ),
    "unifont_upper.otf": (
        "29adae95e09d12c0169319669f82ae814dcafef029526c7c1304d07dd0e6fe1c"
    ),
}


def debian_otf(name: str) -> Path:
    """Debian fonts-unifont 1:15.0.01's `name`, or skip."""
    pytest.importorskip("fontTools", reason="needs the `tools` extra")
    path = next((d / name for d in OTF_DIRS if (d / name).exists()), None)
    if path is None:
        pytest.skip(f"Debian's {name} is not installed")
    if hashlib.sha256(path.read_bytes()).hexdigest() != OTF_SHA256[name]:
        pytest.skip(f"{path} is not fonts-unifont 1:15.0.01")
    return path


def test_shipped_upper_planes_match_debian_otf():
    glyphs = load_tool().read_otf(
        debian_otf("unifont_upper.otf"), min_codepoint=0x10000
    )
    shipped = GlyphTable.load(DEFAULT_TABLE_PATH)
    upper = shipped.codepoints > 0xFFFF
    assert sorted(glyphs) == shipped.codepoints[upper].tolist()
    np.testing.assert_array_equal(
        np.asarray([glyphs[c] for c in sorted(glyphs)], np.uint16),
        shipped.rows[1:][upper],
    )


@pytest.mark.slow
def test_debian_otf_plane0_equals_hex():
    # The method's check: Debian's unifont.otf, rasterised, is the shipped
    # plane 0 (= unifont.hex) bit for bit. About a minute.
    glyphs = load_tool().read_otf(
        debian_otf("unifont.otf"), max_codepoint=0xFFFF
    )
    from_otf = GlyphTable.from_glyphs(glyphs)
    assert from_otf.num_glyphs == 57086
    assert from_otf.equals(GlyphTable.load(DEFAULT_TABLE_PATH).up_to(0xFFFF))


# ----------------------------------------------------------------------
# OpenType fonts made of pixel squares, as Unifont's are.

UNIT = 64  # Font units per pixel of the test font (Unifont's is 4).
ASCENT = 14 * UNIT  # Top of the 16-pixel grid; descent is -2 pixels.


def words_of(bitmap: np.ndarray) -> list[int]:
    """Row words (bit 15 = column 0) of a [16, width] bool bitmap."""
    return [sum(1 << (15 - c) for c in np.flatnonzero(row)) for row in bitmap]


def pixel_squares(bitmap: np.ndarray, left: int = 0) -> list[list]:
    """One clockwise square contour per ink pixel (overlap-free union)."""
    contours = []
    for row, col in zip(*np.nonzero(bitmap), strict=True):
        x0, y0 = left + int(col) * UNIT, ASCENT - int(row) * UNIT
        x1, y1 = x0 + UNIT, y0 - UNIT
        contours.append([(x0, y0), (x1, y0), (x1, y1), (x0, y1)])
    return contours


def rectangle(top, left, bottom, right, clockwise=True) -> list:
    """Pixel rows [top, bottom) and columns [left, right) as a contour."""
    x0, x1 = left * UNIT, right * UNIT
    y0, y1 = ASCENT - top * UNIT, ASCENT - bottom * UNIT
    points = [(x0, y0), (x1, y0), (x1, y1), (x0, y1)]
    return points if clockwise else points[::-1]


def random_bitmap(width: int, seed: int) -> np.ndarray:
    bitmap = np.zeros((16, 16), bool)
    rng = np.random.default_rng(seed)
    bitmap[:, :width] = rng.random((16, width)) < 0.4
    return bitmap


RING = np.zeros((16, 16), bool)
RING[2:14, 1:15] = True
RING[5:11, 4:12] = False
MARK = np.zeros((16, 16), bool)  # A combining mark drawn in its cell.
MARK[1:3, 10:14] = True
HALF_BITMAP, FULL_BITMAP = random_bitmap(8, 0), random_bitmap(16, 1)


def build_font(path: Path, glyphs: dict) -> Path:
    """Writes a CFF OpenType font; `glyphs` maps a code point to
    ``(advance in pixels, left side bearing in units, contours)``."""
    pytest.importorskip("fontTools", reason="needs the `tools` extra")
    from fontTools.fontBuilder import FontBuilder
    from fontTools.pens.t2CharStringPen import T2CharStringPen

    names = {cp: f"uni{cp:04X}" for cp in glyphs}
    builder = FontBuilder(unitsPerEm=16 * UNIT, isTTF=False)
    builder.setupGlyphOrder([".notdef", *names.values()])
    builder.setupCharacterMap(names)
    charstrings, metrics = {}, {}
    for name, (advance, bearing, contours) in [
        (".notdef", (8, 0, [])),
        *((names[cp], spec) for cp, spec in glyphs.items()),
    ]:
        pen = T2CharStringPen(advance * UNIT, None)
        for contour in contours:
            pen.moveTo(contour[0])
            for point in contour[1:]:
                pen.lineTo(point)
            pen.closePath()
        charstrings[name] = pen.getCharString()
        metrics[name] = (advance * UNIT, bearing)
    builder.setupCFF("Tiny", {"FullName": "Tiny"}, charstrings, {})
    builder.setupHorizontalMetrics(metrics)
    builder.setupHorizontalHeader(ascent=ASCENT, descent=ASCENT - 16 * UNIT)
    builder.setupNameTable({"familyName": "Tiny", "styleName": "Regular"})
    builder.setupOS2()
    builder.setupPost()
    builder.save(str(path))
    return path


@pytest.fixture(scope="module")
def tiny_otf(tmp_path_factory) -> Path:
    return build_font(
        tmp_path_factory.mktemp("otf") / "tiny.otf",
        {
            0x41: (8, 0, pixel_squares(HALF_BITMAP)),
            0x20: (8, 0, []),  # Space: a glyph without ink.
            0x4E00: (16, 0, pixel_squares(FULL_BITMAP)),
            # A ring: the hole winds the other way.
            0x1F600: (
                16,
                0,
                [rectangle(2, 1, 14, 15), rectangle(5, 4, 11, 12, False)],
            ),
            # Combining: advance 0, cell moved left by 16 pixels.
            0x0301: (0, -16 * UNIT, pixel_squares(MARK, left=-16 * UNIT)),
        },
    )


def test_otf_bitmaps_are_exact(tiny_otf):
    glyphs = load_tool().read_otf(tiny_otf)
    assert sorted(glyphs) == [0x20, 0x41, 0x301, 0x4E00, 0x1F600]
    assert glyphs[0x41] == words_of(HALF_BITMAP)
    assert glyphs[0x4E00] == words_of(FULL_BITMAP)
    assert glyphs[0x1F600] == words_of(RING)
    assert glyphs[0x301] == words_of(MARK)
    assert glyphs[0x20] == [0] * 16
    assert sum(bin(w).count("1") for w in glyphs[0x1F600]) == 12 * 14 - 48
    upper = load_tool().read_otf(tiny_otf, min_codepoint=0x10000)
    assert list(upper) == [0x1F600]
    assert list(load_tool().read_otf(tiny_otf, max_codepoint=0x41)) == [
        0x20,
        0x41,
    ]


def test_otf_and_hex_build_one_table(tiny_otf, tmp_path, capsys):
    # The .hex file holds the same bitmaps, so the tables must agree.
    lines = [
        f"{cp:04X}:" + "".join(f"{w:04X}" for w in words_of(bitmap))
        for cp, bitmap in [
            (0x41, HALF_BITMAP),
            (0x20, np.zeros((16, 16), bool)),
            (0x301, MARK),
            (0x4E00, FULL_BITMAP),
            (0x1F600, RING),
        ]
    ]
    hex_path = write_hex(tmp_path / "same.hex", lines)
    tool = load_tool()
    status = tool.main(
        [
            str(tiny_otf),
            "--output",
            str(tmp_path / "from_otf.npz"),
            "--compare-with",
            str(hex_path),
        ]
    )
    assert status == 0
    assert "compared 5 glyphs" in capsys.readouterr().out
    from_hex = GlyphTable.from_hex_files(hex_path)
    assert GlyphTable.load(tmp_path / "from_otf.npz").equals(from_hex)
    # Plane 0 from .hex, the upper planes from the font.
    plane0 = write_hex(tmp_path / "plane0.hex", [f"0042:{FULL}"])
    mixed = tool.build([plane0], tmp_path / "mixed.npz", upper_files=[tiny_otf])
    assert mixed.codepoints.tolist() == [0x42, 0x1F600]
    assert mixed.bitmap(0x1F600).sum() == RING.sum()
    assert "above U+FFFF: tiny.otf sha256=" in mixed.source
    report = tool.compare(mixed, from_hex)
    assert report == {
        "compared": 1,
        "mismatched": [],
        "only_in_table": [0x42],
        "only_in_reference": [0x20, 0x41, 0x301, 0x4E00],
    }


def test_compare_reports_mismatches(tiny_otf, tmp_path, capsys):
    wrong = write_hex(tmp_path / "wrong.hex", [f"0041:{HALF}"])
    status = load_tool().main(
        [
            str(tiny_otf),
            "--output",
            str(tmp_path / "t.npz"),
            "--compare-with",
            str(wrong),
        ]
    )
    assert status == 1
    out = capsys.readouterr().out
    assert "compared 1 glyphs" in out and "1 differ" in out
    assert "mismatched: U+0041" in out


@pytest.mark.parametrize(
    "glyph, message",
    [
        ((8, 0, [[(0, ASCENT), (UNIT + 1, ASCENT), (0, 0)]]), "off the"),
        ((8, 0, [[(0, ASCENT), (UNIT, 0), (0, 0)]]), "slanted edge"),
        ((10, 0, []), "advance 640"),
        ((8, 0, [rectangle(0, 6, 2, 9)]), "outside its 8x16 cell"),
        ((16, 0, [rectangle(15, 0, 17, 2)]), "outside its 16x16 cell"),
    ],
)
def test_otf_outlines_that_are_not_pixels(tmp_path, glyph, message):
    path = build_font(tmp_path / "bad.otf", {0x41: glyph})
    with pytest.raises(ValueError, match=message) as info:
        load_tool().read_otf(path)
    assert "bad.otf U+0041" in str(info.value)


def test_rasterize_contours_rejects_curves():
    tool = load_tool()
    commands = [
        ("moveTo", ((0, 0),)),
        ("qCurveTo", ((4, 4), (8, 0))),
        ("closePath", ()),
    ]
    with pytest.raises(ValueError, match="qCurveTo"):
        tool._contours(commands, "glyph x")
    # One pixel at row 0, column 1 of a cell with its top-left at (0, 64).
    square = [(4, 64), (8, 64), (8, 60), (4, 60)]
    words = tool.rasterize_contours([square], pixel=4, left=0, top=64)
    assert words == [0x4000] + [0] * 15
