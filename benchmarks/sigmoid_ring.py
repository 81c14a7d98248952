"""Per-device memory of SigLIP's sigmoid loss: all-gather versus ring.

Under `keras.distribution.DataParallel` on `--devices` forced host devices
(JAX), the loss and its gradient with respect to the image and text
embeddings, the scale and the bias are compiled, side by side in one run,
with each exchange of `keras_vl.losses.sigmoid_contrastive_loss`:

- `gather`: the plain loss; XLA all-gathers the `[B, D]` text embeddings
  onto every device and forms that device's `[B / n, B]` logits.
- `ring`: `exchange="ring"`; text chunks of `[B / n, D]` pass from device
  to device, `[B / n, B / n]` logits at a time, and a custom VJP runs the
  ring again for the gradient.
- `ring, autodiff`: the same forward ring differentiated by JAX itself,
  which keeps every step's logits for the backward pass. Shown to say
  why the ring has its own VJP.

Memory is the compiled program's own per-device account
(`memory_analysis()`): arguments + outputs + temporaries, in float32, for
each of `--batch-sizes` (global batches) at `--dim` dimensions. Nothing
is run, so the figures do not depend on the host; a TPU or GPU compiler
schedules differently, so read the ratios, not the absolute numbers.

Usage:

    python benchmarks/sigmoid_ring.py
    python benchmarks/sigmoid_ring.py --devices 8 --batch-sizes 4096 16384
    python benchmarks/sigmoid_ring.py --quick  # a tiny size, for tests
"""

import argparse
import json
import os
import sys


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=8)
    parser.add_argument(
        "--batch-sizes", type=int, nargs="+", default=[2048, 8192, 32768]
    )
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument(
        "--quick", action="store_true", help="a tiny size, for tests"
    )
    parser.add_argument("--output", help="also write the results as JSON")
    args = parser.parse_args(argv)
    if args.quick:
        args.devices, args.batch_sizes, args.dim = 4, [64], 16
    return args


ARGS = parse_args(sys.argv[1:] if __name__ == "__main__" else [])
# The device count must be fixed before JAX starts.
os.environ.setdefault("KERAS_BACKEND", "jax")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ["XLA_FLAGS"] = (
    os.environ.get("XLA_FLAGS", "")
    + f" --xla_force_host_platform_device_count={ARGS.devices}"
)

import jax  # noqa: E402
import keras  # noqa: E402
from jax.sharding import NamedSharding, PartitionSpec  # noqa: E402

from keras_vl.distribute import ring  # noqa: E402
from keras_vl.losses import sigmoid_contrastive_loss  # noqa: E402

ROWS = ("gather", "ring", "ring, autodiff")


def _autodiff_ring(img, txt, scale, bias):
    """The ring's forward pass with JAX's own gradient (no custom VJP)."""
    return ring.sigmoid_ring_loss(img, txt, scale, bias, recompute=False)[0]


def _loss(row):
    if row == "ring, autodiff":
        return _autodiff_ring
    exchange = row

    def loss(img, txt, scale, bias):
        return sigmoid_contrastive_loss(
            img, txt, scale, bias, exchange=exchange
        )

    return loss


def measure(row: str, batch: int, dim: int) -> dict:
    """Per-device bytes of the compiled loss and gradient."""
    mesh, axis, _ = ring.ring_mesh()
    rows = NamedSharding(mesh, PartitionSpec(axis, None))
    scalar = NamedSharding(mesh, PartitionSpec())
    embeddings = jax.ShapeDtypeStruct((batch, dim), "float32", sharding=rows)
    number = jax.ShapeDtypeStruct((), "float32", sharding=scalar)
    step = jax.jit(jax.value_and_grad(_loss(row), argnums=(0, 1, 2, 3)))
    compiled = step.lower(embeddings, embeddings, number, number).compile()
    stats = compiled.memory_analysis()
    parts = {
        "argument_bytes": int(stats.argument_size_in_bytes),
        "output_bytes": int(stats.output_size_in_bytes),
        "temp_bytes": int(stats.temp_size_in_bytes),
    }
    return {**parts, "total_bytes": sum(parts.values())}


def _mib(value: int) -> str:
    return f"{value / 2**20:,.1f} MiB"


def print_table(args, results: dict) -> None:
    print(
        f"\nsigmoid loss + gradient, {args.devices} devices (DataParallel), "
        f"D={args.dim}, float32; per-device memory (arguments + outputs + "
        "temporaries) from XLA's memory_analysis"
    )
    header = "".join(f"{row:>18}" for row in ROWS)
    print(f"{'global batch':>14}{header}{'ring / gather':>16}")
    for batch, row in results.items():
        cells = "".join(f"{_mib(row[r]['total_bytes']):>18}" for r in ROWS)
        ratio = row["ring"]["total_bytes"] / row["gather"]["total_bytes"]
        print(f"{batch:>14}{cells}{ratio:>16.3f}")


def main(args=ARGS) -> dict:
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    if jax.device_count() != args.devices:
        raise RuntimeError(
            f"Expected {args.devices} devices, found {jax.device_count()}: "
            "JAX started before this script set the device count."
        )
    results = {
        batch: {row: measure(row, batch, args.dim) for row in ROWS}
        for batch in args.batch_sizes
    }
    print_table(args, results)
    if args.output:
        with open(args.output, "w") as f:
            json.dump(
                {"devices": args.devices, "dim": args.dim, "rows": results}, f
            )
    return results


if __name__ == "__main__":
    main()
