"""GlyphTable: the shipped Unifont table, lookups, persistence, validation."""

import zipfile

import numpy as np
import pytest

from keras_vl.utils.glyph_table import DEFAULT_TABLE_PATH, GlyphTable

# Two glyphs copied from Debian's unifont.hex (1:15.0.01).
HEX_A = "0000000018242442427E424242420000"  # U+0041, 8x16
HEX_YI = "0000000000000000000000000000FFFE00000000000000000000000000000000"


def hex_bitmap(bits: str) -> np.ndarray:
    """Expected [16, 16] bitmap of a .hex glyph (independent decoding)."""
    data = bytes.fromhex(bits)
    out = np.zeros((16, 16), bool)
    per_row = len(data) // 16
    for row in range(16):
        for byte in range(per_row):
            for bit in range(8):
                value = data[row * per_row + byte] >> (7 - bit) & 1
                out[row, byte * 8 + bit] = bool(value)
    return out


# Upper-plane glyphs of the shipped table (from unifont_upper.otf 15.0.01).
HEX_LINEAR_B_A = (  # U+10000, 8 wide
    "000000000000410041007F004900490008000800080008000800080000000000"
)
HEX_GRINNING = (  # U+1F600, 16 wide
    "000003E00C181004200226324631400140014FF92AAA26B213E40C1803E00000"
)
SHA256_HEX = "fe93c0df9a69e71df0fcf9e71af3adab3c85a393b1a3cae1eb32f69880fc1841"
SHA256_UPPER = (
    "29adae95e09d12c0169319669f82ae814dcafef029526c7c1304d07dd0e6fe1c"
)


def test_default_table():
    table = GlyphTable.default()
    assert table is GlyphTable.default()  # Cached.
    assert table is GlyphTable.named("unifont")
    assert table.num_glyphs == 57086 + 13547
    assert table.max_codepoint == 0xE01EF
    assert "15.0.01" in table.source
    assert SHA256_HEX in table.source and SHA256_UPPER in table.source
    assert "GPL" in table.license and "Unifont" in table.license
    assert "Open Font License" in table.license
    assert "unifont_upper.otf" in table.license
    # The table carries the shipped notice, word for word.
    notice = DEFAULT_TABLE_PATH.parent / "UNIFONT_LICENSE.txt"
    assert table.license == notice.read_text(encoding="utf-8")
    assert DEFAULT_TABLE_PATH.stat().st_size < 1024 * 1024
    np.testing.assert_array_equal(table.bitmap(0x41), hex_bitmap(HEX_A))
    np.testing.assert_array_equal(table.bitmap(0x4E00), hex_bitmap(HEX_YI))
    assert not table.bitmap(0x41)[:, 8:].any()  # Half width: left 8 columns.
    assert not table.bitmap(0x20).any()  # Space exists but is blank.


def test_upper_planes_have_ink():
    table = GlyphTable.default()
    linear_b, grinning = table.bitmap(0x10000), table.bitmap(0x1F600)
    np.testing.assert_array_equal(linear_b, hex_bitmap(HEX_LINEAR_B_A))
    np.testing.assert_array_equal(grinning, hex_bitmap(HEX_GRINNING))
    assert linear_b.sum() == 23 and grinning.sum() == 70
    clef = table.bitmap(0x1D11E)  # MUSICAL SYMBOL G CLEF
    assert clef.sum() == 41
    # 8-wide glyphs keep to the left half, 16-wide ones use all columns.
    assert not linear_b[:, 8:].any() and not clef[:, 8:].any()
    assert grinning[:, 15].any() and grinning[:, 1].any()
    upper = table.codepoints[table.codepoints > 0xFFFF]
    assert len(upper) == 13547
    # The planes unifont_upper covers: SMP, SIP (some CJK), SSP (tags).
    assert sorted(set((upper >> 16).tolist())) == [1, 2, 14]


