"""`write_rows`: rows written into a buffer at an index, in place on
eager torch when no gradient is recorded."""

import keras
import numpy as np
import pytest
from conftest import backend, to_numpy

from keras_vl.distribute.buffers import write_rows


def expected(index, count):
    buffer = np.zeros((2, 5, 3), "float32")
    buffer[:, index : index + count] = 1.0
    return buffer


@pytest.mark.parametrize("as_tensor", [False, True], ids=["int", "tensor"])
@pytest.mark.parametrize("count", [1, 2])
def test_writes_rows_at_index(as_tensor, count):
    buffer = keras.ops.zeros((2, 5, 3))
    index = keras.ops.convert_to_tensor(3, "int32") if as_tensor else 3
    out = write_rows(buffer, keras.ops.ones((2, count, 3)), index, axis=1)
    np.testing.assert_array_equal(to_numpy(out), expected(3, count))
    if backend() == "torch":
        assert out is buffer  # in place: no copy of the whole buffer


def test_casts_rows_to_the_buffer_dtype():
    buffer = keras.ops.zeros((2, 5, 3), "bfloat16")
    out = write_rows(buffer, keras.ops.ones((2, 1, 3)), 0, axis=1)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    np.testing.assert_array_equal(
        to_numpy(keras.ops.cast(out, "float32")), expected(0, 1)
    )


@pytest.mark.skipif(backend() != "torch", reason="torch's autograd")
def test_torch_buffer_with_gradient_is_not_touched():
    import torch

    buffer = torch.zeros(2, 5, 3, requires_grad=True)
    out = write_rows(buffer, torch.ones(2, 1, 3), 4, axis=1)
    assert out is not buffer and not buffer.detach().any()
    np.testing.assert_array_equal(out.detach().numpy(), expected(4, 1))
