"""Inference on one batch through a compiled program that is quick to make.

`keras.Model.predict_on_batch` traces Keras' whole predict step on JAX: the
trainer's state handling around the model's call, and after every call it
writes each variable back. On a first call at a new shape that tracing is
a good part of the time. `batch_predictor` returns a function that runs
the model's own `stateless_call` under `jax.jit` instead, with the
variables' current values as arguments, so it always sees the current
weights and traces no more than the model. Elsewhere, and under a
`keras.distribution` (whose input sharding the trainer handles), it is
`predict_on_batch`.

On a CPU, a program small enough to run in milliseconds compiles first
with XLA's cheaper CPU settings: that halves the compile time, which is
most of a first call on a small model, while the slower code it makes
(up to 2-3x) costs little at that size. Whether a program is that small
is read from XLA's FLOP count of it (`QUICK_COMPILE_FLOPS`); a ViT-S/16
at 224 px is far above it, and compiles normally. A small program called
more than `QUICK_CALLS` times is compiled again with the full settings.
"""

from collections.abc import Callable
from typing import Any

import keras
import numpy as np

__all__ = ["QUICK_CALLS", "QUICK_COMPILE_FLOPS", "batch_predictor"]

# On a CPU, programs of at most `QUICK_COMPILE_FLOPS` compile with
# `_QUICK_COMPILE` for their first `QUICK_CALLS` calls.
QUICK_COMPILE_FLOPS = 2e9
QUICK_CALLS = 2
_QUICK_COMPILE = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
}


def batch_predictor(model: keras.Model) -> Callable[[Any], Any]:
    """Returns `predict(batch)`: `model(batch)` compiled, as numpy.

    On JAX without a `keras.distribution`, one `jax.jit` of
    `model.stateless_call` (a trace and a compilation per input shape;
    on a CPU, a quick one first for small programs);
    otherwise `model.predict_on_batch`. Both run in inference mode and give
    the same numbers.

    Args:
        model: A built Keras model.

    Returns:
        A function of one batch of inputs (as the model takes them) that
        returns the model's outputs as numpy arrays.

    Example:

    ```python
    from keras_vl.distribute.inference import batch_predictor

    predict = batch_predictor(model)
    outputs = predict(np.zeros((8, 32, 32, 3), "float32"))
    ```
    """
    if keras.backend.backend() != "jax":
        return model.predict_on_batch
    import jax

    def call(trainable, non_trainable, batch):
        outputs, _ = model.stateless_call(
            trainable, non_trainable, batch, training=False
        )
        return outputs

    traced = jax.jit(call)
    quick_compiles = jax.default_backend() == "cpu"
    programs = {}

    def predict(batch):
        if keras.distribution.distribution():  # Read at every call.
            return model.predict_on_batch(batch)
        args = (
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            batch,
        )
        signature = tuple(
            (np.shape(x), np.result_type(x).name)
            for x in keras.tree.flatten(batch)
        )
        if signature not in programs:
            programs[signature] = _Program(traced.lower(*args), quick_compiles)
        outputs = programs[signature](*args)
        return keras.tree.map_structure(np.asarray, outputs)

    return predict


class _Program:
    """One input shape's executable: quickly compiled first when it is
    small (and `quick` allows), fully compiled once it is used often."""

    def __init__(self, lowered, quick: bool):
        self.quick = quick and _flops(lowered) <= QUICK_COMPILE_FLOPS
        self.lowered = lowered if self.quick else None  # For the recompile.
        options = _QUICK_COMPILE if self.quick else None
        self.executable = lowered.compile(compiler_options=options)
        self.calls = 0

    def __call__(self, *args):
        self.calls += 1
        if self.quick and self.calls > QUICK_CALLS:
            self.executable = self.lowered.compile()
            self.quick, self.lowered = False, None
        return self.executable(*args)


def _flops(lowered) -> float:
    """XLA's FLOP count of a lowered program; infinite when unknown."""
    cost = lowered.cost_analysis()
    if isinstance(cost, list | tuple):  # One entry per computation.
        cost = cost[0] if cost else None
    flops = (cost or {}).get("flops", -1.0)
    return float(flops) if flops >= 0 else float("inf")
