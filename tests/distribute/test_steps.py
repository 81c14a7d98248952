"""`all_finite`: one verdict over many tensors, False when any entry of any
of them is a NaN or an infinity, on every backend (torch has its own
single-pass check)."""

import keras
import numpy as np
import pytest
from conftest import backend, to_numpy

from keras_vl.distribute import all_finite

LARGEST = np.finfo("float32").max


def tensors(bad=None, where=(1, (2, 3))):
    """Three float32 tensors of different shapes, one entry set to `bad`."""
    rng = np.random.default_rng(0)
    arrays = [
        rng.normal(size=(4, 5)).astype("float32"),
        rng.normal(size=(3, 4)).astype("float32"),
        rng.normal(size=(7,)).astype("float32"),
    ]
    if bad is not None:
        index, entry = where
        arrays[index][entry] = bad
    return [keras.ops.convert_to_tensor(a) for a in arrays]


def verdict(values):
    result = to_numpy(all_finite(values))
    assert result.shape == () and result.dtype == np.bool_
    return bool(result)


def test_finite_tensors_pass():
    assert verdict(tensors()) is True


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("where", [(0, (0, 0)), (1, (2, 3)), (2, (6,))])
def test_one_bad_entry_anywhere_fails(bad, where):
    assert verdict(tensors(bad, where)) is False


def huge(bad=None):
    """Finite entries whose sum of squares overflows float32: a norm-based
    check must not take them for infinities."""
    values = np.full((8, 8), LARGEST, "float32")
    values[1::2] *= -1
    if bad is not None:
        values[5, 6] = bad
    return keras.ops.convert_to_tensor(values)


def test_largest_finite_values_pass():
    assert verdict(tensors() + [huge(), huge()]) is True


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_bad_entry_beside_or_among_largest_values_fails(bad):
    assert verdict(tensors(bad) + [huge()]) is False
    assert verdict(tensors() + [huge(), huge(bad)]) is False


def test_none_integer_and_empty_entries_are_ignored():
    extra = [
        None,
        keras.ops.zeros((0, 3)),
        keras.ops.convert_to_tensor(np.arange(6, dtype="int32")),
    ]
    assert verdict(tensors() + extra) is True
    assert verdict(tensors(np.nan) + extra) is False
    assert verdict([None, keras.ops.zeros((0,))]) is True
    assert verdict([]) is True


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_mixed_with_float32(dtype):
    half = keras.ops.ones((5, 2), dtype)
    assert verdict(tensors() + [half]) is True
    bad = keras.ops.convert_to_tensor(
        np.array([1.0, np.inf, 2.0], "float32"), dtype
    )
    assert verdict(tensors() + [bad]) is False


@pytest.mark.skipif(backend() != "tensorflow", reason="tf.IndexedSlices")
def test_tf_indexed_slices_checked_by_their_values():
    import tensorflow as tf

    def slices(value):
        values = tf.constant([[1.0, 2.0], [3.0, value]])
        return tf.IndexedSlices(values, tf.constant([0, 5]), (1000, 2))

    assert verdict(tensors() + [slices(4.0)]) is True
    assert verdict(tensors() + [slices(np.nan)]) is False