def test_named_tables():
    full, bmp = GlyphTable.named("unifont"), GlyphTable.named("unifont_bmp")
    assert bmp is GlyphTable.named("unifont_bmp")  # Cached.
    assert bmp.num_glyphs == 57086 and bmp.max_codepoint == 0xFFFD
    np.testing.assert_array_equal(bmp.codepoints, full.codepoints[:57086])
    np.testing.assert_array_equal(bmp.rows, full.rows[: 57086 + 1])
    assert not bmp.bitmap(0x1F600).any()
    assert "<= 0xffff" in bmp.source and bmp.license == full.license
    with pytest.raises(ValueError, match="unifont_bmp"):
        GlyphTable.named("unifont-9")


def test_up_to_and_from_glyphs():
    full_width = [0xFFFF] * 16
    table = GlyphTable.from_glyphs(
        {0x1F600: full_width, 0x41: [0x8000] * 16, 0xD800: full_width},
        source="s",
    )
    assert table.codepoints.tolist() == [0x41, 0x1F600]  # No surrogate.
    assert table.bitmap(0x1F600).all() and table.bitmap(0x41)[:, 0].all()
    cut = table.up_to(0xFFFF)
    assert cut.codepoints.tolist() == [0x41]
    assert cut.rows.shape == (2, 16) and cut.bitmap(0x41)[:, 0].all()
    assert table.up_to(0x1F600).equals(table)
    assert table.up_to(0x40).num_glyphs == 0
    with pytest.raises(TypeError, match="max_codepoint"):
        table.up_to("0xFFFF")


def test_subset():
    table = GlyphTable.default()
    wanted = [ord("b"), ord("a"), ord("a"), 0x1F600, -1, 0xD800, 2**40]
    small = table.subset(np.asarray(wanted))
    assert small.codepoints.tolist() == [ord("a"), ord("b"), 0x1F600]
    for codepoint in (ord("a"), ord("b"), 0x1F600):
        np.testing.assert_array_equal(
            small.bitmap(codepoint), table.bitmap(codepoint)
        )
    assert not small.bitmap(ord("c")).any()
    assert small.license == table.license
    assert table.subset([]).num_glyphs == 0
    empty = table.up_to(0x20).up_to(-1)
    assert empty.subset([ord("a")]).num_glyphs == 0


def test_unknown_codepoints_are_blank():
    table = GlyphTable.default()
    unknown = [-5, -1, 0xD800, 0xDFFF, 0xE000, 0xFFFF, 0x10FFFF, 2**40]
    np.testing.assert_array_equal(table.glyph_index(unknown), 0)
    for codepoint in unknown[:-1]:
        assert not table.bitmap(codepoint).any()
    assert table.glyph_index([0x41])[0] > 0
    assert table.index.dtype == np.int32 and len(table.index) == 0xE01F0
    bmp = GlyphTable.named("unifont_bmp")
    assert bmp.glyph_index([0x1F600])[0] == 0 and len(bmp.index) == 0xFFFE


def test_derived_arrays_agree_with_bitmaps():
    table = GlyphTable.default()
    rng = np.random.default_rng(0)
    glyphs = np.concatenate([[0], rng.integers(1, table.num_glyphs + 1, 300)])
    bitmaps = table.bitmaps
    assert bitmaps.shape == (table.num_glyphs + 1, 16, 16)
    assert not bitmaps[0].any()
    words = table.column_words
    for g in glyphs:
        bitmap = bitmaps[g]
        ink = np.flatnonzero(bitmap.any(axis=0))
        first, last = (ink[0], ink[-1]) if len(ink) else (0, 0)
        assert table.first_ink[g] == first and table.last_ink[g] == last
        for col in range(16):
            expected = sum(1 << r for r in range(16) if bitmap[r, col])
            assert words[g, col] == expected


