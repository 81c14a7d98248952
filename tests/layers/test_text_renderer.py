"""TextRenderer: pixel parity with big_vision's `render_unifont`, compiled
paths, inputs, serialization and errors (runs on every backend)."""

import json
import os

import keras
import numpy as np
import pytest
from conftest import backend, load_npz, require_fixtures, to_numpy
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keras_vl.layers.text_renderer import (
    TextRenderer,
    area_resize_glyphs,
    render_text,
)
from keras_vl.utils.glyph_table import GlyphTable

CONFIGS = ["a_default_224", "b_monospace_224", "c_default_64", "d_custom_224"]
# The fixtures were rendered by big_vision with an empty upper-plane font.
FIXTURE_TABLE = "unifont_bmp"

_RENDERERS: dict = {}


def renderer_for(**kwargs) -> TextRenderer:
    """One renderer per config for the whole module (saves compilations)."""
    key = tuple(sorted(kwargs.items()))
    if key not in _RENDERERS:
        _RENDERERS[key] = TextRenderer(**kwargs)
    return _RENDERERS[key]


def fixture_case(name: str):
    root = require_fixtures("render")
    configs = json.loads((root / "configs.json").read_text("utf-8"))
    config = configs["configs"][name]
    strings = json.loads((root / "strings.json").read_text("utf-8"))
    data = load_npz(root / config["file"])
    assert data["ok"].all()
    kwargs = {**config["kwargs"], "glyph_table": FIXTURE_TABLE}
    return kwargs, strings, data["images"]


def reference_render(text, table: GlyphTable, image_size: int, **config):
    """A direct per-string transcription of the rules (numpy, loops)."""
    font_size = config.get("font_size", 16)
    max_chars = config.get("max_chars", 768)
    background = config.get("background_brightness", 127)
    ink = config.get("text_brightness", 0)
    spacing = config.get("spacing", 1)
    min_width = config.get("min_width", 4)
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if config.get("lower", True):
        text = "".join(chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text)
    if max_chars:
        text = text[:max_chars]
    letters = [table.bitmap(ord(c)).astype(np.float32) for c in text]
    if font_size != 16 and letters:
        letters = list(area_resize_glyphs(np.stack(letters), font_size))
    cells = []
    for letter in letters:
        if config.get("monospace", False):
            cells.append(letter)
            continue
        columns = np.flatnonzero(letter.max(axis=0) > 0)
        first, last = (columns[0], columns[-1]) if len(columns) else (0, 0)
        first = max(first - spacing, 0)
        last = max(last + spacing, first + min_width)
        cells.append(letter[:, first:last])
    image = np.zeros((image_size, image_size), np.float32)
    if cells:
        widths = np.array([c.shape[1] for c in cells])
        room = np.float32(image_size - widths.max())
        lines = np.floor(np.cumsum(widths).astype(np.float32) / room)
        x, current = 0, 0
        for cell, line in zip(cells, lines.astype(int), strict=True):
            if line != current:
                current, x = line, 0
            top = line * font_size
            if top >= image_size:
                break
            rows = min(font_size, image_size - top)
            image[top : top + rows, x : x + cell.shape[1]] = cell[:rows]
            x += cell.shape[1]
    image = image * np.float32(ink - background) + np.float32(background)
    return np.clip(np.trunc(image), 0, 255).astype(np.uint8)


# ----------------------------------------------------------------------
# Parity with big_vision.


@pytest.mark.parametrize("name", CONFIGS)
def test_matches_big_vision_fixtures(name):
    kwargs, strings, expected = fixture_case(name)
    images = to_numpy(renderer_for(**kwargs)(strings))
    size = kwargs["image_size"]
    assert images.shape == (len(strings), size, size, 3)
    assert images.dtype == np.uint8
    np.testing.assert_array_equal(images[..., 1], images[..., 0])
    np.testing.assert_array_equal(images[..., 2], images[..., 0])
    for i in range(len(strings)):
        np.testing.assert_array_equal(
            images[i, ..., 0], expected[i], err_msg=f"string {i}"
        )


@pytest.mark.parametrize("name", CONFIGS)
def test_reference_transcription_matches_fixtures(name):
    # Validates `reference_render`, which the randomized tests rely on.
    kwargs, strings, expected = fixture_case(name)
    table = GlyphTable.named(FIXTURE_TABLE)
    for i, text in enumerate(strings):
        np.testing.assert_array_equal(
            reference_render(text, table, **kwargs), expected[i]
        )


