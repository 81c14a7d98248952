"""keras_vl.ops: l2_normalize and pair."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

from keras_vl.ops import l2_normalize, pair


def test_l2_normalize_matches_big_vision_rule():
    x = np.array([[3.0, 4.0], [0.0, 0.0], [1e-3, 0.0]], "float32")
    out = to_numpy(l2_normalize(x))
    # z / (||z|| + 1e-8): a zero row stays zero; the epsilon sits outside
    # the square root, so a tiny row falls just short of unit norm.
    np.testing.assert_allclose(out[0], [0.6, 0.8], atol=1e-7)
    np.testing.assert_array_equal(out[1], [0.0, 0.0])
    np.testing.assert_allclose(out[2, 0], 1e-3 / (1e-3 + 1e-8), rtol=1e-6)
    assert out.dtype == np.float32


def test_l2_normalize_keeps_the_input_dtype():
    x = keras.ops.cast(np.array([[3.0, 4.0, 12.0]], "float32"), "bfloat16")
    out = l2_normalize(x)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    np.testing.assert_allclose(
        to_numpy(keras.ops.cast(out, "float32")),
        [[3 / 13, 4 / 13, 12 / 13]],
        atol=4e-3,  # bfloat16 keeps about 3 significant digits
    )


def test_pair():
    assert pair(7, "image_size") == (7, 7)
    assert pair([16, 8], "patch_size") == (16, 8)
    assert pair(None, "image_size", allow_none=True) is None
    for bad in (0, -2, 2.5, True, (1, 2, 3), (4, "4"), None):
        with pytest.raises(ValueError, match="`image_size` must be"):
            pair(bad, "image_size")
