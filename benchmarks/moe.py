"""Benchmarks keras_vl's sparse MoE MLP against a dense MLP and keras-hub's
dense-compute mixture of experts.

One step is forward + backward (gradients of the squared output plus the
layer's auxiliary losses with respect to every weight and the input) of a
single layer on `B` sequences of `N` tokens of ViT-S width (`D = 384`,
expert / MLP width `M = 1536`), routed in groups of `S = 256` tokens. Rows,
measured side by side in one process:

- `dense M`: `keras_vl.layers.MlpBlock(M)`, the parameters one token uses
  under top-1 routing; `dense 2M`: `MlpBlock(2 M)`, those of top-2.
- `sparse E=.. k=..`: `keras_vl.layers.SparseMoeMlp` with `E` experts of
  width `M`, top-`k`, capacity factor 1.0 (so `E * C = k * S`: the slots
  per group do not depend on `E`), Batch Priority Routing on, router noise
  on (training mode).
- `keras-hub E=.. k=..`: `keras_hub`'s `MixtralSparseMoeBlock`, which runs
  every expert on every token and zeroes the unselected outputs. Its
  experts are gated (three `D x I` matrices); `I = 2 M / 3 = 1024` gives
  each expert the parameters and FLOPs of one of ours.

Each row is a `jax.jit`-compiled `value_and_grad` of the layer's
`stateless_call` (the JAX backend, the project default). Rows are built
and warmed up first (compilation dropped); then `--rounds` interleaved
rounds time `--steps` steps of every row (blocking on the result), and the
median step time is reported, so load changes on a shared machine hit all
rows alike.

FLOPs are matmul FLOPs as executed (2 per multiply-add), forward x 3 for
forward + backward: a dense MLP `4 T D M`; the sparse MLP `4 (G E C) D M`
for the expert slots (empty slots included) + `2 * 2 G S (E C) D` for the
dispatch and combine einsums + `2 T D E` for the router (+ `2 G S^2 E k`
for the batch-priority order); keras-hub `6 T D I E + 2 T D E`. Achieved
FLOP/s is divided by the matmul ceiling measured in the same run (a jitted
float32 matmul, 2048 x 2048 on a CPU and 8192 x 8192 on a GPU, best of 5).

Targets: sparse top-1 at `E = 8` within 1.3x the dense `M` MLP's time;
sparse at `E = 32` at least 3x faster than keras-hub at `E = 32` (same
`k`); sparse time flat in `E` at fixed `k` (`E = 32` within 1.25x of
`E = 8`).

Usage:

    KERAS_BACKEND=jax python benchmarks/moe.py --batch 8
"""

import argparse
import math
import os
import statistics
import time
from dataclasses import dataclass, field

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras  # noqa: E402
from keras_hub.src.models.mixtral.mixtral_decoder import (  # noqa: E402
    MixtralSparseMoeBlock,
)
from matmul_ceiling import jax_matmul_ceiling  # noqa: E402

from keras_vl.layers import MlpBlock, SparseMoeMlp  # noqa: E402

WIDTH, MLP_DIM, GROUP = 384, 1536, 256
EXPERTS, TOP_K = (8, 32), (1, 2)


@dataclass
class Row:
    name: str
    layer: keras.layers.Layer
    flops: float  # forward + backward, per step
    times: list = field(default_factory=list)
    step: object = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def make_step(layer, x, training):
    """A jitted forward + backward of `layer` on `x`; returns a callable."""
    import jax
    import jax.numpy as jnp

    layer.build(x.shape)
    trainable = [v.value for v in layer.trainable_variables]
    others = [v.value for v in layer.non_trainable_variables]

    def loss(trainable, inputs):
        (outputs, _, losses) = layer.stateless_call(
            trainable, others, inputs, training=training, return_losses=True
        )
        if isinstance(outputs, tuple):  # keras-hub's block adds its logits
            outputs = outputs[0]
        return jnp.mean(jnp.square(outputs)) + sum(losses)

    grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)))
    inputs = jnp.asarray(x)

    def step():
        jax.block_until_ready(grad(trainable, inputs))

    return step


