"""Peak training memory and step time of a ViT with and without `remat`.

Two rows, side by side in one run: the same ViT (`--variant`, default
B/16 at 224 px with a 1000-way head) trains one SGD step on a fixed batch
with `remat=False` (`plain`) and with `remat=True` (`remat`: every encoder
block's activations are recomputed in the backward pass instead of
stored). The table gives each row's peak memory and step time and the
ratios remat / plain.

Peak memory, per backend:

- JAX: the compiled train step's `memory_analysis()`: `temp` is what XLA
  allocates besides the arguments and outputs (activations kept for the
  backward pass, gradients, workspace), the figure remat shrinks.
- torch: on a GPU, `torch.cuda.max_memory_allocated` over the first
  step; on a CPU, the process' peak resident memory (`ru_maxrss`) during
  the first step less its resident memory before it, each row in a fresh
  process so the rows do not share a peak.
- TensorFlow: as torch on a CPU (the first step also traces and
  compiles, in both rows).

On JAX on a CPU, `remat` goes through `keras_vl.distribute.remat`
rather than `jax.checkpoint`: XLA:CPU ignores the optimization barriers
with which `jax.checkpoint` keeps the recomputation in the backward pass,
schedules it early and so keeps as many activations alive (the same peak
as `plain`). Starting each block's recomputation from inputs tied to its
output gradient makes it wait (see `keras_vl.distribute.compiler`). At
the default ViT-B/16, batch 4, the temporary memory drops from 1,056 MiB
to 150 MiB (0.14x), and the step takes about as long (1.03x to 1.07x
on a busy 2-core machine).

Step time is the median of `--steps` steps after one warm-up step (which
compiles). The step is the model's forward pass, a mean-square loss
against fixed targets, the gradients and a plain SGD update: no optimizer
state, so memory is the model's own.

Usage:

    KERAS_BACKEND=jax python benchmarks/memory.py
    KERAS_BACKEND=torch python benchmarks/memory.py --batch-size 8
    KERAS_BACKEND=jax python benchmarks/memory.py --quick  # a tiny ViT
"""

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
import numpy as np  # noqa: E402

from keras_vl.models import ViTBackbone  # noqa: E402

ROWS = ("plain", "remat")
LEARNING_RATE = 1e-3


def build(args, remat: bool) -> tuple[ViTBackbone, np.ndarray, np.ndarray]:
    """The ViT and a fixed batch of images and targets."""
    keras.utils.set_random_seed(0)
    if args.quick:
        model = ViTBackbone(
            image_size=32,
            patch_size=8,
            width=32,
            depth=2,
            num_heads=2,
            num_classes=10,
            head_zeroinit=False,
            remat=remat,
        )
    else:
        model = ViTBackbone.from_variant(
            args.variant,
            image_size=args.image_size,
            num_classes=1000,
            head_zeroinit=False,
            remat=remat,
        )
    rng = np.random.default_rng(0)
    size = model.image_size
    images = rng.uniform(-1, 1, (args.batch_size, *size, 3)).astype("f4")
    targets = rng.normal(size=(args.batch_size, model.output_dim))
    return model, images, targets.astype("f4")


def _timed(step, steps: int) -> float:
    step()  # Warm-up: compiles.
    times = []
    for _ in range(steps):
        start = time.perf_counter()
        step()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def measure_jax(args, remat: bool) -> dict:
    import jax
    import jax.numpy as jnp

    model, images, targets = build(args, remat)
    trainable = [v.value for v in model.trainable_variables]
    frozen = [v.value for v in model.non_trainable_variables]

    def loss_fn(trainable, frozen, x, y):
        out, frozen = model.stateless_call(trainable, frozen, x, training=True)
        return jnp.mean(jnp.square(out - y)), frozen

    def train_step(trainable, frozen, x, y):
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)
        (loss, frozen), grads = grad_fn(trainable, frozen, x, y)
        trainable = [
            w - LEARNING_RATE * g for w, g in zip(trainable, grads, strict=True)
        ]
        return loss, trainable, frozen

    compiled = (
        jax.jit(train_step, donate_argnums=(0, 1))
        .lower(trainable, frozen, images, targets)
        .compile()
    )
    stats = compiled.memory_analysis()
    state = {"trainable": trainable, "frozen": frozen}

    def step():
        loss, state["trainable"], state["frozen"] = compiled(
            state["trainable"], state["frozen"], images, targets
        )
        loss.block_until_ready()

    return {
        "peak_bytes": int(stats.temp_size_in_bytes),
        "peak_kind": "XLA temp",
        "step_s": _timed(step, args.steps),
    }