@pytest.mark.parametrize("name", CONFIGS)
def test_compiled_path_matches_fixtures(name):
    kwargs, strings, expected = fixture_case(name)
    renderer = renderer_for(**kwargs)
    codepoints = renderer.codepoints(strings)
    if backend() == "jax":
        import jax

        images = jax.jit(lambda x: renderer(x))(codepoints)
    elif backend() == "tensorflow":
        import tensorflow as tf

        fn = tf.function(lambda x: renderer(x), jit_compile=True)
        images = fn(tf.constant(codepoints))
    else:
        pytest.skip("torch renders op by op (covered by the eager test)")
    np.testing.assert_array_equal(to_numpy(images)[..., 0], expected)


@pytest.mark.parametrize("name", CONFIGS)
def test_host_path_matches_fixtures(name):
    kwargs, strings, expected = fixture_case(name)
    renderer = renderer_for(**kwargs)
    images = renderer.render_numpy(renderer.codepoints(strings))
    assert isinstance(images, np.ndarray) and images.dtype == np.uint8
    np.testing.assert_array_equal(images[..., 0], expected)
    np.testing.assert_array_equal(images[..., 2], expected)


def test_host_path_takes_tensors_and_raw_codepoints():
    renderer = renderer_for(image_size=64)
    texts = ["Hello", "", "🐶 é"]
    expected = to_numpy(renderer(texts))
    # Raw code points: not lowercased, int64, -1 holes, a backend tensor.
    raw = np.full((3, 8), -1, np.int64)
    for i, text in enumerate(texts):
        raw[i, 1 : 1 + len(text)] = [ord(c) for c in text]
    np.testing.assert_array_equal(renderer.render_numpy(raw), expected)
    tensor = keras.ops.convert_to_tensor(raw.astype(np.int32))
    np.testing.assert_array_equal(renderer.render_numpy(tensor), expected)
    assert renderer.render_numpy(np.zeros((0, 4), np.int32)).shape == (
        0,
        64,
        64,
        3,
    )
    blank = renderer.render_numpy(np.zeros((2, 0), np.int32))
    assert blank.shape == (2, 64, 64, 3) and (blank == 127).all()


def test_codepoint_tensor_matches_strings():
    kwargs, strings, expected = fixture_case("a_default_224")
    renderer = renderer_for(**kwargs)
    codepoints = renderer.codepoints(strings)
    assert codepoints.dtype == np.int32 and codepoints.shape[0] == 64
    images = renderer(keras.ops.convert_to_tensor(codepoints))
    np.testing.assert_array_equal(to_numpy(images)[..., 0], expected)

    # Raw (not lowercased, not truncated) code points, padded with -1,
    # including -1 holes in the middle, give the same images.
    raw = [[ord(c) for c in s] for s in strings]
    width = max(len(r) for r in raw) + 3
    padded = np.full((64, width), -1, np.int64)
    for i, r in enumerate(raw):
        padded[i, : len(r)] = r
    padded = np.insert(padded, [1, 1], -1, axis=1)[:, : width + 2]
    images = renderer(keras.ops.convert_to_tensor(padded))
    np.testing.assert_array_equal(to_numpy(images)[..., 0], expected)


def test_padding_is_not_a_character():
    renderer = renderer_for(image_size=64)
    blank = to_numpy(renderer(np.full((2, 5), -1, np.int32)))
    assert (blank == 127).all()
    # U+0000 has a visible glyph in Unifont, so 0 is not padding.
    nul = to_numpy(renderer(np.zeros((1, 1), np.int32)))
    assert (nul == 0).any()


# ----------------------------------------------------------------------
# Characters above U+FFFF (emoji, Linear B, musical symbols, ...).

GRINNING, LINEAR_B_A, G_CLEF = 0x1F600, 0x10000, 0x1D11E


def cell(codepoint: int, width: int) -> np.ndarray:
    """The pixels a glyph's first `width` columns should get (defaults)."""
    bitmap = GlyphTable.default().bitmap(codepoint)[:, :width]
    return np.where(bitmap, 0, 127).astype(np.uint8)


