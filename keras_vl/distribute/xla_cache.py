"""Programs compiled with XLA once and shared through a cache.

An eager call of a long chain of `keras.ops` pays the overhead of every op.
On JAX and TensorFlow the same chain can run as one XLA program, compiled
on first use. `cached_xla_function` compiles a pure function with the
backend's own XLA entry point and keeps the result under a caller-chosen
key, so that objects with equal settings share one compiled function (and
its per-shape programs) instead of compiling their own. PyTorch has no XLA
compiler here; callers then run their ops eagerly.
"""

from collections.abc import Callable, Hashable
from typing import Any

import keras

__all__ = ["cached_xla_function"]

# (backend, key) -> compiled function. Entries live as long as the process;
# keys are expected to be few (one per distinct configuration).
_COMPILED: dict[tuple[str, Hashable], Callable[..., Any]] = {}


def cached_xla_function(
    key: Hashable, fn: Callable[..., Any]
) -> Callable[..., Any] | None:
    """Returns `fn` compiled with XLA, cached under `key`.

    JAX: `jax.jit(fn)`. TensorFlow: `tf.function(fn, jit_compile=True,
    reduce_retracing=True)`. PyTorch: None, as there is nothing to compile
    with; the caller then calls its function eagerly.

    The first call with a given `key` compiles `fn`; later calls return the
    same compiled function and ignore their `fn`, so every `fn` passed
    under one key must compute the same thing. `fn` must be pure: its
    results may depend only on its arguments and on values fixed when it
    was made. Keep `fn` from closing over large objects: the cache keeps it
    alive for the rest of the process.

    Args:
        key: Any hashable value that identifies what `fn` computes (for
            example a tuple of its settings). The backend is added to it.
        fn: The function to compile. It takes and returns tensors (or
            nested structures of them).

    Returns:
        The compiled function, or None on backends without an XLA compiler.

    Example:

    ```python
    from keras_vl.distribute.xla_cache import cached_xla_function

    def scaled(x):
        return keras.ops.cumsum(x) * 3

    program = cached_xla_function(("scaled", 3), scaled)
    y = scaled(x) if program is None else program(x)
    ```
    """
    backend = keras.backend.backend()
    if backend not in ("jax", "tensorflow"):
        return None
    full_key = (backend, key)
    compiled = _COMPILED.get(full_key)
    if compiled is None:
        if backend == "jax":
            import jax

            compiled = jax.jit(fn)
        else:
            import tensorflow as tf

            compiled = tf.function(fn, jit_compile=True, reduce_retracing=True)
        _COMPILED[full_key] = compiled
    return compiled
