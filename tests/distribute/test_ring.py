"""The ring sigmoid loss (`exchange="ring"`, `loss_exchange="ring"`).

On JAX, in one subprocess with 4 host devices (the device count must be
fixed before JAX starts), under `keras.distribution.DataParallel()`:

- the ring's loss equals the gathered loss (1e-6 relative) and its
  gradients with respect to the image and text embeddings, the scale and
  the bias equal the gathered ones (1e-6 absolute), for two scale/bias
  settings, with and without a positives matrix; its accuracies equal
  `contrastive_accuracy` of the whole logits, also on a
  `ModelParallel` mesh whose batch axis is 2 of the 4 devices;
- one `fit` step of a tiny LiT with `loss_exchange="ring"` reports the
  same loss and accuracies as with `"gather"` and leaves the same weights
  (1e-5), and runs the ring (not the fallback) (`make test-slow`, in a
  process of its own);
- a global batch that the devices do not divide is a clear error.

On every backend, with no distribution, `"ring"` is the plain loss, and
bad arguments are clear errors.
"""

import functools

import keras
import numpy as np
import pytest
from conftest import backend, run_on_jax_host_devices, to_numpy

from keras_vl.losses import (
    contrastive_accuracy,
    contrastive_logits,
    sigmoid_contrastive_loss,
    sigmoid_contrastive_loss_and_accuracy,
)
from keras_vl.models.contrastive import ContrastiveModel

BATCH, DIM = 16, 8
# (scale, bias): SigLIP's initial values, and a bias that makes positives
# of most pairs.
SETTINGS = ((10.0, -10.0), (3.0, 2.0))
LOSS_RTOL = 1e-6
GRAD_ATOL = 1e-6
STEP_ATOL = 1e-5


def _unit(x):
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype("float32")


def _embeddings(seed=0):
    """Texts near their images, so the accuracies are neither 0 nor 1."""
    rng = np.random.default_rng(seed)
    images = _unit(rng.normal(size=(BATCH, DIM)))
    texts = _unit(images + 0.6 * rng.normal(size=(BATCH, DIM)))
    return images, texts


def _positives(seed=1):
    rng = np.random.default_rng(seed)
    return rng.random((BATCH, BATCH)) < 0.2


# === Run in the subprocess (JAX, 4 host devices) ===


@functools.cache
def _grad_fn(exchange):
    """The jitted loss, accuracies and gradients of one exchange (traced
    once per distribution and with or without positives)."""
    import jax

    def loss_fn(img, txt, s, b, positives):
        loss, i2t, t2i = sigmoid_contrastive_loss_and_accuracy(
            img, txt, s, b, positives=positives, exchange=exchange
        )
        return loss, (i2t, t2i)

    return jax.jit(
        jax.value_and_grad(loss_fn, argnums=(0, 1, 2, 3), has_aux=True)
    )


def _loss_and_grads(exchange, images, texts, scale, bias, positives):
    (loss, accuracies), grads = _grad_fn(exchange)(
        images, texts, np.float32(scale), np.float32(bias), positives
    )
    return float(loss), [float(a) for a in accuracies], grads


def _compare_losses():
    """Ring against gather for every setting and positives case."""
    images, texts = _embeddings()
    report = {}
    for scale, bias in SETTINGS:
        for name, positives in (
            ("diagonal", None),
            ("positives", _positives()),
        ):
            ring = _loss_and_grads(
                "ring", images, texts, scale, bias, positives
            )
            gather = _loss_and_grads(
                "gather", images, texts, scale, bias, positives
            )
            expected = contrastive_accuracy(
                contrastive_logits(images, texts, scale, bias), positives
            )
            report[f"{scale}/{bias}/{name}"] = {
                "loss": [ring[0], gather[0]],
                "accuracy": [ring[1], gather[1], [float(a) for a in expected]],
                "grad_diffs": [
                    float(np.abs(np.asarray(r) - np.asarray(g)).max())
                    for r, g in zip(ring[2], gather[2], strict=True)
                ],
                "grad_sizes": [float(np.abs(g).max()) for g in gather[2]],
            }
    return report


def _tiny_lit(loss_exchange):
    from model_contract import tiny_text_kwargs, tiny_vit_kwargs

    from keras_vl.models import LiT, LiTBackbone, TextTransformer, ViTBackbone

    backbone = LiTBackbone(
        ViTBackbone(**tiny_vit_kwargs(pool_type="map")),
        TextTransformer(**tiny_text_kwargs()),
        image_projection_dim=8,
        text_projection_dim=8,
    )
    return LiT(backbone, lock="UU", loss="sigmoid", loss_exchange=loss_exchange)