def test_upper_planes_render_with_ink():
    renderer = renderer_for(image_size=64)
    texts = ["😀😀😀", "", chr(LINEAR_B_A) * 2, chr(G_CLEF) + "a", "\U0010ffff"]
    images = to_numpy(renderer(texts))[..., 0]
    emoji, empty, linear_b, clef, unassigned = images
    assert (empty == 127).all() and (unassigned == 127).all()
    assert (emoji == 0).sum() == 3 * 70  # 70 ink pixels per face.
    # Wide glyphs (ink in columns 1..15) keep all 16 columns and follow
    # each other with no gap. Glyph k goes to line floor(c_k / (S - W)),
    # c = 16, 32, 48 and S - W = 48: the third face starts line 1.
    face = cell(GRINNING, 16)
    np.testing.assert_array_equal(emoji[:16, :16], face)
    np.testing.assert_array_equal(emoji[:16, 16:32], face)
    np.testing.assert_array_equal(emoji[16:32, :16], face)
    assert (emoji[:16, 32:] == 127).all() and (emoji[16:32, 16:] == 127).all()
    # Half-width glyphs (ink in columns 1..7) take columns 0..7: the next
    # one starts at x = 8.
    for k in range(2):
        np.testing.assert_array_equal(
            linear_b[:16, 8 * k : 8 * k + 8], cell(LINEAR_B_A, 8)
        )
    assert (linear_b[:, 16:] == 127).all()
    assert (linear_b == 0).sum() == 2 * 23
    np.testing.assert_array_equal(clef[:16, :8], cell(G_CLEF, 8))
    a = GlyphTable.default().bitmap(ord("a"))
    first, last = np.flatnonzero(a.any(axis=0))[[0, -1]]
    np.testing.assert_array_equal(  # "a" trimmed to [first - 1, last + 1].
        clef[:16, 8 : 8 + last - first + 2],
        cell(ord("a"), 16)[:, first - 1 : last + 1],
    )
    # Monospace: every glyph takes its whole 16-column cell.
    mono = to_numpy(renderer_for(image_size=64, monospace=True)(texts[2]))
    np.testing.assert_array_equal(mono[:16, :16, 0], cell(LINEAR_B_A, 16))
    np.testing.assert_array_equal(mono[:16, 16:32, 0], cell(LINEAR_B_A, 16))


def test_plane0_table_leaves_upper_planes_blank():
    renderer = renderer_for(image_size=64, glyph_table="unifont_bmp")
    images = to_numpy(renderer(["😀😀😀", "", "a😀b", "ab"]))
    np.testing.assert_array_equal(images[0], images[1])
    assert (images[0] == 127).all()
    # A blank cell still takes min_width (4) columns.
    assert not np.array_equal(images[2], images[3])
    np.testing.assert_array_equal(
        images[2][:, :8], to_numpy(renderer_for(image_size=64)("a"))[:, :8]
    )
    full = to_numpy(renderer_for(image_size=64)(["😀😀😀", ""]))
    assert not np.array_equal(full[0], full[1])


# ----------------------------------------------------------------------
# Inputs.


def test_input_forms():
    renderer = renderer_for(image_size=64)
    expected = to_numpy(renderer(["héllo", "World"]))
    assert expected.shape == (2, 64, 64, 3)
    single = to_numpy(renderer("héllo"))
    assert single.shape == (64, 64, 3)
    np.testing.assert_array_equal(single, expected[0])
    for texts in (
        ("héllo", "World"),
        ["héllo".encode(), b"World"],
        np.array(["héllo", "World"]),
        np.array(["héllo", "World"], dtype=object),
    ):
        np.testing.assert_array_equal(to_numpy(renderer(texts)), expected)
    np.testing.assert_array_equal(to_numpy(renderer(b"World")), expected[1])
    assert to_numpy(renderer([])).shape == (0, 64, 64, 3)
    # Invalid UTF-8 decodes to U+FFFD, like TensorFlow's decoder.
    np.testing.assert_array_equal(
        to_numpy(renderer(b"a\xffb")), to_numpy(renderer("a\ufffdb"))
    )
    # Lone surrogates (possible in Python str) render as blank cells.
    np.testing.assert_array_equal(
        to_numpy(renderer("a\ud800b")), to_numpy(renderer("a\U0010ffffb"))
    )


