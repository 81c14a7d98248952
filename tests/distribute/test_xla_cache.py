"""Tests for `cached_xla_function`."""

import itertools

import keras
import numpy as np
import pytest
from conftest import backend, to_numpy

from keras_vl.distribute.xla_cache import cached_xla_function

_KEYS = itertools.count()


def _fresh_key():
    """A key no other test used, so each test compiles its own function."""
    return ("test_xla_cache", next(_KEYS))


def _counting(traces):
    def cumulative_scaled(x):
        traces.append(tuple(x.shape))
        return keras.ops.cumsum(x, axis=-1) * 3

    return cumulative_scaled


@pytest.mark.skipif(backend() == "torch", reason="no XLA compiler on torch")
def test_compiles_once_per_key_and_matches_eager():
    traces = []
    fn = _counting(traces)
    key = _fresh_key()
    compiled = cached_xla_function(key, fn)
    assert compiled is not None
    x = np.arange(6, dtype="float32").reshape(2, 3)
    expected = np.array([[0, 3, 9], [9, 21, 36]], dtype="float32")
    np.testing.assert_array_equal(to_numpy(compiled(x)), expected)
    np.testing.assert_array_equal(to_numpy(compiled(x + 0)), expected)
    assert traces == [(2, 3)]  # Compiled once, then reused.
    np.testing.assert_array_equal(to_numpy(fn(x)), expected)

    # The same key returns the same compiled function, whatever `fn`.
    again = cached_xla_function(key, _counting([]))
    assert again is compiled
    np.testing.assert_array_equal(to_numpy(again(x)), expected)
    assert len(traces) == 2  # Only the eager call above added one.

    other = cached_xla_function(_fresh_key(), _counting([]))
    assert other is not None and other is not compiled


@pytest.mark.skipif(backend() == "torch", reason="no XLA compiler on torch")
def test_uses_the_xla_compiler():
    compiled = cached_xla_function(_fresh_key(), _counting([]))
    x = np.ones((2, 4), "float32")
    if backend() == "jax":
        text = compiled.lower(x).as_text(dialect="hlo")
    else:
        # Only `jit_compile=True` functions have an XLA compiler IR.
        text = compiled.experimental_get_compiler_ir(x)(stage="hlo")
    assert text.startswith("HloModule ")
    assert "f32[2,4]" in text
    np.testing.assert_array_equal(
        to_numpy(compiled(x)), [[3, 6, 9, 12], [3, 6, 9, 12]]
    )


@pytest.mark.skipif(backend() != "torch", reason="torch only")
def test_returns_none_without_an_xla_compiler():
    traces = []
    assert cached_xla_function(_fresh_key(), _counting(traces)) is None
    assert traces == []
