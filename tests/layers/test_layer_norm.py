"""LayerNorm: Keras' LayerNormalization with Flax's statistics and a
written-out gradient (runs on every backend)."""

import keras
import numpy as np
import pytest
from conftest import assert_close_gradients, sgd_step, to_numpy

from keras_vl.layers import LayerNorm


def reference(x, gamma, beta, epsilon):
    x = x.astype("float64")
    mean = x.mean(-1, keepdims=True)
    variance = x.var(-1, keepdims=True)
    return (x - mean) / np.sqrt(variance + epsilon) * gamma + beta


def random_weights(norm, rng):
    for weight in norm.weights:
        weight.assign(rng.normal(size=weight.shape).astype("float32"))


def test_matches_the_formula():
    rng = np.random.default_rng(0)
    x = (rng.normal(size=(2, 3, 16)) * 3.0 + 1.5).astype("float32")
    norm = LayerNorm(epsilon=1e-6)
    norm.build(x.shape)
    random_weights(norm, rng)
    expected = reference(x, to_numpy(norm.gamma), to_numpy(norm.beta), 1e-6)
    np.testing.assert_allclose(to_numpy(norm(x)), expected, atol=2e-5)


def dense_then_norm(norm_class, axis=-1):
    keras.utils.set_random_seed(0)
    inputs = keras.Input((5, 8))
    hidden = keras.layers.Dense(8, name="dense")(inputs)
    return keras.Model(
        inputs, norm_class(axis=axis, epsilon=1e-6, name="norm")(hidden)
    )


@pytest.mark.parametrize("axis", [-1, [1, 2]])
def test_gradients_equal_keras_layer_normalization(axis):
    # The Dense layer's gradients pass through the normalised input's.
    ours = dense_then_norm(LayerNorm, axis)
    keras_model = dense_then_norm(keras.layers.LayerNormalization, axis)
    rng = np.random.default_rng(1)
    random_weights(ours.get_layer("norm"), rng)
    keras_model.set_weights(ours.get_weights())
    x = rng.normal(size=(4, 5, 8)).astype("float32")
    step, expected = sgd_step(ours, x), sgd_step(keras_model, x)
    assert abs(step["loss"] - expected["loss"]) < 1e-5
    for actual, wanted in zip(
        step["gradients"], expected["gradients"], strict=True
    ):
        assert np.abs(wanted).max() > 0
        assert_close_gradients(actual, wanted)


@pytest.mark.parametrize("policy", ["mixed_bfloat16", "mixed_float16"])
def test_half_precision_returns_the_compute_dtype(policy):
    x = np.linspace(-300.0, 300.0, 64, dtype="float32").reshape(1, 2, 32)
    norm = LayerNorm(epsilon=1e-6, dtype=policy)
    out = norm(x)
    assert keras.backend.standardize_dtype(out.dtype) == policy[6:]
    assert keras.backend.standardize_dtype(norm.gamma.dtype) == "float32"
    np.testing.assert_allclose(
        to_numpy(keras.ops.cast(out, "float32")),
        reference(x, 1.0, 0.0, 1e-6),
        atol=2e-2,
    )


def test_config_round_trip():
    norm = LayerNorm(epsilon=1e-5, name="norm")
    restored = keras.saving.deserialize_keras_object(
        keras.saving.serialize_keras_object(norm)
    )
    assert isinstance(restored, LayerNorm)
    assert restored.epsilon == 1e-5 and restored.name == "norm"