def test_codepoints_method():
    renderer = renderer_for(image_size=64)
    np.testing.assert_array_equal(
        renderer.codepoints(["Hi", "a"]), [[104, 105], [97, -1]]
    )
    assert renderer.codepoints("").tolist() == [[-1]]
    assert renderer.codepoints([]).shape == (0, 1)
    long = renderer.codepoints("x" * 1000)
    assert long.shape == (1, 768)
    keep_case = TextRenderer(image_size=64, lower=False, max_chars=0)
    assert keep_case.codepoints("AÉ" * 500).shape == (1, 1000)
    assert keep_case.codepoints("AÉ")[0].tolist() == [65, 201]
    assert renderer.codepoints("\U0001f600")[0].tolist() == [0x1F600]


def test_tf_string_tensors_and_tf_data():
    tf = pytest.importorskip("tensorflow")
    renderer = renderer_for(image_size=64)
    texts = ["Hello", "wörld 🐶", ""]
    expected = to_numpy(renderer(texts))
    np.testing.assert_array_equal(
        to_numpy(renderer(tf.constant(texts))), expected
    )
    np.testing.assert_array_equal(
        to_numpy(renderer(tf.constant(texts[1]))), expected[1]
    )
    # Inside a tf.data pipeline (graph mode), on any backend.
    dataset = tf.data.Dataset.from_tensor_slices(texts).batch(3)
    batch = next(iter(dataset.map(renderer)))
    assert batch.shape == (3, 64, 64, 3) and batch.dtype == tf.uint8
    np.testing.assert_array_equal(batch.numpy(), expected)
    one = next(iter(tf.data.Dataset.from_tensor_slices(texts).map(renderer)))
    np.testing.assert_array_equal(one.numpy(), expected[0])


def test_render_text_function():
    images = render_text(["hello world", "Ünïcödé"], image_size=64)
    assert isinstance(images, np.ndarray)
    assert images.shape == (2, 64, 64, 3) and images.dtype == np.uint8
    single = render_text("hello world", image_size=64)
    np.testing.assert_array_equal(single, images[0])
    custom = render_text("hello", image_size=64, text_brightness=255)
    assert set(np.unique(custom)) == {127, 255}


def test_symbolic_call_in_functional_model():
    renderer = TextRenderer(image_size=32)
    inputs = keras.Input(shape=(None,), dtype="int32")
    outputs = renderer(inputs)
    assert outputs.shape == (None, 32, 32, 3)
    assert outputs.dtype == "uint8"
    model = keras.Model(inputs, outputs)
    codepoints = renderer.codepoints(["ab", "c"])
    np.testing.assert_array_equal(
        to_numpy(model(codepoints)), to_numpy(renderer(["ab", "c"]))
    )


# ----------------------------------------------------------------------
# Other configurations against the reference transcription.


@pytest.mark.parametrize(
    "config",
    [
        dict(image_size=48, spacing=0, min_width=0),
        dict(image_size=17),  # S < 2 W: lines can be skipped.
        dict(image_size=40, spacing=3, min_width=20),  # Widths clip at 16.
        dict(image_size=100, max_chars=5, text_brightness=200),
        dict(image_size=64, font_size=8),
        dict(image_size=50, font_size=12, background_brightness=255),
        dict(image_size=64, font_size=20, monospace=True),
    ],
    ids=lambda c: ",".join(f"{k}={v}" for k, v in c.items()),
)
def test_other_configs_match_reference(config):
    texts = [
        "Hello, World! The quick brown fox jumps over the lazy dog.",
        "ÉCOLE ΣΟΦΙΑ мосКВА 東京 한국어 مرحبا 🐶 \t\n\x00",
        "",
        " " * 40,
        "iiiiiiii lllll .... mmmmm WWWW" * 5,
    ]
    renderer = renderer_for(**config)
    images = to_numpy(renderer(texts))
    host = renderer.render_numpy(renderer.codepoints(texts))
    table = GlyphTable.default()
    for i, text in enumerate(texts):
        expected = reference_render(text, table, **config)
        np.testing.assert_array_equal(
            images[i, ..., 0], expected, err_msg=repr(text)
        )
        np.testing.assert_array_equal(
            host[i, ..., 0], expected, err_msg=f"host: {text!r}"
        )


def test_area_resize_matches_tensorflow():
    tf = pytest.importorskip("tensorflow")
    bitmaps = GlyphTable.default().bitmaps
    sample = np.concatenate([bitmaps[:600], bitmaps[20000:20400]])
    for size in (5, 8, 12, 15, 20):
        expected = tf.image.resize(
            sample[..., None].astype(np.uint8), (size, size), method="area"
        )[..., 0].numpy()
        np.testing.assert_array_equal(
            area_resize_glyphs(sample, size), expected
        )


