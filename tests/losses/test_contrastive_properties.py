"""Properties of the contrastive losses on random embeddings: finite,
non-negative, symmetric under swapping images and texts, and exact at
vanishing and clamped temperatures; with duplicated rows and extreme
log-temperatures and biases. Cases come from numpy generators with fixed
seeds, so every run checks the same ones."""

import math

import numpy as np
import pytest
from conftest import to_numpy

from keras_vl.losses import (
    logit_scale_from_log,
    sigmoid_contrastive_loss,
    softmax_contrastive_loss,
)

SEEDS = range(40)
LOG_SCALES = (-1e4, -30.0, 0.0, math.log(10.0), 30.0, 1e4)
MAX_SCALES = (1.0, 100.0, 1e6)
BIASES = (-1e4, -10.0, 0.0, 10.0, 1e4)


def unit_rows(rng, batch, dim):
    z = rng.normal(size=(batch, dim))
    return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype("float32")


def random_case(seed: int) -> dict:
    """Embeddings, positives, scale and bias of case `seed`: batches of 1
    to 16 pairs, some with duplicated rows (marked positive, as a batch
    with repeated captions would be), some with texts equal to images."""
    rng = np.random.default_rng(seed)
    batch, dim = int(rng.integers(1, 17)), int(rng.integers(1, 33))
    images, texts = unit_rows(rng, batch, dim), unit_rows(rng, batch, dim)
    if seed % 4 == 1:
        texts = images.copy()
    if seed % 3 == 0 and batch > 1:
        # Rows copied from the first ones: identical pairs.
        copies = rng.integers(0, batch, size=batch)
        images, texts = images[copies], texts[copies]
    same = np.all(images[:, None] == images[None], axis=-1)
    same &= np.all(texts[:, None] == texts[None], axis=-1)
    return {
        "images": images,
        "texts": texts,
        "positives": same | np.eye(batch, dtype=bool),
        "log_scale": float(rng.choice(LOG_SCALES)),
        "max_scale": float(rng.choice(MAX_SCALES)),
        "bias": float(rng.choice(BIASES)),
    }


def losses(case, swap=False):
    """(softmax, sigmoid) losses of `case` as floats, with images and
    texts (and the positives' rows and columns) swapped if `swap`."""
    images, texts = case["images"], case["texts"]
    positives = case["positives"]
    if swap:
        images, texts, positives = texts, images, positives.T
    scale = logit_scale_from_log(case["log_scale"], case["max_scale"])
    softmax = softmax_contrastive_loss(images, texts, scale, positives)
    sigmoid = sigmoid_contrastive_loss(
        images, texts, scale, case["bias"], positives
    )
    return float(to_numpy(softmax)), float(to_numpy(sigmoid))


@pytest.mark.parametrize("seed", SEEDS)
def test_losses_are_finite_non_negative_and_symmetric(seed):
    case = random_case(seed)
    forward, swapped = losses(case), losses(case, swap=True)
    assert np.isfinite(forward).all() and min(forward) >= 0.0, forward
    # The softmax loss averages both directions, the sigmoid loss sums
    # every pair: neither depends on which side holds the images.
    np.testing.assert_allclose(forward, swapped, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("seed", SEEDS)
def test_vanishing_scale_gives_the_uninformed_loss(seed):
    # exp(-1e4) is 0 in float32: every logit is the bias alone.
    case = {**random_case(seed), "log_scale": -1e4}
    positives = case["positives"]
    batch, b = len(positives), case["bias"]
    # Softmax: each row's (column's) target is spread over its positives,
    # and the model's prediction is uniform over the batch.
    expected_softmax = math.log(batch)
    # Sigmoid: log(1 + e^-b) for each positive, log(1 + e^b) otherwise.
    n_pos = positives.sum()
    expected_sigmoid = (
        n_pos * np.logaddexp(0.0, -b) + (batch**2 - n_pos) * np.logaddexp(0, b)
    ) / batch
    np.testing.assert_allclose(
        losses(case), (expected_softmax, expected_sigmoid), rtol=1e-5
    )


@pytest.mark.parametrize("max_scale", MAX_SCALES)
def test_large_log_temperature_is_clamped(max_scale):
    case = {**random_case(7), "log_scale": 1e4, "max_scale": max_scale}
    scale = float(to_numpy(logit_scale_from_log(1e4, max_scale)))
    assert scale == pytest.approx(max_scale, rel=1e-6)
    at_max = {**case, "log_scale": math.log(max_scale)}
    np.testing.assert_allclose(losses(case), losses(at_max), rtol=1e-6)
