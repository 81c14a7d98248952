"""Tests for the softmax (CLIP) and sigmoid (SigLIP) contrastive losses.

Besides value parity (numpy float64, big_vision golden fixtures,
`transformers`), the distributed tests check the global-batch semantics:
one `fit` step under `tf.distribute.MirroredStrategy` (2 logical CPUs) and
under JAX `keras.distribution.DataParallel` (4 host devices) gives the loss
and updated weights of a single device on the whole batch. Those run in a
subprocess because the device layout must be fixed before the framework
initialises; the subprocess imports this file and calls the `_report_*`
functions below.
"""

import math
import os
from pathlib import Path

import keras
import numpy as np
import pytest
from conftest import (
    backend,
    load_npz,
    require_fixtures,
    run_report,
    to_numpy,
)
from keras import ops

from keras_vl.losses import (
    contrastive_accuracy,
    contrastive_logits,
    image_to_text_accuracy,
    logit_scale_from_log,
    sigmoid_contrastive_loss,
    softmax_contrastive_loss,
    text_to_image_accuracy,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


# === float64 numpy references ===


def _log_softmax(x, axis):
    x = x - x.max(axis=axis, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=axis, keepdims=True))


def _positives_or_diagonal(positives, size):
    """The boolean positives matrix the losses use: given pairs plus the
    diagonal, or the diagonal alone."""
    diagonal = np.eye(size, dtype=bool)
    if positives is None:
        return diagonal
    return np.asarray(positives, bool) | diagonal


def reference_softmax_loss(zimg, ztxt, scale, positives=None):
    logits = float(np.squeeze(scale)) * np.float64(zimg) @ np.float64(ztxt).T
    positive = _positives_or_diagonal(positives, len(logits))
    # Each row's (column's) target is uniform over its positives.
    i2t = -np.sum(
        positive / positive.sum(1, keepdims=True) * _log_softmax(logits, 1), 1
    )
    t2i = -np.sum(
        positive / positive.sum(0, keepdims=True) * _log_softmax(logits, 0), 0
    )
    return float(np.mean(0.5 * (i2t + t2i)))


def reference_sigmoid_loss(zimg, ztxt, scale, bias, positives=None):
    logits = float(np.squeeze(scale)) * np.float64(zimg) @ np.float64(ztxt).T
    logits += float(np.squeeze(bias))
    signs = 2.0 * _positives_or_diagonal(positives, len(logits)) - 1.0
    # log sigmoid(x) = -log(1 + exp(-x)), stably.
    log_sigmoid = -np.logaddexp(0.0, -signs * logits)
    return float(np.mean(-log_sigmoid.sum(axis=1)))


def _random_positives(rng, size, share=0.3):
    return rng.uniform(size=(size, size)) < share


def _unit_rows(rng, batch, dim, dtype="float32"):
    z = rng.normal(size=(batch, dim))
    return (z / np.linalg.norm(z, axis=1, keepdims=True)).astype(dtype)


# === Values ===


def test_softmax_loss_matches_big_vision_fixture():
    io = load_npz(require_fixtures("clippo") / "io.npz")
    loss = softmax_contrastive_loss(io["zimg"], io["ztxt"], io["t"])
    assert tuple(loss.shape) == ()
    np.testing.assert_allclose(to_numpy(loss), io["loss"], rtol=1e-5)
    np.testing.assert_allclose(
        reference_softmax_loss(io["zimg"], io["ztxt"], io["t"]),
        io["loss"],
        rtol=1e-6,
    )


def test_sigmoid_loss_matches_big_vision_fixture():
    io = load_npz(require_fixtures("lit") / "io.npz")
    loss = sigmoid_contrastive_loss(io["zimg"], io["ztxt"], io["t"], io["b"])
    assert tuple(loss.shape) == ()
    np.testing.assert_allclose(to_numpy(loss), io["loss"], rtol=1e-5)
    np.testing.assert_allclose(
        reference_sigmoid_loss(io["zimg"], io["ztxt"], io["t"], io["b"]),
        io["loss"],
        rtol=1e-6,
    )


def test_logits_match_big_vision_fixtures():
    clippo = load_npz(require_fixtures("clippo") / "io.npz")
    lit = load_npz(require_fixtures("lit") / "io.npz")
    np.testing.assert_allclose(
        to_numpy(contrastive_logits(clippo["zimg"], clippo["ztxt"], 10.0)),
        clippo["logits"],
        atol=1e-5,
    )
    np.testing.assert_allclose(
        to_numpy(contrastive_logits(lit["zimg"], lit["ztxt"], 10.0, -10.0)),
        lit["logits"],
        atol=1e-5,
    )


