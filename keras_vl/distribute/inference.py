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

On a CPU, the first `QUICK_CALLS` calls at each small input shape (up to
`QUICK_COMPILE_ROWS` rows) run a program compiled with XLA's cheaper CPU
settings: that compiles in about half the time, which is most of a first
small call, but runs up to 2-3x slower (a ViT-Ti/16 at 224 px, 8 rows).
A shape used more often than that is worth the full compilation, so
later calls at it run the optimised program.
"""

import collections
from collections.abc import Callable
from typing import Any

import keras
import numpy as np

__all__ = ["QUICK_CALLS", "QUICK_COMPILE_ROWS", "batch_predictor"]

# On a CPU, the first `QUICK_CALLS` calls at each shape of at most
# `QUICK_COMPILE_ROWS` rows run a program compiled with `_QUICK_COMPILE`.
QUICK_COMPILE_ROWS = 8
QUICK_CALLS = 2
_QUICK_COMPILE = {
    "xla_backend_optimization_level": 0,
    "xla_llvm_disable_expensive_passes": True,
}


def batch_predictor(model: keras.Model) -> Callable[[Any], Any]:
    """Returns `predict(batch)`: `model(batch)` compiled, as numpy.

    On JAX without a `keras.distribution`, one `jax.jit` of
    `model.stateless_call` (a trace and a compilation per input shape;
    on a CPU, a quick one first for small batches);
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

    compiled = jax.jit(call)
    quick = compiled
    if jax.default_backend() == "cpu":
        quick = jax.jit(call, compiler_options=_QUICK_COMPILE)

    calls = collections.Counter()

    def predict(batch):
        if keras.distribution.distribution():  # Read at every call.
            return model.predict_on_batch(batch)
        leaves = keras.tree.flatten(batch)
        shape = tuple((np.shape(x), np.result_type(x).name) for x in leaves)
        calls[shape] += 1
        quick_call = len(leaves[0]) <= QUICK_COMPILE_ROWS and (
            calls[shape] <= QUICK_CALLS
        )
        program = quick if quick_call else compiled
        outputs = program(
            [v.value for v in model.trainable_variables],
            [v.value for v in model.non_trainable_variables],
            batch,
        )
        return keras.tree.map_structure(np.asarray, outputs)

    return predict
