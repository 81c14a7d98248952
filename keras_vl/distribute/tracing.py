"""Tracing state: whether code is being traced, and constants made outside.

Keras code runs either eagerly, one op at a time, or traced into a program
that a compiler then optimises as a whole (`jax.jit`, `tf.function`,
`torch.compile`). Code that picks the faster formulation for each case, or
that caches tensors across calls, needs to know which case it is in and
must keep traced values out of its caches. These helpers answer that on
every backend, so the code calling them needs no backend branches.
"""

from typing import Any

import keras
import numpy as np
from keras import ops

__all__ = ["constant_outside_trace", "is_tracing"]


def is_tracing(*tensors: Any) -> bool:
    """Tells whether the caller is being traced into a compiled program.

    * JAX: true when any of `tensors` is a tracer (the argument of a
      function under `jax.jit`, `jax.grad`, `jax.vmap`, ...). JAX has no
      public global flag for this, so pass the tensors the code works on.
    * TensorFlow: true while a graph is being built (`tf.function`, a
      `tf.data` map), whatever `tensors` are.
    * PyTorch: true while `torch.compile` traces the code.

    Args:
        *tensors: The tensors the caller is about to work on. Anything that
            is not a tensor is ignored.

    Returns:
        A Python `bool`; false in plain eager code.

    Example:

    ```python
    from keras_vl.distribute.tracing import is_tracing

    def double(x):
        if not is_tracing(x):
            print("running eagerly")  # Only for eager calls.
        return x * 2

    double(keras.ops.ones(3))  # Prints.
    jax.jit(double)(keras.ops.ones(3))  # Traced: does not print.
    ```
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        return any(isinstance(t, jax.core.Tracer) for t in tensors)
    if backend == "tensorflow":
        import tensorflow as tf

        return not tf.executing_eagerly()
    if backend == "torch":
        import torch

        return bool(torch.compiler.is_compiling())
    return False


def constant_outside_trace(value: Any, dtype: str | None = None) -> Any:
    """Converts `value` to a concrete backend tensor, even inside a trace.

    Inside `jax.jit` or `tf.function` an ordinary conversion makes a value
    of the program being traced, which must not outlive it. The tensor
    returned here is created as if eagerly (`jax.ensure_compile_time_eval`,
    `tf.init_scope`), so it can be cached and reused by eager calls and by
    every compiled program; a program captures it as a constant.

    Args:
        value: Anything `keras.ops.convert_to_tensor` accepts (typically a
            numpy array).
        dtype: Optional dtype name, e.g. ``"int32"``; by default the dtype
            of `value`.

    Returns:
        A tensor of the current backend that is never a tracer or a graph
        tensor.

    Example:

    ```python
    from keras_vl.distribute.tracing import constant_outside_trace

    table = constant_outside_trace(np.arange(256, dtype="int32"))
    ```
    """
    backend = keras.backend.backend()
    if backend == "jax":
        import jax

        # A host-to-device copy: `jnp.asarray` would compile a conversion.
        with jax.ensure_compile_time_eval():
            return jax.device_put(np.asarray(value, dtype=dtype))
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.init_scope():
            return tf.constant(value, dtype=dtype)
    return ops.convert_to_tensor(value, dtype=dtype)
