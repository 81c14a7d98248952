"""The backend-specific half of a gradient-accumulation training step.

A model that accumulates gradients over micro-batches (see
`keras_vl.models.contrastive_accumulation`) writes its step as one stateless
function in `keras.ops`: given the values of its trainable and
non-trainable variables and a batch, it returns the gradients, the new
non-trainable values and whatever its metrics need. What differs between
backends is kept here:

* `value_and_grad`: the gradient of a scalar function with respect to a
  list of tensors (`jax.value_and_grad`, `tf.GradientTape`,
  `torch.autograd.grad`).
* `add_gradients`: the sum of two gradients, either of which may be None
  or, on TensorFlow, the `IndexedSlices` of an embedding lookup.
* `no_gradient`: a block whose operations record nothing for autograd
  (PyTorch records by default; JAX and TensorFlow only under a transform
  or a tape).
* `random_state` / `restore_random_state`: the generator state that
  randomness outside Keras' seed generators draws from. Only PyTorch has
  one: Keras' unseeded `Dropout` there uses PyTorch's global generator,
  while every other Keras random op, on every backend, draws from a seed
  generator's state variable, which the model's non-trainable state holds.
* `train_step`: the step as each Keras trainer calls it. JAX's is stateless
  (`(state, data) -> (logs, state)`); TensorFlow's and PyTorch's read and
  assign the variables and return the logs.
"""

import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import keras

__all__ = [
    "add_gradients",
    "no_gradient",
    "random_state",
    "restore_random_state",
    "train_step",
    "value_and_grad",
]


def value_and_grad(
    fn: Callable[[list], tuple[Any, Any]], values: Sequence[Any]
) -> tuple[tuple[Any, Any], list]:
    """`fn(values)` and the gradient of its first result.

    Args:
        fn: Takes a list of tensors and returns `(scalar, aux)`; only the
            scalar is differentiated.
        values: The tensors to differentiate with respect to.

    Returns:
        `((scalar, aux), grads)`, `grads[i]` the gradient with respect to
        `values[i]`: None (TensorFlow, PyTorch) or zeros (JAX) where the
        scalar does not depend on it.

    Example:

    ```python
    from keras_vl.distribute.accumulation import value_and_grad

    (y, _), (dx,) = value_and_grad(lambda v: (keras.ops.sum(v[0] ** 2), None),
                                   [keras.ops.ones(3)])  # dx = [2, 2, 2]
    ```
    """
    values = list(values)
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return jax.value_and_grad(fn, has_aux=True)(values)
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.GradientTape() as tape:
            tape.watch(values)
            value, aux = fn(values)
        return (value, aux), tape.gradient(value, values)
    if backend == "torch":
        import torch

        # Leaves that autograd can differentiate with respect to: trainable
        # parameters already are; other tensors become detached copies.
        values = [
            v if v.requires_grad else v.detach().requires_grad_(True)
            for v in values
        ]
        with torch.enable_grad():
            value, aux = fn(values)
        grads = torch.autograd.grad(value, values, allow_unused=True)
        return (value.detach(), aux), list(grads)
    raise NotImplementedError(f"No gradients on the {backend} backend.")


def add_gradients(a: Any, b: Any) -> Any:
    """`a + b` for gradients of one variable; None counts as zero.

    TensorFlow's gradient of a gather (an embedding lookup) is an
    `IndexedSlices`, which has no `+`: two are joined, still sparse.

    Example:

    ```python
    total = add_gradients(total, grad)  # total may start as None.
    ```
    """
    if a is None:
        return b
    if b is None:
        return a
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        sparse = (
            isinstance(a, tf.IndexedSlices),
            isinstance(b, tf.IndexedSlices),
        )
        if all(sparse):
            return tf.IndexedSlices(
                tf.concat([a.values, b.values], 0),
                tf.concat([a.indices, b.indices], 0),
                a.dense_shape,
            )
        if any(sparse):
            return tf.convert_to_tensor(a) + tf.convert_to_tensor(b)
    return a + b