def test_fixture_scale_from_stored_log_temperature():
    io = load_npz(require_fixtures("clippo") / "io.npz")
    scale = logit_scale_from_log(io["t_parameter"])
    np.testing.assert_allclose(to_numpy(scale), io["t"][0], rtol=1e-6)
    loss = softmax_contrastive_loss(io["zimg"], io["ztxt"], scale)
    np.testing.assert_allclose(to_numpy(loss), io["loss"], rtol=1e-5)


@pytest.mark.parametrize("batch", [1, 2, 7, 32])
def test_losses_match_float64_reference(batch):
    rng = np.random.default_rng(batch)
    zimg, ztxt = _unit_rows(rng, batch, 16), _unit_rows(rng, batch, 16)
    # Make some pairs genuinely similar so both regimes are exercised.
    ztxt[: batch // 2] = zimg[: batch // 2]
    for scale, bias in [(1.0, 0.0), (10.0, -10.0), (100.0, -3.0)]:
        np.testing.assert_allclose(
            to_numpy(softmax_contrastive_loss(zimg, ztxt, scale)),
            reference_softmax_loss(zimg, ztxt, scale),
            rtol=1e-5,
            atol=1e-6,
        )
        np.testing.assert_allclose(
            to_numpy(sigmoid_contrastive_loss(zimg, ztxt, scale, bias)),
            reference_sigmoid_loss(zimg, ztxt, scale, bias),
            rtol=1e-5,
            atol=1e-6,
        )


@pytest.mark.parametrize("batch", [1, 5, 16])
def test_losses_with_positives_match_float64_reference(batch):
    rng = np.random.default_rng(100 + batch)
    zimg, ztxt = _unit_rows(rng, batch, 8), _unit_rows(rng, batch, 8)
    positives = _random_positives(rng, batch)
    for scale, bias in [(1.0, 0.0), (10.0, -10.0), (50.0, -2.0)]:
        expected_softmax = reference_softmax_loss(zimg, ztxt, scale, positives)
        expected_sigmoid = reference_sigmoid_loss(
            zimg, ztxt, scale, bias, positives
        )
        # Bool, int and float matrices mean the same.
        for mask in (positives, positives.astype("int32"), 1.0 * positives):
            np.testing.assert_allclose(
                to_numpy(softmax_contrastive_loss(zimg, ztxt, scale, mask)),
                expected_softmax,
                rtol=1e-5,
                atol=1e-6,
            )
            np.testing.assert_allclose(
                to_numpy(
                    sigmoid_contrastive_loss(zimg, ztxt, scale, bias, mask)
                ),
                expected_sigmoid,
                rtol=1e-5,
                atol=1e-6,
            )


def test_positives_change_the_loss_and_always_include_the_diagonal():
    rng = np.random.default_rng(3)
    zimg, ztxt = _unit_rows(rng, 6, 8), _unit_rows(rng, 6, 8)
    default = [
        to_numpy(softmax_contrastive_loss(zimg, ztxt, 10.0)),
        to_numpy(sigmoid_contrastive_loss(zimg, ztxt, 10.0, -5.0)),
    ]
    # The diagonal alone, given or implied, is the default.
    for mask in (np.eye(6), np.zeros((6, 6))):
        np.testing.assert_allclose(
            to_numpy(softmax_contrastive_loss(zimg, ztxt, 10.0, mask)),
            default[0],
            rtol=1e-6,
        )
        np.testing.assert_allclose(
            to_numpy(sigmoid_contrastive_loss(zimg, ztxt, 10.0, -5.0, mask)),
            default[1],
            rtol=1e-6,
        )
    # Pairs 0-3 and 3-0 become positives: both losses change.
    mask = np.zeros((6, 6), bool)
    mask[0, 3] = mask[3, 0] = True
    assert (
        abs(
            to_numpy(softmax_contrastive_loss(zimg, ztxt, 10.0, mask))
            - default[0]
        )
        > 1e-3
    )
    assert (
        abs(
            to_numpy(sigmoid_contrastive_loss(zimg, ztxt, 10.0, -5.0, mask))
            - default[1]
        )
        > 1e-3
    )


def test_losses_are_finite_for_extreme_logits():
    z = np.eye(4, 8, dtype="float32")
    # Every text is the negation of its image: logits of +-100 everywhere.
    loss = softmax_contrastive_loss(z, -z, 100.0)
    np.testing.assert_allclose(
        to_numpy(loss), reference_softmax_loss(z, -z, 100.0), rtol=1e-5
    )
    loss = sigmoid_contrastive_loss(z, -z, 100.0, 0.0)
    np.testing.assert_allclose(
        to_numpy(loss), reference_sigmoid_loss(z, -z, 100.0, 0.0), rtol=1e-5
    )


@pytest.mark.parametrize("dtype", ["float16", "bfloat16"])
def test_low_precision_inputs_are_computed_in_float32(dtype):
    rng = np.random.default_rng(0)
    zimg, ztxt = _unit_rows(rng, 8, 16), _unit_rows(rng, 8, 16)
    low_img = ops.cast(zimg, dtype)
    low_txt = ops.cast(ztxt, dtype)
    # The reference sees the same rounded inputs, so any gap would come from
    # computing the loss itself in low precision.
    zimg_r = to_numpy(ops.cast(low_img, "float32"))
    ztxt_r = to_numpy(ops.cast(low_txt, "float32"))
    scale = ops.cast(100.0, dtype)
    loss = softmax_contrastive_loss(low_img, low_txt, scale)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    np.testing.assert_allclose(
        to_numpy(loss), reference_softmax_loss(zimg_r, ztxt_r, 100.0), 1e-5
    )
    loss = sigmoid_contrastive_loss(low_img, low_txt, scale, -10.0)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    np.testing.assert_allclose(
        to_numpy(loss),
        reference_sigmoid_loss(zimg_r, ztxt_r, 100.0, -10.0),
        1e-5,
    )


def test_logit_scale_from_log():
    np.testing.assert_allclose(
        to_numpy(logit_scale_from_log(math.log(10.0))), 10.0, rtol=1e-6
    )
    # Clamped at ln 100, and (1,)-shaped parameters give a scalar.
    scale = logit_scale_from_log(np.array([7.0], "float32"))
    assert tuple(scale.shape) == ()
    np.testing.assert_allclose(to_numpy(scale), 100.0, rtol=1e-6)
    np.testing.assert_allclose(
        to_numpy(logit_scale_from_log(3.0, max_scale=5.0)), 5.0, rtol=1e-6
    )
    variable = keras.Variable(math.log(2.0))
    np.testing.assert_allclose(
        to_numpy(logit_scale_from_log(variable)), 2.0, rtol=1e-6
    )
    with pytest.raises(ValueError, match="max_scale"):
        logit_scale_from_log(0.0, max_scale=0.0)


def test_accuracy_helpers():
    logits = np.array([[2.0, 1.0, 0.0], [3.0, 0.0, 1.0], [0.0, 1.0, 5.0]])
    # Image 1 prefers text 0; texts 0 and 1 both prefer image 1.
    np.testing.assert_allclose(
        to_numpy(image_to_text_accuracy(logits)), 2 / 3, rtol=1e-6
    )
    np.testing.assert_allclose(
        to_numpy(text_to_image_accuracy(logits)), 1 / 3, rtol=1e-6
    )
    i2t, t2i = contrastive_accuracy(logits)
    np.testing.assert_allclose(to_numpy(i2t), 2 / 3, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(t2i), 1 / 3, rtol=1e-6)
    i2t, t2i = contrastive_accuracy(np.eye(4))
    assert float(to_numpy(i2t)) == 1.0 and float(to_numpy(t2i)) == 1.0
    with pytest.raises(ValueError, match="logits"):
        contrastive_accuracy(np.zeros((2, 3)))
    # Text 0 also describes image 1: image 1's pick (text 0) and text 0's
    # pick (image 1) now count; text 1 still picks image 0.
    positives = np.zeros((3, 3), bool)
    positives[1, 0] = True
    i2t, t2i = contrastive_accuracy(logits, positives)
    np.testing.assert_allclose(to_numpy(i2t), 1.0, rtol=1e-6)
    np.testing.assert_allclose(to_numpy(t2i), 2 / 3, rtol=1e-6)


# === Validation ===


@pytest.mark.parametrize(
    "zimg_shape, ztxt_shape, match",
    [
        ((4,), (4, 8), "image_embeddings"),
        ((4, 8), (4, 8, 1), "text_embeddings"),
        ((4, 8), (3, 8), "batch size"),
        ((4, 8), (4, 6), "embedding dim"),
    ],
)
def test_bad_embeddings_raise(zimg_shape, ztxt_shape, match):
    zimg = np.zeros(zimg_shape, "float32")
    ztxt = np.zeros(ztxt_shape, "float32")
    with pytest.raises(ValueError, match=match):
        softmax_contrastive_loss(zimg, ztxt, 10.0)
    with pytest.raises(ValueError, match=match):
        sigmoid_contrastive_loss(zimg, ztxt, 10.0, -10.0)


@pytest.mark.parametrize(
    "positives, error, match",
    [
        (np.eye(5, dtype=bool), ValueError, r"positives.shape=\(5, 5\)"),
        (np.ones(6, bool), ValueError, "positives"),
        (np.full((6, 6), "yes"), TypeError, "boolean or numeric"),
    ],
)
def test_bad_positives_raise(positives, error, match):
    z = np.eye(6, 8, dtype="float32")
    with pytest.raises(error, match=match):
        softmax_contrastive_loss(z, z, 10.0, positives)
    with pytest.raises(error, match=match):
        sigmoid_contrastive_loss(z, z, 10.0, -10.0, positives)


def test_non_scalar_scale_and_bias_raise():
    z = np.eye(3, 4, dtype="float32")
    with pytest.raises(ValueError, match="logit_scale"):
        softmax_contrastive_loss(z, z, np.ones((2,), "float32"))
    with pytest.raises(ValueError, match="logit_bias"):
        sigmoid_contrastive_loss(z, z, 10.0, np.ones((1, 1), "float32"))


# === Parity with transformers (tiny random models, nothing downloaded) ===


def _tiny_tower_configs():
    text = dict(
        vocab_size=64,
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        max_position_embeddings=8,
    )
    vision = dict(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=8,
        patch_size=4,
    )
    return text, vision


def _transformers_inputs(torch, batch=5):
    generator = torch.Generator().manual_seed(0)
    pixels = torch.randn(batch, 3, 8, 8, generator=generator)
    input_ids = torch.randint(2, 60, (batch, 8), generator=generator)
    return pixels, input_ids


def test_softmax_loss_matches_transformers_clip():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    text, vision = _tiny_tower_configs()
    config = transformers.CLIPConfig(
        text_config=dict(text, eos_token_id=1),
        vision_config=vision,
        projection_dim=12,
    )
    torch.manual_seed(0)
    model = transformers.CLIPModel(config).eval()
    pixels, input_ids = _transformers_inputs(torch)
    with torch.no_grad():
        out = model(input_ids=input_ids, pixel_values=pixels, return_loss=True)
        scale = model.logit_scale.exp().numpy()
    zimg, ztxt = out.image_embeds.numpy(), out.text_embeds.numpy()
    loss = softmax_contrastive_loss(zimg, ztxt, scale)
    np.testing.assert_allclose(to_numpy(loss), out.loss.numpy(), rtol=1e-5)


def test_sigmoid_loss_matches_transformers_siglip():
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    text, vision = _tiny_tower_configs()
    config = transformers.SiglipConfig(text_config=text, vision_config=vision)
    torch.manual_seed(0)
    model = transformers.SiglipModel(config).eval()
    with torch.no_grad():
        # Move away from the init so the check is not at a special point.
        model.logit_scale.fill_(math.log(7.0))
        model.logit_bias.fill_(-3.0)
        pixels, input_ids = _transformers_inputs(torch)
        out = model(input_ids=input_ids, pixel_values=pixels, return_loss=True)
        scale = model.logit_scale.exp().numpy()
        bias = model.logit_bias.numpy()
    zimg, ztxt = out.image_embeds.numpy(), out.text_embeds.numpy()
    loss = sigmoid_contrastive_loss(zimg, ztxt, scale, bias)
    np.testing.assert_allclose(to_numpy(loss), out.loss.numpy(), rtol=1e-5)


# === Gradients ===


def _value_and_grads(fn, args):
    """Loss and its gradients w.r.t. every argument (numpy float32 in),
    through the current backend's autodiff."""
    name = backend()
    if name == "jax":
        import jax

        value, grads = jax.value_and_grad(fn, argnums=tuple(range(len(args))))(
            *[jax.numpy.asarray(a) for a in args]
        )
    elif name == "tensorflow":
        import tensorflow as tf

        variables = [tf.Variable(a) for a in args]
        with tf.GradientTape() as tape:
            value = fn(*variables)
        grads = tape.gradient(value, variables)
    elif name == "torch":
        import torch

        tensors = [torch.tensor(a, requires_grad=True) for a in args]
        value = fn(*tensors)
        grads = torch.autograd.grad(value, tensors)
    else:
        pytest.skip(f"no autodiff helper for backend {name!r}")
    return float(to_numpy(value)), [np.asarray(to_numpy(g)) for g in grads]


def _numeric_grads(fn, args, eps=1e-6):
    """Central finite differences of a float64 numpy function."""
    args = [np.array(a, dtype="float64") for a in args]
    grads = []
    for a in args:
        grad = np.zeros_like(a)
        for index in np.ndindex(a.shape):
            saved = a[index]
            a[index] = saved + eps
            plus = fn(*args)
            a[index] = saved - eps
            minus = fn(*args)
            a[index] = saved
            grad[index] = (plus - minus) / (2 * eps)
        grads.append(grad)
    return grads


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_gradients_match_finite_differences(kind):
    rng = np.random.default_rng(3)
    zimg, ztxt = _unit_rows(rng, 5, 6), _unit_rows(rng, 5, 6)
    scale = np.array(7.0, "float32")
    if kind == "softmax":
        args = [zimg, ztxt, scale]
        fn, reference = softmax_contrastive_loss, reference_softmax_loss
    else:
        args = [zimg, ztxt, scale, np.array(-2.0, "float32")]
        fn, reference = sigmoid_contrastive_loss, reference_sigmoid_loss
    value, grads = _value_and_grads(fn, args)
    np.testing.assert_allclose(value, reference(*args), rtol=1e-5)
    expected = _numeric_grads(reference, args)
    names = ["zimg", "ztxt", "scale", "bias"][: len(args)]
    for name, got, want in zip(names, grads, expected, strict=True):
        assert np.all(np.isfinite(got)), name
        np.testing.assert_allclose(
            got, want, rtol=1e-4, atol=1e-5, err_msg=name
        )


# === A tiny two-tower model trained with `fit` ===


class TwoTower(keras.Model):
    """Scaffolding to exercise the losses inside `fit`: two Dense towers,
    L2-normalised embeddings, a learnable log-temperature (and bias for the
    sigmoid loss), with the losses called from `compute_loss` as a
    contrastive task would."""

    def __init__(self, kind, embed_dim=4, **kwargs):
        super().__init__(**kwargs)
        self.kind = kind
        self.image_tower = keras.layers.Dense(embed_dim, name="image_tower")
        self.text_tower = keras.layers.Dense(embed_dim, name="text_tower")

    def build(self, input_shape):
        self.image_tower.build(input_shape["images"])
        self.text_tower.build(input_shape["texts"])
        self.log_temperature = self.add_weight(
            shape=(),
            initializer=keras.initializers.Constant(math.log(10.0)),
            name="log_temperature",
        )
        if self.kind == "sigmoid":
            self.bias = self.add_weight(
                shape=(),
                initializer=keras.initializers.Constant(-10.0),
                name="bias",
            )

    def call(self, inputs):
        zimg = self.image_tower(inputs["images"])
        ztxt = self.text_tower(inputs["texts"])
        return {
            "image_embeddings": zimg / ops.norm(zimg, axis=-1, keepdims=True),
            "text_embeddings": ztxt / ops.norm(ztxt, axis=-1, keepdims=True),
        }

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        scale = logit_scale_from_log(self.log_temperature)
        if self.kind == "softmax":
            return softmax_contrastive_loss(**y_pred, logit_scale=scale)
        return sigmoid_contrastive_loss(
            **y_pred, logit_scale=scale, logit_bias=self.bias
        )


def _two_tower_data(batch=8):
    rng = np.random.default_rng(0)
    return {
        "images": rng.normal(size=(batch, 5)).astype("float32"),
        "texts": rng.normal(size=(batch, 3)).astype("float32"),
    }


def _build_two_tower(kind):
    model = TwoTower(kind)
    model.build({"images": (None, 5), "texts": (None, 3)})
    rng = np.random.default_rng(1)
    model.set_weights(
        [
            rng.normal(size=w.shape).astype("float32") if w.ndim else w
            for w in model.get_weights()
        ]
    )
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
    return model


def _fit_one_step(kind, x, strategy=None):
    """One SGD step on the whole batch; returns (reported loss, weights)."""
    if strategy is None:
        model = _build_two_tower(kind)
    else:
        with strategy.scope():
            model = _build_two_tower(kind)
    history = model.fit(
        x, batch_size=len(x["images"]), shuffle=False, verbose=0
    )
    return history.history["loss"][0], model.get_weights()


@pytest.mark.parametrize("kind", ["softmax", "sigmoid"])
def test_fit_loss_equals_reference(kind):
    x = _two_tower_data()
    model = _build_two_tower(kind)
    embeddings = model.predict(x, verbose=0)
    zimg, ztxt = embeddings["image_embeddings"], embeddings["text_embeddings"]
    if kind == "softmax":
        expected = reference_softmax_loss(zimg, ztxt, 10.0)
    else:
        expected = reference_sigmoid_loss(zimg, ztxt, 10.0, -10.0)
    loss, weights = _fit_one_step(kind, x)
    np.testing.assert_allclose(loss, expected, rtol=1e-5)
    assert all(np.all(np.isfinite(w)) for w in weights)
    # The step moved the towers.
    assert not np.allclose(weights[0], model.get_weights()[0])


# === Distributed equality (subprocesses) ===


def _max_diff(weights_a, weights_b):
    return max(
        float(np.abs(a - b).max())
        for a, b in zip(weights_a, weights_b, strict=True)
    )


def _report_tf_mirrored():
    """Runs under TF with 2 logical CPUs; see `test_tf_mirrored_strategy`."""
    import tensorflow as tf

    x = _two_tower_data()
    # One strategy for everything: separate MirroredStrategy instances in
    # one process can collide on collective keys.
    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    report = {"num_replicas": strategy.num_replicas_in_sync}
    for kind in ["softmax", "sigmoid"]:
        single_loss, single_weights = _fit_one_step(kind, x)
        loss, weights = _fit_one_step(kind, x, strategy)
        report[kind] = {
            "single_loss": single_loss,
            "mirrored_loss": loss,
            "max_weight_diff": _max_diff(single_weights, weights),
            "max_weight_change": _max_diff(
                single_weights, _build_two_tower(kind).get_weights()
            ),
        }
    report["uneven"] = _report_tf_uneven(strategy)
    return report


def _report_tf_uneven(strategy):
    """Replicas holding 4 and 3 rows: the per-replica shares sum to the
    whole-batch loss and the per-replica gradients to its gradient."""
    import tensorflow as tf

    rng = np.random.default_rng(5)
    zimg, ztxt = _unit_rows(rng, 7, 6), _unit_rows(rng, 7, 6)
    # Each replica passes its own rows of the positives matrix.
    positives = _random_positives(rng, 7)
    splits = [(0, 4), (4, 7)]

    def local(array):
        return strategy.experimental_distribute_values_from_function(
            lambda ctx: tf.constant(
                array[slice(*splits[ctx.replica_id_in_sync_group])]
            )
        )

    def step(local_img, local_txt, local_positives):
        with tf.GradientTape() as tape:
            tape.watch([local_img, local_txt])
            softmax = softmax_contrastive_loss(local_img, local_txt, 7.0)
            sigmoid = sigmoid_contrastive_loss(local_img, local_txt, 7.0, -2.0)
            softmax_p = softmax_contrastive_loss(
                local_img, local_txt, 7.0, local_positives
            )
            sigmoid_p = sigmoid_contrastive_loss(
                local_img, local_txt, 7.0, -2.0, local_positives
            )
            total = softmax + sigmoid + softmax_p + sigmoid_p
        grads = tape.gradient(total, [local_img, local_txt])
        return softmax, sigmoid, softmax_p, sigmoid_p, grads

    @tf.function
    def distributed_step(*args):
        return strategy.run(step, args=args)

    result = distributed_step(local(zimg), local(ztxt), local(positives))
    softmax, sigmoid, softmax_p, sigmoid_p, (grad_img, grad_txt) = result

    def concat(value):
        return np.concatenate(
            [t.numpy() for t in strategy.experimental_local_results(value)]
        )

    def summed(value):
        return float(strategy.reduce("SUM", value, axis=None).numpy())

    expected_softmax = reference_softmax_loss(zimg, ztxt, 7.0)
    expected_sigmoid = reference_sigmoid_loss(zimg, ztxt, 7.0, -2.0)
    total = lambda a, b: (  # noqa: E731
        reference_softmax_loss(a, b, 7.0)
        + reference_sigmoid_loss(a, b, 7.0, -2.0)
        + reference_softmax_loss(a, b, 7.0, positives)
        + reference_sigmoid_loss(a, b, 7.0, -2.0, positives)
    )
    want_img, want_txt = _numeric_grads(total, [zimg, ztxt])
    return {
        "softmax": [summed(softmax), expected_softmax],
        "sigmoid": [summed(sigmoid), expected_sigmoid],
        "softmax_positives": [
            summed(softmax_p),
            reference_softmax_loss(zimg, ztxt, 7.0, positives),
        ],
        "sigmoid_positives": [
            summed(sigmoid_p),
            reference_sigmoid_loss(zimg, ztxt, 7.0, -2.0, positives),
        ],
        "grad_img_diff": float(np.abs(concat(grad_img) - want_img).max()),
        "grad_txt_diff": float(np.abs(concat(grad_txt) - want_txt).max()),
    }


def _report_jax_data_parallel():
    """Runs under JAX with 4 host devices; see `test_jax_data_parallel`."""
    import jax

    x = _two_tower_data()
    single = {k: _fit_one_step(k, x) for k in ["softmax", "sigmoid"]}
    keras.distribution.set_distribution(keras.distribution.DataParallel())
    mesh = keras.distribution.distribution().device_mesh
    report = {"devices": jax.device_count(), "mesh": list(mesh.shape)}
    for kind in ["softmax", "sigmoid"]:
        loss, weights = _fit_one_step(kind, x)
        report[kind] = {
            "single_loss": single[kind][0],
            "distributed_loss": loss,
            "max_weight_diff": _max_diff(single[kind][1], weights),
        }
    return report


_SUBPROCESS_SCRIPT = """
import json, os, sys
sys.path[:0] = [{tests!r}, {repo!r}]
if os.environ["KERAS_BACKEND"] == "tensorflow":
    import tensorflow as tf

    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2
    )
import importlib.util

spec = importlib.util.spec_from_file_location("_contrastive", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print("REPORT " + json.dumps(getattr(module, {function!r})()))
"""


def _run_report(function, extra_env):
    script = _SUBPROCESS_SCRIPT.format(
        tests=str(REPO_ROOT / "tests"),
        repo=str(REPO_ROOT),
        path=__file__,
        function=function,
    )
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **extra_env}
    return run_report(script, env)


