"""One prepared GPU benchmark: bf16 training throughput and MFU.

Runs on a single-GPU host where only JAX (CUDA), numpy and pure-Python
wheels (keras, keras-hub) are installed: nothing here needs TensorFlow, and
every batch is built in numpy and placed on the device once. Rows, measured
side by side in one process under the `mixed_bfloat16` policy (bf16 matmuls,
float32 weights, softmax, norm statistics and loss):

- `matmul ceiling`: the best of a few jitted `N x N x N` bf16 matmuls
  (`N = 8192` on a GPU), the denominator of every MFU below.
- `CLIPPO B/16`: `keras_vl.models.Clippo` (one ViT-B/16 with MAP pooling
  embeds the images and the texts it renders itself from code points at
  224 px), trained with `model.fit` (AdamW, softmax loss).
- `LIMoE B/16 E=8`: `keras_vl.models.LIMoE` with a ViT-B/16-sized shared
  encoder, 8 experts in every other block, top-1, capacity factor 1.0,
  image and text tokens routed jointly, trained with `model.fit`.
- `PaLI decode`: cached greedy decoding tokens/s of `keras_vl.models.PaLI`
  (not implemented yet: the row prints that it is skipped).

- `big_vision ...`: the papers' own Flax models of the same sizes (CLIPPO
  `one_tower`, LiT/SigLIP `two_towers`) with `dtype_mm="bfloat16"`, in a
  jitted optax step (`benchmarks/big_vision_peer.py`), when flax, optax and
  the peer code are there; each keras_vl row's ratio to its big_vision row is
  printed.
- `LiT B/16 (uu)`: `keras_vl.models.LiT`, ViT-B/16 + big_vision's text
  transformer, both towers trained, through `fit`.

Every row runs in a fresh Python process of its own (the script calls itself
with `--row`), so no row inherits the device memory or compiled programs of
another: in one shared process, rows measured after the first ran up to 2x
slower. Each training row runs `--warmup` steps (compilation included,
dropped), then `--steps` steps timed from batch begin to batch end by a
callback that blocks on the loss; the median is reported. Model FLOPs are
matmul FLOPs counted analytically (2 per multiply-add; backward = 2 x
forward; attention `4 N^2 D` per block; router, renderer and optimizer not
counted), so MFU is model FLOPs/s / the measured bf16 ceiling, the usual
definition.

Writes `--output` (JSON) and prints a table. `--quick` runs tiny configs on
whatever device JAX sees (CI runs it on CPU to keep the script working); it
measures the device in a process of its own, as above, but the model rows
in this process, one after another: their times mean nothing on a CPU, and
a fresh process per row would double the check's cost.

Usage:

    KERAS_BACKEND=jax python benchmarks/gpu.py --output gpu.json
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import statistics
import subprocess
import sys

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from big_vision_peer import BigVisionRunner, import_big_vision  # noqa: E402
from fit_timing import FitRunner  # noqa: E402
from flops import Dims, step_flops, text_flops, vit_flops  # noqa: E402
from matmul_ceiling import jax_matmul_ceiling  # noqa: E402
from train_step import build_clippo, build_lit  # noqa: E402

from keras_vl.models import (  # noqa: E402
    LIMoE,
    LIMoEBackbone,
)

TARGET_MFU_CLIPPO = 0.45


@dataclasses.dataclass(frozen=True)
class Config(Dims):
    """One size for every training row."""

    num_experts: int = 8


FULL = Config(224, 16, 768, 12, 12, 3072, 16, 32_000, 256, 8)
QUICK = Config(32, 8, 32, 2, 2, 64, 8, 100, 4, 4)


def one_tower_flops(config: Config) -> float:
    """A CLIPPO step: the ViT (with its head) on images and on texts."""
    return step_flops(config, 2 * vit_flops(config, config.width))


def two_tower_flops(config: Config) -> float:
    """A two-tower step (also LIMoE's: top-1 runs one expert MLP per
    token, as many FLOPs as a dense MLP)."""
    return step_flops(
        config, vit_flops(config, config.width) + text_flops(config)
    )


# === Measurement ===


def keras_row(build, flops):
    """A row of `train_step.py`'s keras_vl models, timed through `fit`."""

    def row(config: Config) -> tuple[FitRunner, float]:
        model, batch = build(config, "softmax")
        return FitRunner(model, batch), flops(config)

    return row


def big_vision_row(kind: str):
    def build(config: Config) -> tuple[BigVisionRunner, float]:
        runner = BigVisionRunner(
            kind, config, 1e-3, 1e-4, 1.0, dtype_mm="bfloat16"
        )
        flops = one_tower_flops if kind == "one_tower" else two_tower_flops
        return runner, flops(config)

    return build


def limoe_row(config: Config) -> tuple[FitRunner, float]:
    backbone = LIMoEBackbone(
        vocabulary_size=config.vocab_size,
        sequence_length=config.seq_len,
        image_size=config.image_size,
        patch_size=config.patch_size,
        width=config.width,
        depth=config.depth,
        num_heads=config.num_heads,
        mlp_dim=config.mlp_dim,
        out_dim=config.width,
        num_experts=config.num_experts,
    )
    model = LIMoE(backbone)
    model.preprocessor = None
    model.compile()
    rng = np.random.default_rng(0)
    size, b, t = config.image_size, config.batch_size, config.seq_len
    batch = {
        "images": rng.uniform(-1, 1, (b, size, size, 3)).astype("float32"),
        "token_ids": rng.integers(1, config.vocab_size, (b, t)).astype("int32"),
        "padding_mask": np.ones((b, t), bool),
    }
    return FitRunner(model, batch), two_tower_flops(config)


def pali_row(quick: bool) -> dict:
    return {"skipped": "the PaLI decode row is not implemented yet"}