def _fit_step(model, loss_exchange, weights, data, positives):
    """One SGD step of `model` from `weights`; its logs and new weights."""
    model.loss_exchange = loss_exchange  # As the constructor argument sets.
    model.train_function = None  # Traced again for the other exchange.
    model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    history = model.fit(
        data, positives, batch_size=BATCH, shuffle=False, verbose=0
    )
    logs = {k: float(v[0]) for k, v in history.history.items()}
    return logs, model.get_weights()


def _compare_fit():
    """One LiT step with each exchange, from the same weights (one model:
    building one under a distribution takes longer than its step)."""
    from keras_vl.distribute import ring

    keras.utils.set_random_seed(0)
    model = _tiny_lit("ring")
    model.log_temperature.assign([np.log(12.0)])
    model.logit_bias.assign([-4.0])
    initial = model.get_weights()
    config_exchange = model.get_config()["loss_exchange"]
    rng = np.random.default_rng(2)
    data = {
        "images": rng.integers(0, 256, (BATCH, 32, 32, 3), dtype=np.uint8),
        "texts": rng.integers(1, 16, (BATCH, 4)).astype("int32"),
    }
    positives = _positives().astype("int32")
    calls = []
    original = ring.sigmoid_ring_loss

    def counted(*args, **kwargs):
        calls.append(1)
        return original(*args, **kwargs)

    ring.sigmoid_ring_loss = counted
    try:
        ring_logs, ring_weights = _fit_step(
            model, "ring", initial, data, positives
        )
    finally:
        ring.sigmoid_ring_loss = original
    gather_logs, gather_weights = _fit_step(
        model, "gather", initial, data, positives
    )
    return {
        "config_exchange": config_exchange,
        "ring_traced": len(calls),
        "ring_logs": ring_logs,
        "gather_logs": gather_logs,
        "weight_diff": max(
            float(np.abs(a - b).max())
            for a, b in zip(ring_weights, gather_weights, strict=True)
        ),
        "weight_change": max(
            float(np.abs(a - b).max())
            for a, b in zip(gather_weights, initial, strict=True)
        ),
    }


def _uneven_batch_error():
    images, texts = _embeddings()
    try:
        sigmoid_contrastive_loss(
            images[:6], texts[:6], 10.0, -10.0, exchange="ring"
        )
    except ValueError as error:
        return str(error)
    return None


def _model_parallel_accuracy():
    """The ring over a batch axis of 2 devices of a 2 x 2 mesh."""
    mesh = keras.distribution.DeviceMesh((2, 2), ["batch", "model"])
    layout = keras.distribution.LayoutMap(mesh)
    keras.distribution.set_distribution(
        keras.distribution.ModelParallel(layout_map=layout)
    )
    _grad_fn.cache_clear()  # jit's cache does not know the distribution.
    images, texts = _embeddings(seed=3)
    positives = _positives(seed=4)
    ring = _loss_and_grads("ring", images, texts, 10.0, -10.0, positives)
    gather = _loss_and_grads("gather", images, texts, 10.0, -10.0, positives)
    return {
        "loss": [ring[0], gather[0]],
        "accuracy": [ring[1], gather[1]],
        "grad_diff": max(
            float(np.abs(np.asarray(r) - np.asarray(g)).max())
            for r, g in zip(ring[2], gather[2], strict=True)
        ),
    }


def _report(part):
    import jax

    keras.distribution.set_distribution(keras.distribution.DataParallel())
    if part == "fit":
        return {"devices": jax.device_count(), "fit": _compare_fit()}
    return {
        "devices": jax.device_count(),
        "losses": _compare_losses(),
        "uneven": _uneven_batch_error(),
        "model_parallel": _model_parallel_accuracy(),
    }


def _run_on_four_devices(part):
    """`_report(part)` in a fresh JAX process with 4 host devices."""
    return run_on_jax_host_devices(__file__, "_report", (part,), devices=4)


@pytest.fixture(scope="module")
def ring_report():
    return _run_on_four_devices("losses")


jax_only = pytest.mark.skipif(
    backend() != "jax", reason="the ring runs on JAX device meshes"
)