@pytest.mark.skipif(
    backend() != "tensorflow", reason="tf.distribute runs on TensorFlow only"
)
def test_tf_mirrored_strategy_matches_single_device():
    report = _run_report("_report_tf_mirrored", {"KERAS_BACKEND": "tensorflow"})
    assert report["num_replicas"] == 2
    for kind in ["softmax", "sigmoid"]:
        r = report[kind]
        np.testing.assert_allclose(
            r["mirrored_loss"], r["single_loss"], rtol=1e-5, err_msg=kind
        )
        # The step changes weights by O(0.1); replicas must agree to ~1e-6.
        assert r["max_weight_change"] > 1e-2, (kind, r)
        assert r["max_weight_diff"] < 1e-5, (kind, r)
    uneven = report["uneven"]
    np.testing.assert_allclose(*uneven["softmax"], rtol=1e-5)
    np.testing.assert_allclose(*uneven["sigmoid"], rtol=1e-5)
    np.testing.assert_allclose(*uneven["softmax_positives"], rtol=1e-5)
    np.testing.assert_allclose(*uneven["sigmoid_positives"], rtol=1e-5)
    assert uneven["grad_img_diff"] < 1e-4, uneven
    assert uneven["grad_txt_diff"] < 1e-4, uneven


@pytest.mark.skipif(backend() != "jax", reason="run once, on the JAX backend")
def test_jax_data_parallel_matches_single_device():
    flags = os.environ.get("XLA_FLAGS", "")
    report = _run_report(
        "_report_jax_data_parallel",
        {
            "KERAS_BACKEND": "jax",
            "XLA_FLAGS": f"{flags} --xla_force_host_platform_device_count=4",
        },
    )
    assert report["devices"] == 4 and report["mesh"] == [4], report
    for kind in ["softmax", "sigmoid"]:
        r = report[kind]
        np.testing.assert_allclose(
            r["distributed_loss"], r["single_loss"], rtol=1e-5, err_msg=kind
        )
        assert r["max_weight_diff"] < 1e-5, (kind, r)