characters = st.characters(codec=None, exclude_categories=())
short_texts = st.one_of(
    st.text(characters, max_size=60),
    st.text(st.sampled_from("aZ \t\n\x00é文🐶\ud800\U0010ffff"), max_size=60),
    st.just(""),
)
# 10,000-character strings (repeated, as Hypothesis caps text size).
long_texts = st.text(characters, min_size=1, max_size=50).map(
    lambda s: (s * (10_000 // len(s) + 1))[:10_000]
)
HYPOTHESIS = dict(
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def check_random_batch(batch):
    renderer = renderer_for(image_size=64)
    images = to_numpy(renderer(batch))
    assert images.shape == (len(batch), 64, 64, 3)
    assert images.dtype == np.uint8
    assert set(np.unique(images)) <= {0, 127}
    host = renderer.render_numpy(renderer.codepoints(batch))
    np.testing.assert_array_equal(host, images)
    table = GlyphTable.default()
    for i in range(0, len(batch), 6):  # Spot-check against the transcription.
        np.testing.assert_array_equal(
            images[i, ..., 0], reference_render(batch[i], table, 64)
        )


@settings(max_examples=24, **HYPOTHESIS)
@given(batch=st.lists(short_texts, min_size=48, max_size=48))
def test_random_unicode(batch):
    # 24 batches x 48 = 1,152 strings of any code points: surrogates,
    # controls, astral planes, unassigned, empty strings.
    check_random_batch(batch)


@pytest.mark.slow
@settings(max_examples=210, derandomize=True, **HYPOTHESIS)
@given(batch=st.lists(short_texts, min_size=48, max_size=48))
def test_random_unicode_many(batch):
    # 210 batches x 48 = 10,080 strings, drawn the same way every run.
    check_random_batch(batch)


@settings(max_examples=5, **HYPOTHESIS)
@given(
    batch=st.tuples(long_texts, st.lists(short_texts | long_texts, max_size=7))
)
def test_random_long_unicode(batch):
    check_random_batch([batch[0], *batch[1]])


# ----------------------------------------------------------------------
# Serialization.


def _tiny_table(tmp_path=None) -> GlyphTable:
    """A font where 'a' is a full 16x16 block and nothing else exists."""
    rows = np.zeros((2, 16), np.uint16)
    rows[1] = 0xFFFF
    return GlyphTable(np.array([ord("a")], np.int32), rows, source="tiny")


def test_get_config_round_trip(tmp_path):
    path = tmp_path / "tiny.npz"
    _tiny_table().save(path)
    renderer = TextRenderer(
        image_size=40,
        max_chars=10,
        background_brightness=200,
        text_brightness=10,
        lower=False,
        monospace=True,
        spacing=2,
        min_width=3,
        glyph_table=str(path),
        name="renderer",
    )
    config = renderer.get_config()
    assert config["glyph_table"] == str(path)
    clone = TextRenderer.from_config(config)
    assert clone.get_config() == config
    np.testing.assert_array_equal(
        to_numpy(clone(["a a", "b"])), to_numpy(renderer(["a a", "b"]))
    )
    assert (to_numpy(clone("a"))[:16, :16] == 10).all()

    default = TextRenderer()
    assert default.get_config()["glyph_table"] is None
    restored = keras.layers.deserialize(keras.layers.serialize(default))
    assert isinstance(restored, TextRenderer)
    assert restored.get_config() == default.get_config()
    # A config without a table (also every config saved before named
    # tables existed) gets the full default table.
    assert restored.glyph_table is GlyphTable.default()


def test_named_table_in_config():
    renderer = TextRenderer(image_size=32, glyph_table="unifont_bmp")
    assert renderer.glyph_table is GlyphTable.named("unifont_bmp")
    config = renderer.get_config()
    assert config["glyph_table"] == "unifont_bmp"
    clone = keras.layers.deserialize(keras.layers.serialize(renderer))
    assert clone.glyph_table is GlyphTable.named("unifont_bmp")
    assert (to_numpy(clone("😀")) == 127).all()  # Blank, as in big_vision.
    full = TextRenderer(image_size=32, glyph_table="unifont")
    assert full.glyph_table is GlyphTable.default()
    assert full.get_config()["glyph_table"] == "unifont"
    assert (to_numpy(full("😀"))[..., 0] == 0).sum() == 70


def test_saved_model_keeps_its_font(tmp_path):
    # An in-memory table is not in the config; the .keras file's assets
    # carry it.
    renderer = TextRenderer(image_size=64, glyph_table=_tiny_table())
    inputs = keras.Input(shape=(None,), dtype="int32")
    model = keras.Model(inputs, renderer(inputs))
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    layer = next(lay for lay in loaded.layers if isinstance(lay, TextRenderer))
    assert layer.glyph_table.source == "tiny"
    assert layer.glyph_table.equals(_tiny_table())
    codepoints = renderer.codepoints(["a", "b"])
    images = to_numpy(loaded(codepoints))
    assert (images[0, :16, :16] == 0).all()  # The full block.
    assert (images[1] == 127).all()


def test_table_path_missing_until_assets_load(tmp_path):
    path = tmp_path / "tiny.npz"
    _tiny_table().save(path)
    renderer = TextRenderer(image_size=32, glyph_table=str(path))
    assets = tmp_path / "assets"
    assets.mkdir()
    renderer.save_assets(str(assets))
    os.remove(path)
    # The path no longer exists: construction defers, assets fill it in.
    clone = TextRenderer.from_config(renderer.get_config())
    clone.load_assets(str(assets))
    assert clone.glyph_table.equals(_tiny_table())
    assert clone.get_config()["glyph_table"] == str(path)
    orphan = TextRenderer.from_config(renderer.get_config())
    with pytest.raises(FileNotFoundError):
        orphan("a")


# ----------------------------------------------------------------------
# Errors.


@pytest.mark.parametrize(
    "kwargs, error, name",
    [
        (dict(image_size="224"), TypeError, "image_size"),
        (dict(image_size=224.0), TypeError, "image_size"),
        (dict(image_size=True), TypeError, "image_size"),
        (dict(image_size=8), ValueError, "image_size"),
        (dict(image_size=16), ValueError, "image_size"),
        (dict(font_size=0), ValueError, "font_size"),
        (dict(font_size=64), ValueError, "font_size"),
        (dict(max_chars=-1), ValueError, "max_chars"),
        (dict(background_brightness=256), ValueError, "background_brightness"),
        (dict(text_brightness=-1), ValueError, "text_brightness"),
        (dict(text_brightness=0.5), TypeError, "text_brightness"),
        (dict(spacing=-1), ValueError, "spacing"),
        (dict(min_width=-2), ValueError, "min_width"),
        (dict(lower="yes"), TypeError, "lower"),
        (dict(monospace=1), TypeError, "monospace"),
        (dict(glyph_table=42), TypeError, "glyph_table"),
    ],
)
def test_bad_arguments(kwargs, error, name):
    with pytest.raises(error, match=name):
        TextRenderer(**kwargs)


def test_bad_glyph_table_file(tmp_path):
    path = tmp_path / "bad.npz"
    np.savez(path, rows=np.zeros(3))
    with pytest.raises(ValueError, match="bad.npz"):
        TextRenderer(glyph_table=str(path))


@pytest.mark.parametrize(
    "inputs, error",
    [
        ([1, 2, 3], TypeError),
        (["a", 3], TypeError),
        (None, TypeError),
        (3.5, TypeError),
        (np.zeros((2, 3), np.float32), TypeError),
        (np.zeros((3,), np.int32), ValueError),
        (np.zeros((2, 3, 4), np.int32), ValueError),
        (np.array([["a", "b"]]), ValueError),
    ],
)
def test_bad_inputs(inputs, error):
    renderer = renderer_for(image_size=64)
    with pytest.raises(error, match="inputs"):
        renderer(inputs)


@pytest.mark.parametrize(
    "codepoints, error",
    [
        (np.zeros((2, 3), np.float32), TypeError),
        (np.zeros((3,), np.int32), ValueError),
        (["a"], TypeError),
    ],
)
def test_bad_host_codepoints(codepoints, error):
    with pytest.raises(error, match="`codepoints`"):
        renderer_for(image_size=64).render_numpy(codepoints)


def test_bad_backend_tensors():
    renderer = renderer_for(image_size=64)
    with pytest.raises(TypeError, match="inputs"):
        renderer(keras.ops.zeros((2, 3), "float32"))
    with pytest.raises(ValueError, match="inputs"):
        renderer(keras.ops.zeros((3,), "int32"))
