"""Benchmarks LiT training on cached image features against the full step.

With a locked image tower (`LiT(..., lock="Lu")`), the image tower's output
never changes, so it can be computed once per image
(`LiT.precompute_image_features`) and the text side trained on the cached
features (`LiT.fit_cached` / `LiT.cached_features_model()`). Two rows are
measured side by side in one process, on the same LiT model:

- (a) full step: `lit.fit` on model-ready images and token ids. The locked
  image tower runs forward (no backward: no gradient flows through it),
  the text tower forward and backward, then the AdamW update.
- (b) cached step: `lit.cached_features_model().fit` on the cached image
  features and the same token ids: image projection, text tower, loss,
  update; the image tower is skipped.

Both rows train the same variables with the same optimizer settings, on one
in-memory batch repeated (`tf.data.Dataset.from_tensors(batch).repeat()`),
without the tf.data-side preprocessing (resize, tokenization). Each step is
timed by a callback from batch begin to batch end, blocking on its loss.
Every row is built and warmed up first (compilation dropped); the timed
steps then run in interleaved rounds (a, b, a, b, ...) so that load changes
on a shared machine hit both rows alike, and the median step is reported.
The one-off cost of caching, `precompute_image_features` per batch of the
same size (timed over four batches), is reported next to them in full-step
units: with `E` epochs, caching costs `precompute + E * cached` against
`E * full`, so it pays off within the first epoch when `precompute +
cached < full`, and the ratio approaches `full / cached` as `E` grows.

Usage:

```
python benchmarks/lit_cached_features.py --quick     # smoke run, < 1 min
python benchmarks/lit_cached_features.py             # ViT-Ti/16 224 px, B=32
python benchmarks/lit_cached_features.py --image-variant S/16 --batch-size 64
```

`KERAS_BACKEND` defaults to `jax`; the script runs on any backend.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
from fit_timing import StepTimer  # noqa: E402

from keras_vl.models import (  # noqa: E402
    LiT,
    LiTBackbone,
    LiTPreprocessor,
    TextTransformer,
    ViTBackbone,
)


def build_lit(args) -> LiT:
    image_tower = ViTBackbone.from_variant(
        args.image_variant, image_size=args.image_size, pool_type="gap"
    )
    text_tower = TextTransformer.from_variant(
        args.text_variant,
        vocab_size=args.vocab_size,
        sequence_length=args.seq_len,
    )
    backbone = LiTBackbone(
        image_tower,
        text_tower,
        image_projection_dim=args.embed_dim,
        text_projection_dim=args.embed_dim,
    )
    preprocessor = LiTPreprocessor(
        sequence_length=args.seq_len, image_size=args.image_size
    )
    return LiT(backbone, preprocessor, lock="Lu")


def time_steps(model, batch, steps: int) -> list[float]:
    timer = StepTimer()
    dataset = tf.data.Dataset.from_tensors(batch).repeat()
    model.fit(
        dataset,
        steps_per_epoch=steps,
        epochs=1,
        callbacks=[timer],
        shuffle=False,
        verbose=0,
    )
    return timer.times


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-variant", default="Ti/16")
    parser.add_argument("--text-variant", default="Ti")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--seq-len", type=int, default=16)
    parser.add_argument("--vocab-size", type=int, default=32_000)
    parser.add_argument("--embed-dim", type=int, default=192)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small towers and few steps: a smoke run",
    )
    args = parser.parse_args(argv)
    if args.quick:
        args.image_variant, args.text_variant = "S/16", "mu"
        args.image_size, args.batch_size, args.vocab_size = 96, 16, 1000
        args.embed_dim, args.warmup, args.steps, args.rounds = 32, 1, 3, 2

    keras.utils.set_random_seed(0)
    lit = build_lit(args)
    lit.compile(learning_rate=1e-3)
    # Feed model-ready inputs to both rows: preprocessing is not the point.
    lit.preprocessor = None
    rng = np.random.default_rng(0)
    size, batch = args.image_size, args.batch_size
    images = rng.uniform(-1, 1, (batch, size, size, 3)).astype("float32")
    token_ids = rng.integers(0, args.vocab_size, (batch, args.seq_len))
    token_ids = token_ids.astype("int32")

    start = time.perf_counter()
    features = lit.precompute_image_features(
        images, batch_size=batch, preprocessed=True
    )
    first_precompute = time.perf_counter() - start
    repeats = 4  # Batches per timed call, to amortise `predict`'s set-up.
    start = time.perf_counter()
    lit.precompute_image_features(
        np.concatenate([images] * repeats), batch_size=batch, preprocessed=True
    )
    precompute = (time.perf_counter() - start) / repeats
    cached = lit.cached_features_model()

    rows = {
        "(a) full step": (lit, {"images": images, "token_ids": token_ids}),
        "(b) cached features": (
            cached,
            {"image_features": features, "token_ids": token_ids},
        ),
    }
    for model, inputs in rows.values():  # Compile and warm up.
        time_steps(model, inputs, args.warmup)
    times = {name: [] for name in rows}
    for _ in range(args.rounds):
        for name, (model, inputs) in rows.items():
            times[name] += time_steps(model, inputs, args.steps)

    medians = {name: statistics.median(t) for name, t in times.items()}
    full = medians["(a) full step"]
    print(
        f"backend={keras.backend.backend()} image={args.image_variant} "
        f"@{size}px text={args.text_variant} L={args.seq_len} B={batch} "
        f"steps={args.rounds}x{args.steps}"
    )
    print(f"{'row':<24}{'step ms':>10}{'steps/s':>10}{'ratio':>9}")
    for name, median in medians.items():
        print(
            f"{name:<24}{1e3 * median:>10.1f}{1 / median:>10.2f}"
            f"{full / median:>8.2f}x"
        )
    print(
        f"{'precompute (1 batch)':<24}{1e3 * precompute:>10.1f}"
        f"{'':>10}{precompute / full:>8.2f} full steps "
        f"(first call, compiling: {first_precompute:.1f} s)"
    )
    speedup = full / medians["(b) cached features"]
    print(f"cached / full steps per second: {speedup:.2f}x")
    return {"speedup": speedup, "medians": medians}


if __name__ == "__main__":
    main()
