"""Resampling learned position embeddings to another patch grid."""

import numpy as np
import pytest

from keras_vl.layers.position_embedding import (
    resample_position_embedding,
    square_grid_side,
)


def _posemb(side, width=8, prefix=0, seed=0):
    rng = np.random.default_rng(seed)
    rows = prefix + side * side
    return rng.normal(size=(1, rows, width)).astype(np.float32)


@pytest.mark.parametrize(
    "old, new",
    [(6, 24), (6, 4), (7, 5), (3, 10), (14, 24), (5, 1), (1, 3)],
    ids=[
        "up4x",
        "down",
        "down_non_integer",
        "up_non_integer",
        "14to24",
        "to1",
        "from1",
    ],
)
def test_matches_scipy_zoom_order_1(old, new):
    ndimage = pytest.importorskip("scipy.ndimage")
    posemb = _posemb(old)
    expected = ndimage.zoom(
        posemb.reshape(old, old, -1), (new / old, new / old, 1), order=1
    ).reshape(1, new * new, -1)
    resampled = resample_position_embedding(posemb, new)
    assert resampled.shape == (1, new * new, 8)
    assert resampled.dtype == np.float32
    np.testing.assert_allclose(resampled, expected, atol=1e-6, rtol=0)


def test_class_token_row_is_kept():
    ndimage = pytest.importorskip("scipy.ndimage")
    posemb = _posemb(4, prefix=1)
    resampled = resample_position_embedding(posemb, 6, num_prefix_tokens=1)
    assert resampled.shape == (1, 37, 8)
    np.testing.assert_array_equal(resampled[:, :1], posemb[:, :1])
    expected = ndimage.zoom(
        posemb[0, 1:].reshape(4, 4, -1), (1.5, 1.5, 1), order=1
    )
    np.testing.assert_allclose(
        resampled[0, 1:], expected.reshape(36, -1), atol=1e-6, rtol=0
    )


def test_rectangular_grids():
    ndimage = pytest.importorskip("scipy.ndimage")
    posemb = _posemb(4).reshape(1, 16, 8)
    grid = posemb.reshape(2, 8, 8)
    resampled = resample_position_embedding(posemb, (3, 5), old_grid=(2, 8))
    expected = ndimage.zoom(grid, (3 / 2, 5 / 8, 1), order=1)
    np.testing.assert_allclose(
        resampled, expected.reshape(1, 15, 8), atol=1e-6, rtol=0
    )


def test_same_grid_is_returned_unchanged():
    posemb = _posemb(5)
    assert resample_position_embedding(posemb, (5, 5)) is posemb


def test_corners_are_kept_and_constant_grid_stays_constant():
    posemb = _posemb(5)
    resampled = resample_position_embedding(posemb, 9).reshape(9, 9, -1)
    grid = posemb.reshape(5, 5, -1)
    for (i, j), (k, m) in [((0, 0), (0, 0)), ((-1, -1), (-1, -1))]:
        np.testing.assert_allclose(resampled[i, j], grid[k, m], atol=1e-7)
    flat = np.full((1, 9, 4), 0.25, np.float32)
    np.testing.assert_allclose(resample_position_embedding(flat, 7), 0.25)


def test_square_grid_side():
    assert square_grid_side(36) == 6
    assert square_grid_side(50, num_prefix_tokens=1) == 7
    with pytest.raises(ValueError, match="35 is not a square"):
        square_grid_side(35)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(embedding=np.zeros((36, 8))), "shape \\[1, N, D\\]"),
        (dict(embedding=np.zeros((1, 35, 8))), "not a square number"),
        (dict(new_grid=0), "`new_grid` must be a positive int"),
        (dict(old_grid=(4, 4)), "needs 16"),
        (dict(num_prefix_tokens=-1), "`num_prefix_tokens` must be >= 0"),
    ],
)
def test_bad_arguments(kwargs, message):
    arguments = {"embedding": np.zeros((1, 36, 8)), "new_grid": 4, **kwargs}
    with pytest.raises(ValueError, match=message):
        resample_position_embedding(**arguments)
