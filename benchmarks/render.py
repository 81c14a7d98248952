"""Benchmarks `keras_vl.layers.TextRenderer` against a per-string Pillow
renderer.

Renders a batch of mixed-script captions (Latin, accented Latin, Greek,
Cyrillic, CJK, kana, Hangul, Arabic, Hebrew, Devanagari, Thai, emoji,
symbols; built deterministically below) at 224 px with

- (a) keras_vl eager (strings in, current backend),
- (b) keras_vl jit-compiled with `jax.jit` on the code point tensor path
  (compilation excluded; warm time; needs ``KERAS_BACKEND=jax``),
- (c) a straightforward Python/Pillow renderer that pastes the same glyph
  bitmaps one by one, as one would otherwise write it,
- (d) big_vision's own `render_unifont` op (the papers' renderer), mapped
  over the captions in a `tf.data` pipeline as big_vision's input pipeline
  runs it, reading `.hex` files written from the same glyph table (skipped,
  with the reason printed, without TensorFlow or the peer code),

checks that all of them produce identical images, and prints strings/s and
the speed-up over (c) and over (d).

Usage:

```
KERAS_BACKEND=jax python benchmarks/render.py [--quick] [--batch 256] \
    [--hugepages]
```
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from big_vision_peer import import_render_op  # noqa: E402
from PIL import Image  # noqa: E402

from keras_vl.layers.text_renderer import TextRenderer  # noqa: E402
from keras_vl.utils.glyph_table import GlyphTable  # noqa: E402

WORDS = {
    "en": (
        "a photo of the dog cat running on beach under blue sky with "
        "two people at night in city street old red car small house near "
        "river close-up view bright sunny day"
    ).split(),
    "accents": (
        "café crème brûlée Ångström naïve façade jalapeño São Paulo "
        "Zürich Kraków Čeština Łódź Øresund déjà vu piñata"
    ).split(),
    "el": "ένας σκύλος τρέχει στην παραλία κάτω από τον γαλάζιο ουρανό".split(),
    "ru": "собака бежит по пляжу под голубым небом в старом городе".split(),
    "zh": "一只 狗 在 海滩 上 奔跑 蓝天 白云 城市 夜景 美丽 的 风景".split(),
    "ja": "犬が 浜辺を 走って いる 青い 空 東京の 夜 ｶﾀｶﾅ".split(),
    "ko": "해변 에서 달리는 개 파란 하늘 아래 도시 의 밤".split(),
    "ar": "كلب يركض على الشاطئ تحت السماء الزرقاء".split(),
    "he": "כלב רץ על החוף מתחת לשמיים כחולים".split(),
    "hi": "नीले आसमान के नीचे समुद्र तट पर दौड़ता कुत्ता".split(),
    "th": "สุนัข วิ่ง บน ชายหาด ใต้ ท้องฟ้า สีฟ้า".split(),
    "emoji": "🐶 🏖️ ☀️ 🚗 🌃 ❤️ 👍🏽 🎉 👨‍👩‍👧".split(),
    "symbols": "→ ≤ ≥ ∑ ∞ © ® ™ € £ ¥ § ¶ • … ½".split(),
}


def make_captions(count: int, seed: int = 0) -> list[str]:
    """Deterministic mixed-script captions, 1 to ~200 code points."""
    rng = np.random.default_rng(seed)
    scripts = sorted(WORDS)
    captions = []
    for i in range(count):
        main = scripts[i % len(scripts)]
        extra = scripts[int(rng.integers(len(scripts)))]
        num_words = int(rng.integers(3, 25))
        words = []
        for _ in range(num_words):
            pool = WORDS[main] if rng.random() < 0.8 else WORDS[extra]
            words.append(pool[int(rng.integers(len(pool)))])
        text = " ".join(words)
        if rng.random() < 0.3:
            text = text.capitalize() + "."
        captions.append(text)
    return captions


class PillowRenderer:
    """Per-string reference renderer: same layout rules, glyphs pasted one
    at a time with Pillow (glyph masks cached per code point)."""

    def __init__(
        self,
        table: GlyphTable,
        image_size=224,
        max_chars=768,
        background_brightness=127,
        text_brightness=0,
        lower=True,
        monospace=False,
        spacing=1,
        min_width=4,
    ):
        self.table = table
        self.size = image_size
        self.max_chars = max_chars
        self.background = background_brightness
        self.text = text_brightness
        self.lower = lower
        self.monospace = monospace
        self.spacing = spacing
        self.min_width = min_width
        self.cache: dict[int, tuple[int, Image.Image | None]] = {}

    def glyph(self, codepoint: int) -> tuple[int, Image.Image | None]:
        """(width, mask image or None when the kept columns are blank)."""
        cached = self.cache.get(codepoint)
        if cached is None:
            bitmap = self.table.bitmap(codepoint)  # [16, 16] bool
            if self.monospace:
                start, stop = 0, 16
            else:
                columns = np.flatnonzero(bitmap.any(axis=0))
                first, last = (
                    (columns[0], columns[-1]) if len(columns) else (0, 0)
                )
                start = max(first - self.spacing, 0)
                stop = min(max(last + self.spacing, start + self.min_width), 16)
            kept = bitmap[:, start:stop]
            mask = None
            if kept.any():
                mask = Image.fromarray(kept.astype(np.uint8) * 255, "L")
            cached = (max(stop - start, 0), mask)
            self.cache[codepoint] = cached
        return cached

    def render(self, text: str) -> np.ndarray:
        if self.lower:
            text = "".join(
                chr(ord(c) + 32) if "A" <= c <= "Z" else c for c in text
            )
        if self.max_chars:
            text = text[: self.max_chars]
        glyphs = [self.glyph(ord(c)) for c in text]
        image = Image.new("L", (self.size, self.size), self.background)
        if glyphs:
            room = self.size - max(w for w, _ in glyphs)
            cum, line, x = 0, 0, 0
            for width, mask in glyphs:
                cum += width
                new_line = cum // room  # == floor(float32(cum) / room)
                if new_line != line:
                    line, x = new_line, 0
                if line * 16 >= self.size:
                    break
                if mask is not None:
                    image.paste(self.text, (x, 16 * line), mask)
                x += width
        gray = np.asarray(image)
        return np.repeat(gray[:, :, None], 3, axis=2)


def write_unifont_hex(table: GlyphTable, directory: Path) -> None:
    """Writes `table` as the two `.hex` files big_vision's op reads (plane 0
    and the upper planes), every glyph 16 pixels wide: an 8-wide glyph is
    the same bitmap with blank right columns there."""
    files = {
        "unifont-9.0.06.hex": (4, table.codepoints <= 0xFFFF),
        "unifont_upper-9.0.06.hex": (6, table.codepoints > 0xFFFF),
    }
    for name, (digits, selected) in files.items():
        lines = [
            f"{codepoint:0{digits}X}:"
            + "".join(f"{int(row):04X}" for row in rows)
            for codepoint, rows in zip(
                table.codepoints[selected],
                table.rows[1:][selected],
                strict=True,
            )
        ]
        (directory / name).write_text("".join(line + "\n" for line in lines))


def big_vision_renderer(table: GlyphTable, captions: list[str]):
    """(d): big_vision's `render_unifont` in a tf.data map, or `(None,
    why)`."""
    pp_ops, why = import_render_op()
    if pp_ops is None:
        return None, why
    import tensorflow as tf

    with tempfile.TemporaryDirectory() as root:
        fonts = Path(root) / "big_vision/pp/proj/clippo"
        fonts.mkdir(parents=True)
        write_unifont_hex(table, fonts)
        with contextlib.chdir(root):  # The op opens relative paths.
            render = pp_ops.get_pp_render_text(image_size=224)
    dataset = (
        tf.data.Dataset.from_tensor_slices(captions)
        .map(
            lambda text: render({"texts": text})["image"],
            num_parallel_calls=tf.data.AUTOTUNE,
        )
        .batch(len(captions))
    )

    def batch():
        return next(iter(dataset)).numpy()

    return batch, ""


def timed(fn, repeats: int) -> tuple[float, object]:
    """Best-of-`repeats` wall time of fn() and its last result."""
    best, result = float("inf"), None
    for _ in range(repeats):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batch")
    parser.add_argument("--batch", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument(
        "--hugepages",
        action="store_true",
        help="re-run with glibc's malloc asking for transparent huge pages "
        "(GLIBC_TUNABLES=glibc.malloc.hugetlb=1): a fresh 38 MB output "
        "buffer then costs far fewer page faults, for every renderer",
    )
    args = parser.parse_args()
    tunable = "glibc.malloc.hugetlb=1"
    if args.hugepages and tunable not in os.environ.get("GLIBC_TUNABLES", ""):
        env = dict(os.environ, GLIBC_TUNABLES=tunable)
        os.execve(sys.executable, [sys.executable, *sys.argv], env)
    batch = 16 if args.quick else args.batch
    repeats = 2 if args.quick else args.repeats

    captions = make_captions(batch)
    renderer = TextRenderer(image_size=224)
    pillow = PillowRenderer(GlyphTable.default(), image_size=224)
    lengths = [len(c) for c in captions]
    print(
        f"backend={keras.backend.backend()} batch={batch} image_size=224 "
        f"caption length min/mean/max={min(lengths)}/"
        f"{np.mean(lengths):.0f}/{max(lengths)} code points, "
        f"{len(os.sched_getaffinity(0))} CPUs, "
        f"GLIBC_TUNABLES={os.environ.get('GLIBC_TUNABLES', '(unset)')}"
    )

    def pillow_batch():
        return np.stack([pillow.render(c) for c in captions])

    pillow_batch()  # Fill the glyph cache: users would keep it warm too.

    def eager():
        return _ready(renderer(captions))

    rows = [("(a) keras_vl layer, eager call", eager)]
    if keras.backend.backend() == "jax":
        import jax

        render_jit = jax.jit(renderer.render_codepoints)

        def jitted():
            # Decoding to code points (numpy) is part of the timed work.
            return _ready(render_jit(renderer.codepoints(captions)))

        rows.append(("(b) keras_vl jax.jit(render_codepoints)", jitted))
    rows.append(("(c) Pillow, per string", pillow_batch))
    big_vision, why = big_vision_renderer(GlyphTable.default(), captions)
    if big_vision is None:
        print(f"(d) big_vision render_unifont: skipped ({why})")
    else:
        rows.append(("(d) big_vision render_unifont, tf.data", big_vision))

    reference = pillow_batch()
    results = []
    for name, fn in rows:
        start = time.perf_counter()
        images = fn()  # Warm-up; compiles where needed.
        first = time.perf_counter() - start
        np.testing.assert_array_equal(
            keras.ops.convert_to_numpy(images), reference
        )
        seconds, _ = timed(fn, repeats)
        results.append((name, seconds, first))

    times = {name[:3]: seconds for name, seconds, _ in results}
    peer = times.get("(d)")
    print(
        f"{'renderer':<42} {'ms/batch':>9} {'strings/s':>10} "
        f"{'vs (c)':>7} {'vs (d)':>7} {'1st call':>9}"
    )
    for name, seconds, first in results:
        versus_peer = f"{peer / seconds:6.1f}x" if peer else f"{'-':>7}"
        print(
            f"{name:<42} {seconds * 1e3:9.1f} {batch / seconds:10.0f} "
            f"{times['(c)'] / seconds:6.1f}x {versus_peer} {first:8.2f}s"
        )
    print(
        "best of",
        repeats,
        "runs each; keras_vl outputs are device arrays "
        "(block_until_ready), Pillow's and big_vision's numpy; all "
        "renderers produced identical images",
    )


def _ready(x):
    """Waits for asynchronous backends (JAX) to finish computing `x`."""
    if hasattr(x, "block_until_ready"):
        x.block_until_ready()
    return x


if __name__ == "__main__":
    main()
