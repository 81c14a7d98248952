"""Tests for the tracing helpers: `is_tracing`, `constant_outside_trace`."""

import keras
import numpy as np
from conftest import backend, to_numpy

from keras_vl.distribute.tracing import constant_outside_trace, is_tracing


def _run_traced(fn, x, fullgraph=True):
    """Runs `fn(x)` traced by the active backend's compiler entry point
    (`fullgraph`: torch must trace all of `fn`, no graph breaks)."""
    if backend() == "jax":
        import jax

        return jax.jit(fn)(x)
    if backend() == "tensorflow":
        import tensorflow as tf

        return tf.function(fn)(x)
    import torch

    # The "eager" compiler backend traces like any other but needs no
    # C++ toolchain.
    return torch.compile(fn, backend="eager", fullgraph=fullgraph)(x)


def test_is_tracing_is_false_in_eager_code():
    x = keras.ops.arange(3)
    assert is_tracing(x) is False
    assert is_tracing() is False
    assert is_tracing(np.zeros(2), 3, "not a tensor") is False


def test_is_tracing_is_true_under_the_backend_compiler():
    seen = []

    def fn(x):
        seen.append(is_tracing(x))
        return x * 2

    x = keras.ops.convert_to_tensor(np.arange(4, dtype="float32"))
    result = _run_traced(fn, x)
    np.testing.assert_array_equal(to_numpy(result), [0.0, 2.0, 4.0, 6.0])
    assert seen == [True]
    assert is_tracing(x) is False  # And false again afterwards.


def test_constant_outside_trace_values_and_dtype():
    value = np.array([[1, 2], [3, 4]], dtype="int32")
    tensor = constant_outside_trace(value)
    assert keras.backend.standardize_dtype(tensor.dtype) == "int32"
    np.testing.assert_array_equal(to_numpy(tensor), value)
    as_float = constant_outside_trace(value, dtype="float32")
    assert keras.backend.standardize_dtype(as_float.dtype) == "float32"
    np.testing.assert_array_equal(to_numpy(as_float), value.astype("float32"))
    assert not is_tracing(tensor)


def test_constant_made_inside_a_trace_outlives_it():
    kept = []

    def fn(x):
        table = constant_outside_trace(np.array([10, 20, 30], dtype="int32"))
        kept.append(table)
        return keras.ops.take(table, x)

    x = keras.ops.convert_to_tensor(np.array([2, 0], dtype="int32"))
    # Dynamo cannot trace the numpy array, so torch may break the graph.
    result = _run_traced(fn, x, fullgraph=False)
    np.testing.assert_array_equal(to_numpy(result), [30, 10])
    # Usable eagerly after the trace ended: a concrete tensor, not a value
    # of the traced program (a leaked JAX tracer or TF graph tensor would
    # raise here).
    assert len(kept) == 1
    np.testing.assert_array_equal(to_numpy(kept[0]), [10, 20, 30])
    np.testing.assert_array_equal(
        to_numpy(keras.ops.take(kept[0], x) + 1), [31, 11]
    )