def test_save_load_round_trip(tmp_path):
    rows = np.zeros((4, 16), np.uint16)
    rows[1, 3] = 0x8001
    rows[2] = 0xFFFF
    rows[3, 15] = 0x0100
    codepoints = np.array([0x41, 0x42, 0x1F600], np.int32)
    table = GlyphTable(codepoints, rows, license="L", source="S")
    path = tmp_path / "t.npz"
    table.save(path)
    loaded = GlyphTable.load(path)
    assert loaded.equals(table)
    assert loaded.license == "L" and loaded.source == "S"
    assert loaded.max_codepoint == 0x1F600 and len(loaded.index) == 0x1F601
    np.testing.assert_array_equal(
        loaded.glyph_index([0x41, 0x42, 0x43, 0x1F600, 0x1F601]),
        [1, 2, 0, 3, 0],
    )
    assert loaded.bitmap(0x41)[3].tolist() == [True] + [False] * 14 + [True]
    with np.load(path, allow_pickle=False) as data:
        assert all(data[k].dtype != object for k in data.files)
    empty = GlyphTable(np.zeros(0, np.int32), np.zeros((1, 16), np.uint16))
    empty.save(tmp_path / "empty.npz")
    reloaded = GlyphTable.load(tmp_path / "empty.npz")
    assert reloaded.num_glyphs == 0 and reloaded.glyph_index([65])[0] == 0


def _write_npz(path, **arrays):
    np.savez_compressed(path, **arrays)
    return path


def _valid_arrays():
    return dict(
        format_version=np.asarray(1, np.int32),
        codepoint_ranges=np.array([[65, 67]], np.int32),
        row_bytes=np.zeros((2, 3, 16), np.uint8),
        license=np.asarray("x"),
        source=np.asarray("y"),
    )


@pytest.mark.parametrize(
    "change, message",
    [
        (dict(extra=np.zeros(1)), "wrong keys"),
        (dict(format_version=np.asarray(7, np.int32)), "format_version"),
        (dict(codepoint_ranges=np.array([[65, 67]], np.int64)), "int32"),
        (dict(codepoint_ranges=np.array([[67, 65]], np.int32)), "increasing"),
        (dict(row_bytes=np.zeros((2, 4, 16), np.uint8)), "row_bytes"),
        (dict(row_bytes=np.zeros((2, 3, 16), np.int16)), "row_bytes"),
        (dict(license=np.zeros(2)), "license"),
    ],
)
def test_load_rejects_bad_files(tmp_path, change, message):
    arrays = {**_valid_arrays(), **change}
    path = _write_npz(tmp_path / "bad_table.npz", **arrays)
    with pytest.raises(ValueError, match=message) as info:
        GlyphTable.load(path)
    assert "bad_table.npz" in str(info.value)


def test_load_rejects_missing_keys_and_garbage(tmp_path):
    arrays = _valid_arrays()
    del arrays["row_bytes"]
    path = _write_npz(tmp_path / "missing.npz", **arrays)
    with pytest.raises(ValueError, match="missing.npz.*row_bytes"):
        GlyphTable.load(path)
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip file")
    with pytest.raises(ValueError, match="garbage.npz"):
        GlyphTable.load(garbage)
    # Object arrays need pickle, which loading refuses.
    pickled = tmp_path / "pickled.npz"
    with zipfile.ZipFile(pickled, "w") as zf:
        with zf.open("license.npy", "w") as f:
            np.lib.format.write_array(
                f, np.array([{"a": 1}], dtype=object), allow_pickle=True
            )
    with pytest.raises(ValueError, match="pickled.npz"):
        GlyphTable.load(pickled)
    with pytest.raises(FileNotFoundError):
        GlyphTable.load(tmp_path / "nope.npz")
    blank_row = _valid_arrays()
    blank_row["row_bytes"] = np.ones((2, 3, 16), np.uint8)
    path = _write_npz(tmp_path / "dirty_blank.npz", **blank_row)
    with pytest.raises(ValueError, match="dirty_blank.npz.*blank"):
        GlyphTable.load(path)


@pytest.mark.parametrize(
    "codepoints, rows, message",
    [
        ([66, 65], np.zeros((3, 16), np.uint16), "increasing"),
        ([0xD800], np.zeros((2, 16), np.uint16), "surrogates"),
        ([0x110000], np.zeros((2, 16), np.uint16), "0x10FFFF"),
        ([65], np.zeros((1, 16), np.uint16), "rows"),
        ([65], np.zeros((2, 16), np.int32), "uint16"),
        ([65], np.ones((2, 16), np.uint16), "blank"),
        ([[65]], np.zeros((2, 16), np.uint16), "1-D"),
    ],
)
def test_constructor_validation(codepoints, rows, message):
    with pytest.raises(ValueError, match=message):
        GlyphTable(np.asarray(codepoints), rows)