def no_gradient() -> contextlib.AbstractContextManager:
    """A context in which operations record nothing for autograd.

    Example:

    ```python
    with no_gradient():
        embeddings = model(x, training=True)  # Kept, not differentiated.
    ```
    """
    if keras.backend.backend() == "torch":
        import torch

        return torch.no_grad()
    return contextlib.nullcontext()


def random_state() -> Any:
    """The state of the backend's global random generator, or None where
    Keras draws all randomness from seed generators (JAX, TensorFlow).

    Example:

    ```python
    state = random_state()
    ...  # Unseeded dropout on PyTorch.
    restore_random_state(state)  # The same masks again.
    ```
    """
    if keras.backend.backend() != "torch":
        return None
    import torch

    cuda = (
        torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else None
    )
    return torch.random.get_rng_state(), cuda


def restore_random_state(state: Any) -> None:
    """Restores what `random_state` returned (nothing to do if None)."""
    if state is None:
        return
    import torch

    cpu, cuda = state
    torch.random.set_rng_state(cpu)
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)


def train_step(
    model: keras.Model,
    gradients_fn: Callable[..., tuple[list, list, Any]],
    metrics_fn: Callable[[Any, Any], dict],
    args: tuple,
) -> Any:
    """Runs a stateless gradient function as the backend's `train_step`.

    Args:
        model: The compiled model being trained.
        gradients_fn: `(trainable, non_trainable, scale_loss, data) ->
            (grads, non_trainable, report)`: the gradients for
            `model.trainable_variables`, the new values of
            `model.non_trainable_variables` and anything `metrics_fn`
            needs. `scale_loss` is the optimizer's `scale_loss`, to apply
            to every loss that is differentiated.
        metrics_fn: `(data, report) -> logs`: updates the model's metrics
            (stateful code) and returns the logs, as `compute_metrics`
            does. It sees the weights before the update.
        args: The arguments Keras passed to `train_step`: `(state, data)`
            on JAX, `(data,)` elsewhere.

    Returns:
        What Keras expects from `train_step`: `(logs, state)` on JAX,
        the logs elsewhere.
    """
    if keras.backend.backend() == "jax":
        return _stateless_train_step(model, gradients_fn, metrics_fn, *args)
    return _stateful_train_step(model, gradients_fn, metrics_fn, *args)


def _stateless_train_step(model, gradients_fn, metrics_fn, state, data):
    trainable, non_trainable, optimizer_values, metrics_values = state
    optimizer = model.optimizer

    def scale_loss(loss):
        # The loss scale (mixed precision) is optimizer state.
        mapping = list(zip(optimizer.variables, optimizer_values, strict=True))
        with keras.StatelessScope(state_mapping=mapping):
            return optimizer.scale_loss(loss)

    grads, non_trainable, report = gradients_fn(
        trainable, non_trainable, scale_loss, data
    )
    mapping = [
        *zip(model.trainable_variables, trainable, strict=True),
        *zip(model.non_trainable_variables, non_trainable, strict=True),
        *zip(model.metrics_variables, metrics_values, strict=True),
    ]
    with keras.StatelessScope(state_mapping=mapping) as scope:
        logs = metrics_fn(data, report)
    metrics_values = [
        scope.get_current_value(v) for v in model.metrics_variables
    ]
    trainable, optimizer_values = optimizer.stateless_apply(
        optimizer_values, grads, trainable
    )
    return logs, (trainable, non_trainable, optimizer_values, metrics_values)


def _stateful_train_step(model, gradients_fn, metrics_fn, data):
    variables = model.trainable_variables
    # Tensors rather than TensorFlow variables: a value the step leaves
    # alone then comes back as the same object, and is not assigned.
    trainable = [keras.ops.convert_to_tensor(v.value) for v in variables]
    old = [
        keras.ops.convert_to_tensor(v.value)
        for v in model.non_trainable_variables
    ]
    grads, new, report = gradients_fn(
        trainable, old, model.optimizer.scale_loss, data
    )
    # Only the state the step changed (seed generators, statistics); a
    # locked tower's weights are left alone.
    for variable, before, after in zip(
        model.non_trainable_variables, old, new, strict=True
    ):
        if after is not before:
            variable.assign(after)
    with no_gradient():
        logs = metrics_fn(data, report)
        model.optimizer.apply(grads, variables)
    return logs
