"""`batch_predictor`: the model's outputs, in inference mode, with its
current weights, traced once per input shape (runs on every backend)."""

import keras
import numpy as np
import pytest
from conftest import backend

from keras_vl.distribute.inference import batch_predictor


class CountedDense(keras.layers.Dense):
    """A Dense layer that counts its calls (traces, under a compiler)."""

    calls = 0

    def call(self, inputs):
        CountedDense.calls += 1
        return super().call(inputs)


@pytest.fixture(scope="module")
def model():
    keras.utils.set_random_seed(0)
    inputs = {
        "x": keras.Input((3,), name="x"),
        "y": keras.Input((2,), name="y"),
    }
    hidden = keras.layers.Concatenate()([inputs["x"], inputs["y"]])
    hidden = keras.layers.Dropout(0.5)(CountedDense(4)(hidden))
    outputs = {"z": keras.layers.BatchNormalization()(hidden)}
    return keras.Model(inputs, outputs)


def batch(rows, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x": rng.normal(size=(rows, 3)).astype("float32"),
        "y": rng.normal(size=(rows, 2)).astype("float32"),
    }


def test_matches_inference_call_and_follows_weights(model):
    predict = batch_predictor(model)
    inputs = batch(5)
    outputs = predict(inputs)
    assert isinstance(outputs["z"], np.ndarray)
    # Dropout off, BatchNormalization on its moving statistics.
    expected = keras.ops.convert_to_numpy(model(inputs, training=False)["z"])
    np.testing.assert_allclose(outputs["z"], expected, atol=1e-6)
    np.testing.assert_allclose(
        outputs["z"], model.predict_on_batch(inputs)["z"], atol=1e-6
    )
    dense = next(layer for layer in model.layers if "dense" in layer.name)
    old_kernel = keras.ops.convert_to_numpy(dense.kernel)
    try:
        dense.kernel.assign(2.0 * old_kernel)
        changed = predict(inputs)["z"]
        expected = model(inputs, training=False)["z"]
        np.testing.assert_allclose(
            changed, keras.ops.convert_to_numpy(expected), atol=1e-6
        )
        assert np.abs(changed - outputs["z"]).max() > 1e-3
    finally:
        dense.kernel.assign(old_kernel)


def test_one_trace_per_shape(model):
    predict = batch_predictor(model)
    before = CountedDense.calls
    for rows, seed in [(4, 0), (4, 1), (8, 2), (4, 3)]:
        predict(batch(rows, seed))
    calls = CountedDense.calls - before
    if backend() == "jax":
        assert calls == 2  # Shapes 4 and 8.
    elif backend() == "tensorflow":  # tf.function may relax the batch axis.
        assert 1 <= calls <= 2
    else:  # Eager: every call runs the layer.
        assert calls == 4


@pytest.fixture
def compiles(monkeypatch):
    """The `compiler_options` of every XLA compilation, in order."""
    import jax

    seen = []
    compile_lowered = jax.stages.Lowered.compile

    def spy(self, compiler_options=None, **kwargs):
        seen.append(compiler_options)
        return compile_lowered(
            self, compiler_options=compiler_options, **kwargs
        )

    monkeypatch.setattr(jax.stages.Lowered, "compile", spy)
    return seen


@pytest.mark.skipif(backend() != "jax", reason="XLA compile settings")
def test_small_programs_compile_quickly_first(model, compiles, monkeypatch):
    import jax

    from keras_vl.distribute import inference

    if jax.default_backend() != "cpu":
        pytest.skip("Quick compile settings are for CPUs only.")
    predict = batch_predictor(model)
    quick = [predict(batch(4, seed))["z"] for seed in range(3)]
    # Quick twice, then the full compile for a shape used often.
    assert compiles == [inference._QUICK_COMPILE, None]
    assert inference.QUICK_CALLS == 2
    # Above the FLOP bound, the full compile from the start.
    monkeypatch.setattr(inference, "QUICK_COMPILE_FLOPS", 10.0)
    predict = batch_predictor(model)
    full = [predict(batch(4, seed))["z"] for seed in range(3)]
    assert compiles == [inference._QUICK_COMPILE, None, None]
    for quick_outputs, full_outputs in zip(quick, full, strict=True):
        np.testing.assert_allclose(quick_outputs, full_outputs, atol=1e-6)


@pytest.mark.skipif(backend() != "jax", reason="keras.distribution is JAX's")
def test_a_distribution_set_later_takes_over(model, monkeypatch):
    predict = batch_predictor(model)
    inputs = batch(4)
    expected = predict(inputs)["z"]
    seen = []

    def predict_on_batch(batch):
        seen.append(batch)
        return {"z": np.zeros_like(expected)}

    monkeypatch.setattr(model, "predict_on_batch", predict_on_batch)
    with keras.distribution.DataParallel().scope():
        assert not predict(inputs)["z"].any()  # Keras' distributed path.
    assert len(seen) == 1
    np.testing.assert_array_equal(predict(inputs)["z"], expected)
