"""Backend-specific pieces of a training step that may be skipped.

`keras_vl.models.SkipNonFiniteOptimizer` decides once per step whether to
apply the update; these helpers make that decision the same on every
replica and every backend:

* `all_finite` checks gradients, and under `tf.distribute` (where each
  replica holds its local gradients) all-reduces the verdict, so all
  replicas skip together. Under JAX data parallelism the gradients are
  already global arrays, so a plain reduction is the global answer.
* `apply_if` runs the update or its replacement, traced (`ops.cond`)
  under `jit`/`tf.function`, across replicas under `tf.distribute`.
* `with_train_log` adds a value of the optimizer's state to what a Keras
  `train_step` returns; JAX's step is stateless and returns that state.
"""

from collections.abc import Callable, Sequence
from typing import Any

import keras
from keras import ops

from keras_vl.distribute.replica import _tf_replica_context


def all_finite(tensors: Sequence[Any]) -> Any:
    """Whether every entry of every tensor is finite, on every replica.

    Args:
        tensors: Tensors (e.g. gradients); `None` entries are ignored, and
            TensorFlow's `IndexedSlices` are checked by their values.

    Returns:
        A scalar boolean tensor, equal on all replicas of a `tf.distribute`
        strategy.
    """
    values = [_dense_values(t) for t in tensors if t is not None]
    if keras.backend.backend() == "torch":
        finite = _torch_all_finite(values)
    else:
        checks = [ops.all(ops.isfinite(v)) for v in values]
        finite = ops.all(ops.stack(checks)) if checks else ops.array(True)
    context = _tf_replica_context()
    if context is None:
        return finite
    import tensorflow as tf

    # Any replica's non-finite value makes the summed gradient non-finite.
    bad = context.all_reduce("sum", tf.cast(tf.logical_not(finite), "int32"))
    return tf.equal(bad, 0)


def _torch_all_finite(values: list) -> Any:
    """`all_finite` on torch, in about one vectorised pass per tensor.

    Eager `isfinite(x).all()` costs several kernels and a temporary per
    tensor. A tensor's L2 norm (all tensors in one `_foreach_norm` call) is
    finite only if all its entries are; it can also overflow on finite
    entries, so tensors whose norm is not finite are checked entry by
    entry.
    """
    import torch

    values = [ops.convert_to_tensor(v) for v in values]
    # Integer tensors are finite, and empty ones hold nothing to check.
    values = [
        v
        for v in values
        if (v.is_floating_point() or v.is_complex()) and v.numel()
    ]
    if not values:
        return ops.array(True)
    with torch.no_grad():
        norms = torch.isfinite(torch.stack(torch._foreach_norm(values, 2)))
        finite = norms.all()
        if finite:
            return finite
        flags = norms.tolist()
        suspects = [v for v, ok in zip(values, flags, strict=True) if not ok]
        return torch.stack([torch.isfinite(v).all() for v in suspects]).all()


def _dense_values(x: Any) -> Any:
    """The values of `x`; those of a TensorFlow `IndexedSlices` (the
    gradient of a gather) without densifying it."""
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if isinstance(x, tf.IndexedSlices):
            return x.values
    return x


def apply_if(
    pred: Any,
    apply_fn: Callable[..., None],
    skip_fn: Callable[[], None],
    args: tuple = (),
) -> None:
    """Runs `apply_fn(*args)` if `pred`, else `skip_fn()`; both assign
    variables and return nothing.

    `apply_fn` is an optimizer update. Inside a `tf.distribute` replica
    context that update synchronises the replicas (`merge_call`), which
    TensorFlow forbids inside a traced `cond`: there the branch is taken
    once in the cross-replica context and the update runs on every
    replica, with its own `args`; `pred` must be equal on all replicas
    (see `all_finite`) and `skip_fn` updates variables for all of them.
    Elsewhere it is `ops.cond`, or a plain `if` on eager JAX, whose
    `lax.cond` would trace the assignments away.
    """
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        if (
            tf.distribute.has_strategy()
            and tf.distribute.in_cross_replica_context()
        ):
            raise ValueError("`apply_if` must run in a replica context.")
        if (
            tf.distribute.has_strategy()
            and not tf.__internal__.distribute.strategy_supports_no_merge_call()
        ):

            def merged(strategy, pred, *args):
                def apply_everywhere():
                    strategy.extended.call_for_each_replica(apply_fn, args)

                pred = strategy.experimental_local_results(pred)[0]
                ops.cond(pred, apply_everywhere, skip_fn)

            tf.distribute.get_replica_context().merge_call(
                merged, args=(pred, *args)
            )
            return
    if keras.backend.backend() == "jax":
        import jax

        if not isinstance(pred, jax.core.Tracer):
            apply_fn(*args) if bool(pred) else skip_fn()
            return
    ops.cond(pred, lambda: apply_fn(*args), skip_fn)


def with_train_log(
    model: keras.Model,
    train_step: Callable[..., Any],
    args: tuple,
    name: str,
    variable: Callable[[], keras.Variable],
) -> Any:
    """Runs a Keras `train_step(*args)` and logs a variable as `name`.

    `variable()` returns one of `model.optimizer.variables` (called after
    the step: TensorFlow builds the optimizer in its first update); its
    value after the step's update is logged as float32, like Keras's
    metrics.
    """
    if keras.backend.backend() == "jax":
        # JAX: `train_step(state, data) -> (logs, state)`, the optimizer's
        # variables third in the state, in `optimizer.variables` order.
        logs, state = train_step(*args)
        index = next(
            i
            for i, v in enumerate(model.optimizer.variables)
            if v is variable()
        )
        value = state[2][index]
    else:
        logs = train_step(*args)
        value = variable().value
    logs = dict(logs)
    logs[name] = ops.cast(value, "float32")
    return (logs, state) if keras.backend.backend() == "jax" else logs
