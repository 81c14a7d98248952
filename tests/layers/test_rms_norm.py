"""RMSNorm: T5's layer norm, statistics in float32."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

from keras_vl.layers import RMSNorm
from keras_vl.layers.rms_norm import rms_norm


def reference(x, scale, epsilon):
    x = x.astype("float64")
    return x / np.sqrt((x**2).mean(-1, keepdims=True) + epsilon) * scale


def test_matches_formula_without_mean_or_bias():
    rng = np.random.default_rng(0)
    # A large mean: a LayerNorm would remove it, RMSNorm keeps it.
    x = (rng.normal(size=(2, 3, 8)) + 5.0).astype("float32")
    norm = RMSNorm(epsilon=1e-6)
    norm.build(x.shape)
    scale = rng.normal(size=8).astype("float32")
    norm.scale.assign(scale)
    np.testing.assert_allclose(
        to_numpy(norm(x)), reference(x, scale, 1e-6), rtol=1e-5, atol=1e-6
    )
    assert len(norm.weights) == 1  # no bias


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_float32_statistics_under_half_precision(policy):
    # Squares of 300 (9e4) overflow float16 (max 65504): computed in the
    # compute dtype the norm would be 0 or nan; in float32 it is exact.
    x = np.full((1, 2, 64), 300.0, "float32")
    x[0, 1] = np.linspace(-400, 400, 64)
    norm = RMSNorm(dtype=policy)
    out = norm(x)
    assert keras.backend.standardize_dtype(out.dtype) == policy[6:]
    out = to_numpy(keras.ops.cast(out, "float32"))
    np.testing.assert_allclose(out, reference(x, 1.0, 1e-6), rtol=1e-2)


def test_config_round_trip_and_bad_epsilon():
    norm = RMSNorm(epsilon=1e-5, name="n")
    restored = RMSNorm.from_config(norm.get_config())
    assert restored.epsilon == 1e-5 and restored.name == "n"
    with pytest.raises(ValueError, match="epsilon"):
        RMSNorm(epsilon=0.0)


def test_function_with_fetched_scale_matches_layer():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 3, 8)).astype("float32")
    scale = rng.normal(size=8).astype("float32")
    y = rms_norm(x, keras.ops.convert_to_tensor(scale), 1e-6, "float32")
    np.testing.assert_allclose(
        to_numpy(y), reference(x, scale, 1e-6), rtol=1e-5, atol=1e-6
    )
    half = rms_norm(x, keras.ops.convert_to_tensor(scale), 1e-6, "bfloat16")
    assert keras.backend.standardize_dtype(half.dtype) == "bfloat16"
