"""Tests for `LIMoEMoeMlp`: its entropy losses are LIMoE's formulas on the
router's own distributions, per-modality routing, and argument checks."""

import math

import keras
import numpy as np
import pytest
from conftest import to_numpy

from keras_vl.models.limoe.limoe_moe_mlp import LIMoEMoeMlp

NUM_EXPERTS = 4
WIDTH = 8


def _np_entropy(p):
    return -np.sum(p * np.log(np.where(p > 0, p, 1.0)), axis=-1)


@pytest.fixture(scope="module")
def batch():
    rng = np.random.default_rng(0)
    tokens = rng.normal(size=(2, 6, WIDTH)).astype("float32")
    modality = np.array([[0, 0, 0, 0, 1, 1]] * 2, "int32")
    mask = np.ones((2, 6), bool)
    mask[1, 5] = False  # one padded text token
    return tokens, {"mask": mask, "modality": modality}


def test_entropy_loss_is_limoe_formula(batch):
    tokens, side = batch
    keras.utils.set_random_seed(0)
    weights = {"local": (0.1, 0.2), "global": (0.3, 0.4), "tau": (1.2, 1.3)}
    layer = LIMoEMoeMlp(
        NUM_EXPERTS,
        16,
        group_size=6,
        capacity_factor=4.0,
        local_entropy_weight=weights["local"],
        global_entropy_weight=weights["global"],
        entropy_threshold=weights["tau"],
    )
    layer(tokens, side_input=side)
    assert len(layer.losses) == 2  # router auxiliary + entropy
    kernel = to_numpy(layer.router.kernel).astype(np.float64)
    logits = tokens.reshape(-1, WIDTH).astype(np.float64) @ kernel
    probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    ids, mask = side["modality"].reshape(-1), side["mask"].reshape(-1)
    expected = 0.0
    for m in (0, 1):
        chosen = probs[(ids == m) & mask]
        expected += weights["local"][m] * _np_entropy(chosen).mean()
        spread = _np_entropy(chosen.mean(axis=0))
        expected += weights["global"][m] * max(0.0, weights["tau"][m] - spread)
    total = sum(float(to_numpy(v)) for v in layer.losses)
    auxiliary = sum(float(to_numpy(v)) for v in layer.router.losses)
    np.testing.assert_allclose(total - auxiliary, expected, rtol=1e-5)


def test_statistics_are_recorded_in_training(batch):
    tokens, side = batch
    layer = LIMoEMoeMlp(NUM_EXPERTS, 16, group_size=6, capacity_factor=4.0)
    layer(tokens, side_input=side)
    assert to_numpy(layer.utilization_stat).sum() == 0  # not in inference
    layer(tokens, side_input=side, training=True)
    utilization = to_numpy(layer.utilization_stat)
    np.testing.assert_allclose(utilization.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(to_numpy(layer.dropped_stat), 0.0, atol=1e-6)
    # No entropy weight, no entropy loss.
    assert len(layer.losses) == 1


def test_per_modality_routing_matches_separate_calls(batch):
    tokens, side = batch
    split = LIMoEMoeMlp(NUM_EXPERTS, 16, group_size=4, modality_lengths=(4, 2))
    out = to_numpy(split(tokens, side_input=side))
    # Same weights, routed on each modality's tokens alone.
    alone = LIMoEMoeMlp(NUM_EXPERTS, 16, group_size=4)
    alone.build(tokens.shape)
    alone.set_weights(split.get_weights())
    for cut in (slice(0, 4), slice(4, 6)):
        part = {key: value[:, cut] for key, value in side.items()}
        np.testing.assert_allclose(
            out[:, cut],
            to_numpy(alone(tokens[:, cut], side_input=part)),
            atol=1e-6,
        )


def test_bad_arguments_are_rejected(batch):
    tokens, side = batch
    with pytest.raises(ValueError, match="entropy_threshold"):
        LIMoEMoeMlp(4, 16, 6, entropy_threshold=math.log(4) + 0.01)
    with pytest.raises(ValueError, match="local_entropy_weight"):
        LIMoEMoeMlp(4, 16, 6, local_entropy_weight=(0.1, -1.0))
    with pytest.raises(ValueError, match="global_entropy_weight"):
        LIMoEMoeMlp(4, 16, 6, global_entropy_weight=(0.1, 0.2, 0.3))
    with pytest.raises(ValueError, match="modality_lengths"):
        LIMoEMoeMlp(4, 16, 6, modality_lengths=(4,))
    layer = LIMoEMoeMlp(4, 16, 6)
    with pytest.raises(ValueError, match="side_input"):
        layer(tokens, side_input=side["mask"])


def test_config_round_trip():
    layer = LIMoEMoeMlp(
        4, 16, 6, local_entropy_weight=0.1, modality_lengths=(4, 2)
    )
    clone = LIMoEMoeMlp.from_config(layer.get_config())
    assert clone.get_config() == layer.get_config()
    assert clone.entropy_threshold == (math.log(4) / 2,) * 2