def measure_torch(args, remat: bool) -> dict:
    import torch

    model, images, targets = build(args, remat)
    x = keras.ops.convert_to_tensor(images)
    y = keras.ops.convert_to_tensor(targets)
    weights = [v.value for v in model.trainable_variables]

    def step():
        loss = torch.mean(torch.square(model(x, training=True) - y))
        loss.backward()
        with torch.no_grad():
            for w in weights:
                w.sub_(LEARNING_RATE * w.grad)
                w.grad = None

    cuda = torch.cuda.is_available()
    with torch.no_grad():
        model(x)  # Builds what the first call builds, outside the peak.
    if cuda:
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = _current_rss()
    # The first step: later ones reuse memory the allocator already holds.
    step()
    if cuda:
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _peak_rss() - base
    return {
        "peak_bytes": int(peak),
        "peak_kind": "CUDA allocated" if cuda else "peak RSS rise",
        "step_s": _timed(step, args.steps),
    }


def measure_tensorflow(args, remat: bool) -> dict:
    import tensorflow as tf

    model, images, targets = build(args, remat)
    weights = model.trainable_variables

    @tf.function
    def train_step(x, y):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(model(x, training=True) - y))
        for w, g in zip(weights, tape.gradient(loss, weights), strict=True):
            w.assign_sub(LEARNING_RATE * g)
        return loss

    def step():
        train_step(images, targets).numpy()

    model(images)  # Builds the model outside the peak.
    base = _current_rss()
    step()  # Traces and compiles too: both rows alike.
    return {
        "peak_bytes": int(_peak_rss() - base),
        "peak_kind": "peak RSS rise",
        "step_s": _timed(step, args.steps),
    }


def _current_rss() -> int:
    """This process' resident memory now, in bytes (Linux)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def _peak_rss() -> int:
    """This process' peak resident memory so far, in bytes (Linux)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


MEASURES = {
    "jax": measure_jax,
    "torch": measure_torch,
    "tensorflow": measure_tensorflow,
}


def measure_row(args, row: str) -> dict:
    """One row; in a fresh process unless the backend reports a compiled
    program's own memory (JAX), so that each row has its own peak."""
    backend = keras.backend.backend()
    if backend == "jax" or args.child:
        return MEASURES[backend](args, remat=row == "remat")
    command = [sys.executable, __file__, *sys.argv[1:], "--child", row]
    result = subprocess.run(
        command, capture_output=True, text=True, check=False
    )
    lines = [
        line for line in result.stdout.splitlines() if line.startswith("ROW ")
    ]
    if result.returncode or not lines:
        raise RuntimeError(f"row {row!r} failed:\n{result.stderr[-4000:]}")
    return json.loads(lines[-1][len("ROW ") :])


def _mib(value: int) -> str:
    return f"{value / 2**20:,.1f} MiB"


def print_table(args, results: dict) -> None:
    plain, remat = results["plain"], results["remat"]
    model = "tiny ViT (--quick)" if args.quick else f"ViT-{args.variant}"
    print(
        f"\n{model}, {args.image_size if not args.quick else 32} px, batch "
        f"{args.batch_size}, {keras.backend.backend()}; peak memory: "
        f"{plain['peak_kind']}"
    )
    print(f"{'':24}{'plain':>16}{'remat':>16}{'remat / plain':>16}")
    print(
        f"{'peak memory':24}{_mib(plain['peak_bytes']):>16}"
        f"{_mib(remat['peak_bytes']):>16}"
        f"{remat['peak_bytes'] / max(plain['peak_bytes'], 1):>16.2f}"
    )
    print(
        f"{'step time':24}{plain['step_s'] * 1e3:>13.0f} ms"
        f"{remat['step_s'] * 1e3:>13.0f} ms"
        f"{remat['step_s'] / plain['step_s']:>16.2f}"
    )


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--variant", default="B/16")
    parser.add_argument("--image-size", type=int, default=224)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument(
        "--quick", action="store_true", help="a tiny ViT, for tests"
    )
    parser.add_argument("--output", help="also write the results as JSON")
    parser.add_argument("--child", choices=ROWS, help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv=None) -> dict:
    args = parse_args(argv)
    if args.child:
        print("ROW " + json.dumps(measure_row(args, args.child)))
        return {}
    results = {row: measure_row(args, row) for row in ROWS}
    print_table(args, results)
    if args.output:
        with open(args.output, "w") as f:
            json.dump({"backend": keras.backend.backend(), **results}, f)
    return results


if __name__ == "__main__":
    main()