ROWS = {
    "clippo": ("CLIPPO B/16", keras_row(build_clippo, one_tower_flops)),
    "big_vision_clippo": (
        "big_vision CLIPPO B/16",
        big_vision_row("one_tower"),
    ),
    "lit": ("LiT B/16 (uu)", keras_row(build_lit, two_tower_flops)),
    "big_vision_two_tower": (
        "big_vision two-tower B/16",
        big_vision_row("two_towers"),
    ),
    "limoe": ("LIMoE B/16 E={num_experts}", limoe_row),
}


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--warmup", type=int, default=None)
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--batch-size", type=int, default=None)
    parser.add_argument("--output", default="gpu_benchmark.json")
    parser.add_argument(
        "--row",
        choices=("device", *ROWS),
        help="Measure one row in this process (the default runs every row "
        "in a fresh process of its own).",
    )
    args = parser.parse_args(argv)
    args.config = QUICK if args.quick else FULL
    if args.batch_size:
        args.config = dataclasses.replace(
            args.config, batch_size=args.batch_size
        )
    args.warmup = args.warmup or (1 if args.quick else 3)
    args.steps = args.steps or (2 if args.quick else 10)
    return args


def measure_row(args) -> dict:
    """One row, in this process: the device and its bf16 ceiling, or one
    model's step time."""
    import jax

    if args.row == "device":
        device = jax.devices()[0]
        n = 256 if args.quick else 8192
        return {
            "device": device.device_kind,
            "platform": device.platform,
            "versions": f"jax {jax.__version__}, keras {keras.__version__}, "
            f"python {platform.python_version()}",
            "ceiling_n": n,
            "bf16_ceiling": jax_matmul_ceiling(n, dtype="bfloat16", repeats=10),
        }
    keras.mixed_precision.set_global_policy("mixed_bfloat16")
    runner, flops = ROWS[args.row][1](args.config)
    runner.run(args.warmup)
    step_s = statistics.median(runner.run(args.steps))
    return {"step_s": step_s, "flops": flops}


def measure_in_subprocess(argv: list[str], row: str) -> dict:
    """Runs `--row row` in a fresh Python process, so no row inherits the
    device memory, compiled programs or allocator state of another."""
    command = [sys.executable, __file__, *argv, "--row", row]
    result = subprocess.run(command, capture_output=True, text=True)
    for line in result.stdout.splitlines():
        if line.startswith("ROW "):
            return json.loads(line[4:])
    raise RuntimeError(
        f"row {row!r} failed (exit {result.returncode}):\n"
        + result.stderr[-3000:]
    )


def measure_here(argv: list[str], row: str) -> dict:
    """Runs `--row row` in this process (`--quick`)."""
    return measure_row(parse_args([*argv, "--row", row]))


def main(argv=None) -> dict:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.row:
        print("ROW " + json.dumps(measure_row(args)), flush=True)
        return {}
    config, warmup, steps = args.config, args.warmup, args.steps
    device = measure_in_subprocess(argv, "device")
    ceiling = device["bf16_ceiling"]
    print(f"device: {device['device']} ({device['platform']}); ")
    print(
        f"{device['versions']}\nbf16 matmul ceiling "
        f"({device['ceiling_n']}^3): {ceiling / 1e12:.1f} TFLOP/s"
    )
    keys = list(ROWS)
    _, why = import_big_vision()
    if why:
        print(f"big_vision rows left out: {why}")
        keys = [k for k in keys if not k.startswith("big_vision")]
    measure = measure_here if args.quick else measure_in_subprocess
    rows = {}
    for key in keys:
        name = ROWS[key][0].format(num_experts=config.num_experts)
        if args.quick:
            name = name.replace("B/16", "tiny")
        measured = measure(argv, key)
        step_s, flops = measured["step_s"], measured["flops"]
        rows[name] = {
            "step_ms": 1e3 * step_s,
            "pairs_per_s": config.batch_size / step_s,
            "tflops_per_s": flops / step_s / 1e12,
            "mfu": flops / step_s / ceiling,
        }
        print(f"  {name}: {1e3 * step_s:.1f} ms/step", flush=True)
    pali = pali_row(args.quick)

    print(
        f"\nbatch {config.batch_size}, {config.image_size} px, "
        f"mixed_bfloat16, median of {steps} steps after {warmup} warm-up"
    )
    print(
        "| row | ms/step | pairs/s | vs big_vision | TFLOP/s | MFU |\n"
        "|---|---:|---:|---:|---:|---:|"
    )
    for name, row in rows.items():
        peer_name = "big_vision " + name.replace("LiT", "two-tower")
        peer_name = peer_name.replace(" (uu)", "")
        peer = rows.get(peer_name, {}).get("pairs_per_s")
        ratio = f"{row['pairs_per_s'] / peer:.2f}x" if peer else ""
        print(
            f"| {name} | {row['step_ms']:.1f} | {row['pairs_per_s']:.1f} "
            f"| {ratio} | {row['tflops_per_s']:.1f} | {row['mfu']:.1%} |"
        )
    print(f"PaLI decode: {pali}")
    clippo = next(iter(rows.values()))
    if not args.quick:
        verdict = "met" if clippo["mfu"] >= TARGET_MFU_CLIPPO else "missed"
        print(f"target CLIPPO MFU >= {TARGET_MFU_CLIPPO:.0%}: {verdict}")
    result = {
        "device": device["device"],
        "platform": device["platform"],
        "config": dataclasses.asdict(config),
        "bf16_ceiling_tflops": ceiling / 1e12,
        "rows": rows,
        "pali_decode": pali,
    }
    with open(args.output, "w") as f:
        json.dump(result, f, indent=2)
    return result


if __name__ == "__main__":
    main()
