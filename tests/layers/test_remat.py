"""Rematerialised blocks: same outputs, gradients and state as plain ones."""

import keras
import numpy as np
import pytest
from conftest import assert_close_gradients, sgd_step, to_numpy

from keras_vl.layers import TransformerEncoder, rematerialized_call


@pytest.fixture(scope="module")
def encoder_model():
    """Two blocks with dropout, so that the recomputation must draw the
    same masks as the first run. (A sparse MoE's routing noise, auxiliary
    losses and statistics: `tests/models/test_rematerializable.py`, whose
    LIMoE case is marked slow.)"""
    keras.utils.set_random_seed(0)
    encoder = TransformerEncoder(
        depth=2, num_heads=2, mlp_dim=16, dropout_rate=0.2
    )
    tokens = keras.Input((5, 8))
    return keras.Model(tokens, encoder(tokens)), encoder


def tokens(seed=0):
    return np.random.default_rng(seed).normal(size=(2, 5, 8)).astype("f4")


def test_remat_keeps_gradients_loss_and_state(encoder_model):
    model, encoder = encoder_model
    encoder.remat = False
    plain = sgd_step(model, tokens())
    encoder.remat = True
    remat = sgd_step(model, tokens())
    encoder.remat = False
    assert len(plain["state"]) == 4  # dropout seeds, two per block
    np.testing.assert_allclose(remat["loss"], plain["loss"], rtol=1e-6)
    assert all(np.abs(g).max() > 1e-3 for g in plain["gradients"][-2:])
    for a, b in zip(remat["gradients"], plain["gradients"], strict=True):
        assert_close_gradients(a, b)
    for a, b in zip(remat["state"], plain["state"], strict=True):
        np.testing.assert_array_equal(a, b)


def test_remat_keeps_outputs(encoder_model):
    _, encoder = encoder_model
    x = tokens(1)
    plain = to_numpy(encoder(x))
    encoder.remat = True
    try:
        remat = to_numpy(encoder(x))
    finally:
        encoder.remat = False
    np.testing.assert_allclose(remat, plain, atol=1e-6)


def test_config_round_trip_and_bad_flag():
    encoder = TransformerEncoder(depth=1, num_heads=2, mlp_dim=8, remat=True)
    config = encoder.get_config()
    assert config["remat"] is True
    assert TransformerEncoder.from_config(config).remat is True
    assert TransformerEncoder(depth=1, num_heads=2, mlp_dim=8).remat is False
    with pytest.raises(TypeError, match="`remat` must be a bool"):
        TransformerEncoder(depth=1, num_heads=2, mlp_dim=8, remat=1)


def test_unbuilt_layer_is_refused():
    layer = keras.layers.Dense(2)
    with pytest.raises(ValueError, match="must be built"):
        rematerialized_call(layer, np.zeros((1, 2), "float32"))
