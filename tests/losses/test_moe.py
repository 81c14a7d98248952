"""Tests for LIMoE's per-modality entropy losses against numpy float64."""

import math

import numpy as np
import pytest
from conftest import to_numpy

from keras_vl.losses import (
    check_entropy_threshold,
    global_entropy_loss,
    local_entropy_loss,
    routing_entropy,
    thresholded_global_entropy_loss,
)

NUM_EXPERTS = 6


def _np_entropy(p):
    p = np.asarray(p, np.float64)
    logs = np.log(np.where(p > 0, p, 1.0))
    return -np.sum(p * logs, axis=-1)


def _np_losses(probs, ids, mask, modality, tau):
    keep = (ids == modality) & mask
    chosen = probs[keep].astype(np.float64)
    local = _np_entropy(chosen).mean()
    mean = chosen.mean(axis=0)
    glob = -_np_entropy(mean)
    return local, glob, max(0.0, tau + glob)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 10, NUM_EXPERTS)) * 2.0
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    ids = np.zeros((3, 10), np.int32)
    ids[:, 6:] = 1  # 6 image tokens, then 4 text tokens per example
    mask = np.ones((3, 10), bool)
    mask[:, 8:] = False  # text padding
    return probs.astype(np.float32), ids, mask


def test_routing_entropy_matches_numpy():
    p = np.array([[0.25] * 4, [1.0, 0.0, 0.0, 0.0], [0.1, 0.2, 0.3, 0.4]])
    got = to_numpy(routing_entropy(p.astype(np.float32)))
    np.testing.assert_allclose(got, _np_entropy(p), atol=1e-6)
    assert got[0] == pytest.approx(math.log(4), abs=1e-6)
    assert got[1] == 0.0


@pytest.mark.parametrize("modality", [0, 1])
def test_losses_match_numpy(batch, modality):
    probs, ids, mask = batch
    tau = math.log(NUM_EXPERTS)  # the largest allowed threshold
    local, glob, thresholded = _np_losses(probs, ids, mask, modality, tau)
    got_local = to_numpy(local_entropy_loss(probs, ids, modality, mask))
    got_global = to_numpy(global_entropy_loss(probs, ids, modality, mask))
    got_thr = to_numpy(
        thresholded_global_entropy_loss(probs, ids, modality, tau, mask)
    )
    np.testing.assert_allclose(got_local, local, rtol=1e-5)
    np.testing.assert_allclose(got_global, glob, rtol=1e-5)
    np.testing.assert_allclose(got_thr, thresholded, rtol=1e-5, atol=1e-6)
    assert thresholded > 0  # the threshold is active in this case


def test_masked_tokens_are_excluded(batch):
    probs, ids, mask = batch
    # Arbitrary changes to masked tokens change nothing ...
    changed = probs.copy()
    changed[~mask] = np.eye(NUM_EXPERTS)[0]
    for fn in (local_entropy_loss, global_entropy_loss):
        a = to_numpy(fn(probs, ids, 1, mask))
        b = to_numpy(fn(changed, ids, 1, mask))
        assert a == pytest.approx(float(b), abs=1e-6)
        # ... while without the mask they do count.
        c = to_numpy(fn(changed, ids, 1))
        assert abs(float(c) - float(a)) > 1e-3
    # Same as dropping the masked tokens altogether.
    keep = mask[0]
    np.testing.assert_allclose(
        to_numpy(local_entropy_loss(probs, ids, 1, mask)),
        to_numpy(
            local_entropy_loss(probs[:, keep], ids[:, keep], 1, mask[:, keep])
        ),
        rtol=1e-6,
    )


def test_other_modality_does_not_count(batch):
    probs, ids, mask = batch
    changed = probs.copy()
    changed[ids == 1] = np.eye(NUM_EXPERTS)[2]
    for fn in (local_entropy_loss, global_entropy_loss):
        assert float(to_numpy(fn(probs, ids, 0, mask))) == pytest.approx(
            float(to_numpy(fn(changed, ids, 0, mask))), abs=1e-6
        )


def test_extreme_routings():
    ids = np.zeros((4,), np.int32)
    uniform = np.full((4, 4), 0.25, np.float32)
    one_expert = np.tile(np.eye(4, dtype=np.float32)[1], (4, 1))
    spread = np.eye(4, dtype=np.float32)
    ln4 = math.log(4)
    assert float(to_numpy(local_entropy_loss(uniform, ids, 0))) == (
        pytest.approx(ln4, abs=1e-6)
    )
    assert float(to_numpy(local_entropy_loss(spread, ids, 0))) == 0.0
    assert float(to_numpy(global_entropy_loss(spread, ids, 0))) == (
        pytest.approx(-ln4, abs=1e-6)
    )
    assert float(to_numpy(global_entropy_loss(one_expert, ids, 0))) == 0.0
    # Collapsed onto one expert: the full threshold is the loss.
    assert float(
        to_numpy(thresholded_global_entropy_loss(one_expert, ids, 0, 1.0))
    ) == pytest.approx(1.0, abs=1e-6)
    # Spread over all experts: above the threshold, no loss.
    assert (
        float(to_numpy(thresholded_global_entropy_loss(spread, ids, 0, 1.0)))
        == 0.0
    )


def test_absent_modality_gives_zero(batch):
    probs, ids, mask = batch
    for fn in (local_entropy_loss, global_entropy_loss):
        assert float(to_numpy(fn(probs, ids, 5, mask))) == 0.0
    assert (
        float(to_numpy(thresholded_global_entropy_loss(probs, ids, 5, 1.0)))
        == 0.0
    )


def test_zero_probabilities_give_finite_losses():
    probs = np.array([[1.0, 0.0], [0.0, 1.0]], np.float32)
    ids = np.zeros((2,), np.int32)
    assert float(to_numpy(local_entropy_loss(probs, ids, 0))) == 0.0
    glob = float(to_numpy(global_entropy_loss(probs, ids, 0)))
    assert glob == pytest.approx(-math.log(2), abs=1e-6)


@pytest.mark.parametrize("tau", [-0.1, math.log(NUM_EXPERTS) + 0.01])
def test_threshold_outside_range_is_rejected(batch, tau):
    probs, ids, mask = batch
    with pytest.raises(ValueError, match="threshold"):
        thresholded_global_entropy_loss(probs, ids, 0, tau, mask)
    with pytest.raises(ValueError, match="tau_image"):
        check_entropy_threshold(tau, NUM_EXPERTS, name="tau_image")


def test_threshold_bounds_are_accepted():
    assert check_entropy_threshold(0, 8) == 0.0
    assert check_entropy_threshold(math.log(8), 8) == math.log(8)
    with pytest.raises(TypeError, match="threshold"):
        check_entropy_threshold("1", 8)


def test_shape_mismatch_is_rejected(batch):
    probs, ids, mask = batch
    with pytest.raises(ValueError, match="modality_ids"):
        local_entropy_loss(probs, ids[:, :5], 0)
    with pytest.raises(ValueError, match="token_mask"):
        global_entropy_loss(probs, ids, 0, mask[:2])