def build_rows(tokens: int) -> list[Row]:
    groups = math.ceil(tokens / GROUP)
    rows = [
        Row("dense M", MlpBlock(MLP_DIM), 3 * 4 * tokens * WIDTH * MLP_DIM),
        Row(
            "dense 2M",
            MlpBlock(2 * MLP_DIM),
            3 * 4 * tokens * WIDTH * 2 * MLP_DIM,
        ),
    ]
    for e in EXPERTS:
        for k in TOP_K:
            layer = SparseMoeMlp(
                e, MLP_DIM, GROUP, num_selected_experts=k, batch_priority=True
            )
            slots = groups * e * layer.capacity_per_group  # G * E * C
            flops = (
                4 * slots * WIDTH * MLP_DIM  # experts
                + 4 * GROUP * slots * WIDTH  # dispatch and combine
                + 2 * tokens * WIDTH * e  # router
                + 2 * groups * GROUP**2 * e * k  # batch-priority order
            )
            rows.append(Row(f"sparse E={e} k={k}", layer, 3 * flops))
    inner = 2 * MLP_DIM // 3
    for e in EXPERTS:
        for k in TOP_K:
            layer = MixtralSparseMoeBlock(WIDTH, inner, e, top_k=k)
            flops = 6 * tokens * WIDTH * inner * e + 2 * tokens * WIDTH * e
            rows.append(Row(f"keras-hub E={e} k={k}", layer, 3 * flops))
    return rows


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=4, help="sequences B")
    parser.add_argument("--tokens", type=int, default=256, help="per sequence")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    args = parser.parse_args(argv)
    if keras.backend.backend() != "jax":
        raise SystemExit("benchmarks/moe.py runs on the JAX backend.")
    import numpy as np

    keras.utils.set_random_seed(0)
    shape = (args.batch, args.tokens, WIDTH)
    x = np.random.default_rng(0).normal(size=shape).astype("float32")
    tokens = args.batch * args.tokens
    rows = build_rows(tokens)
    for row in rows:
        row.step = make_step(row.layer, x, training=True)
        for _ in range(args.warmup + 1):  # the first call compiles
            row.step()
    ceiling = jax_matmul_ceiling()
    for _ in range(args.rounds):
        for row in rows:
            for _ in range(args.steps):
                start = time.perf_counter()
                row.step()
                row.times.append(time.perf_counter() - start)

    by_name = {row.name: row for row in rows}
    dense = by_name["dense M"]
    print(
        f"\nOne forward + backward step, B={args.batch} x N={args.tokens} "
        f"tokens (T={tokens}), D={WIDTH}, M={MLP_DIM}, group size "
        f"S={GROUP}, capacity factor 1.0, backend "
        f"{keras.backend.backend()}; median of "
        f"{args.rounds * args.steps} steps; matmul ceiling "
        f"{ceiling / 1e9:.1f} GFLOP/s.\n"
    )
    print(
        "| row | ms | vs dense M | vs keras-hub (same E, k) | GFLOP/s "
        "| of ceiling |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: |")
    for row in rows:
        flops_per_s = row.flops / row.median
        peer = by_name.get(row.name.replace("sparse", "keras-hub"))
        versus = (
            f"{peer.median / row.median:.2f}x faster"
            if row.name.startswith("sparse")
            else ""
        )
        print(
            f"| {row.name} | {1e3 * row.median:.1f} "
            f"| {row.median / dense.median:.2f} | {versus} "
            f"| {flops_per_s / 1e9:.1f} | {100 * flops_per_s / ceiling:.0f} % |"
        )

    checks = []
    top1 = by_name["sparse E=8 k=1"].median / dense.median
    checks.append(("sparse E=8 k=1 / dense M <= 1.3", top1, top1 <= 1.3))
    for k in TOP_K:
        speedup = (
            by_name[f"keras-hub E=32 k={k}"].median
            / by_name[f"sparse E=32 k={k}"].median
        )
        checks.append(
            (f"keras-hub / sparse at E=32 k={k} >= 3", speedup, speedup >= 3)
        )
        flat = (
            by_name[f"sparse E=32 k={k}"].median
            / by_name[f"sparse E=8 k={k}"].median
        )
        checks.append(
            (f"sparse E=32 / E=8 at k={k} <= 1.25", flat, flat <= 1.25)
        )
    print()
    for name, value, met in checks:
        print(f"- {name}: {value:.2f} ({'met' if met else 'NOT met'})")


if __name__ == "__main__":
    main()