@jax_only
def test_ring_loss_and_gradients_equal_the_gathered_ones(ring_report):
    assert ring_report["devices"] == 4, ring_report
    cases = ring_report["losses"]
    assert len(cases) == 4, cases
    for name, case in cases.items():
        ring, gather = case["loss"]
        np.testing.assert_allclose(ring, gather, rtol=LOSS_RTOL, err_msg=name)
        # Image, text, scale and bias gradients; none is trivially zero.
        assert min(case["grad_sizes"]) > 1e-3, (name, case)
        for diff, size in zip(
            case["grad_diffs"], case["grad_sizes"], strict=True
        ):
            assert diff <= GRAD_ATOL * max(1.0, size), (name, case)
        ring_acc, gather_acc, expected = case["accuracy"]
        np.testing.assert_allclose(ring_acc, expected, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(gather_acc, expected, atol=1e-7)
        assert 0.0 < min(expected) and max(expected) < 1.0, (name, case)
    # The positives change the loss.
    losses = [cases[f"10.0/-10.0/{k}"]["loss"][1] for k in ("diagonal",)]
    assert abs(losses[0] - cases["10.0/-10.0/positives"]["loss"][1]) > 1e-2


@jax_only
def test_ring_runs_on_the_batch_axis_of_a_model_parallel_mesh(ring_report):
    case = ring_report["model_parallel"]
    np.testing.assert_allclose(*case["loss"], rtol=LOSS_RTOL)
    np.testing.assert_allclose(*case["accuracy"], atol=1e-7)
    assert case["grad_diff"] <= GRAD_ATOL * 10, case


# The LiT step needs its own process and two compiled steps (about 30 s on
# 2 cores); the loss and gradient checks above cover the ring itself.
@jax_only
@pytest.mark.slow
def test_lit_fit_step_with_the_ring_equals_the_gathered_step():
    fit = _run_on_four_devices("fit")["fit"]
    assert fit["config_exchange"] == "ring", fit
    assert fit["ring_traced"] >= 1, fit  # The ring ran, not a fallback.
    ring_logs, gather_logs = fit["ring_logs"], fit["gather_logs"]
    assert set(ring_logs) == set(gather_logs), fit
    np.testing.assert_allclose(
        ring_logs["loss"], gather_logs["loss"], rtol=STEP_ATOL
    )
    for key in ("i2t_accuracy", "t2i_accuracy"):
        assert abs(ring_logs[key] - gather_logs[key]) < 1e-6, (key, fit)
    assert fit["weight_change"] > 1e-3, fit
    assert fit["weight_diff"] <= STEP_ATOL, fit


@jax_only
def test_ring_needs_a_batch_the_devices_divide(ring_report):
    message = ring_report["uneven"]
    assert message is not None, ring_report
    assert "image_embeddings" in message and "4 devices" in message


# === Every backend, in process ===


def test_ring_without_a_distribution_is_the_plain_loss():
    images, texts = _embeddings()
    positives = _positives()
    plain = sigmoid_contrastive_loss(images, texts, 10.0, -10.0, positives)
    ring = sigmoid_contrastive_loss(
        images, texts, 10.0, -10.0, positives, exchange="ring"
    )
    np.testing.assert_allclose(to_numpy(ring), to_numpy(plain), rtol=1e-7)
    loss, i2t, t2i = sigmoid_contrastive_loss_and_accuracy(
        images, texts, 10.0, -10.0, positives, exchange="ring"
    )
    expected = contrastive_accuracy(
        contrastive_logits(images, texts, 10.0), positives
    )
    np.testing.assert_allclose(to_numpy(loss), to_numpy(plain), rtol=1e-7)
    np.testing.assert_allclose(
        [float(to_numpy(i2t)), float(to_numpy(t2i))],
        [float(to_numpy(a)) for a in expected],
        atol=1e-7,
    )


def test_bad_exchange_is_a_clear_error():
    images, texts = _embeddings()
    with pytest.raises(ValueError, match="`exchange` must be one of"):
        sigmoid_contrastive_loss(images, texts, 10.0, -10.0, exchange="ps")
    with pytest.raises(ValueError, match='needs `loss="sigmoid"`'):
        ContrastiveModel(None, loss="softmax", loss_exchange="ring")
    with pytest.raises(ValueError, match="`loss_exchange` must be one of"):
        ContrastiveModel(None, loss="sigmoid", loss_exchange="all")
