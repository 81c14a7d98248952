"""Gradient accumulation that keeps every negative equals the large batch.

`fit(..., accumulation_steps=k)` splits each batch of 8 pairs into `k`
micro-batches, embeds them without gradients, takes the whole batch's loss
from the cached embeddings and recomputes each micro-batch with gradients.
One SGD step must then give the loss, the accuracies and the updated
weights (`t` and `b` included) of the same step on the whole batch at once
(`accumulation_steps=1`), from the same initial weights, for tiny CLIPPO,
LiT and LIMoE models and both losses.

With randomness on (dropout, LIMoE's router noise), a micro-batch draws
other dropout masks and noise than the whole batch would, so the large
batch to match is one whose forward pass embeds the same micro-batches one
after the other (`_micro_batched_forward`), trained by Keras' own step
through all of them at once. Equality then shows that the recompute pass
replays the randomness its cached embeddings saw.

CI runs every case on every backend, except CLIPPO split into 4
micro-batches (one more compiled step per loss), which runs with the slow
tests on JAX and TensorFlow.
"""

import contextlib

import keras
import numpy as np
import pytest
from conftest import slow_on
from keras import ops
from model_contract import tiny_limoe_kwargs, tiny_text_kwargs, tiny_vit_kwargs

from keras_vl.layers.text_renderer import TextRenderer
from keras_vl.models import (
    Clippo,
    ClippoBackbone,
    ClippoPreprocessor,
    LIMoE,
    LIMoEBackbone,
    LiT,
    LiTBackbone,
    TextTransformer,
    ViTBackbone,
)

BATCH, SIZE, LENGTH, VOCAB = 8, 32, 8, 16
LOSS_RTOL = 1e-5
WEIGHT_TOL = 1e-5  # Relative, and absolute near 0.
# Distinct captions, longer ones cut at the 8 code points kept.
CAPTIONS = [f"caption {i}" + "!" * i for i in range(BATCH)]
HEAVY = slow_on("jax", "tensorflow")


def _clippo(loss, dropout_rate=0.0):
    vit = ViTBackbone(
        **tiny_vit_kwargs(
            pool_type="map",
            num_classes=16,
            head_zeroinit=False,
            dropout_rate=dropout_rate,
        )
    )
    backbone = ClippoBackbone(vit, TextRenderer(image_size=SIZE))
    return Clippo(backbone, ClippoPreprocessor(SIZE, LENGTH), loss=loss)


def _lit(loss):
    text = TextTransformer(
        **tiny_text_kwargs(vocab_size=VOCAB, sequence_length=LENGTH)
    )
    vit = ViTBackbone(**tiny_vit_kwargs(pool_type="gap"))
    backbone = LiTBackbone(
        vit, text, image_projection_dim=8, text_projection_dim=8
    )
    model = LiT(backbone, None, "Lu", loss)
    model.preprocessor = None  # Fed model-ready inputs.
    return model


def _limoe(loss, randomness=False):
    """A tiny LIMoE. With `randomness`, dropout and router noise are on and
    the auxiliary losses off (see `_micro_batched_forward`); without, the
    auxiliary losses are on and nothing is random."""
    moe_kwargs = {"noise_std": 0.0}
    if randomness:
        moe_kwargs = {"importance_loss_weight": 0.0, "load_loss_weight": 0.0}
    backbone = LIMoEBackbone(
        **tiny_limoe_kwargs(
            sequence_length=LENGTH,
            dropout_rate=0.2 if randomness else 0.0,
            moe_kwargs=moe_kwargs,
        )
    )
    model = LIMoE(backbone, None, loss=loss)
    model.preprocessor = None
    return model


def _data(family):
    rng = np.random.default_rng(0)
    if family == "clippo":
        pixels = rng.integers(0, 256, (BATCH, SIZE, SIZE, 3), dtype=np.uint8)
        return {"images": pixels, "texts": CAPTIONS}
    images = rng.uniform(-1, 1, (BATCH, SIZE, SIZE, 3)).astype("float32")
    tokens = rng.integers(1, VOCAB, (BATCH, LENGTH)).astype("int32")
    if family == "lit":
        return {"images": images, "token_ids": tokens}
    lengths = rng.integers(2, LENGTH + 1, BATCH)
    mask = np.arange(LENGTH)[None] < lengths[:, None]
    return {
        "images": images,
        "token_ids": np.where(mask, tokens, 0),
        "padding_mask": mask,
    }


def _initial_weights(model):
    """The weights and the non-trainable state (seed generators included,
    which `get_weights` leaves out) every step starts from."""
    model.log_temperature.assign([np.log(12.0)])
    if model.logit_bias is not None:
        model.logit_bias.assign([-4.0])
    state = [ops.convert_to_numpy(v) for v in model.non_trainable_variables]
    return model.get_weights(), state


def _one_step(model, weights, family, steps, positives=None):
    """One SGD step on the batch of 8; the logs and the new weights."""
    weights, state = weights
    model.set_weights(weights)
    for variable, value in zip(
        model.non_trainable_variables, state, strict=True
    ):
        variable.assign(value)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.1))
    keras.utils.set_random_seed(2)  # PyTorch's unseeded dropout.
    history = model.fit(
        _data(family),
        positives,
        batch_size=BATCH,
        shuffle=False,
        verbose=0,
        accumulation_steps=steps,
    )
    logs = {key: float(value[0]) for key, value in history.history.items()}
    return logs, model.get_weights()


def _assert_same_step(reference, accumulated, initial, model, logged=None):
    """The same logs (those in `logged`, or all) and the same new weights,
    which the step moved visibly (`t` included)."""
    (logs, weights), (acc_logs, acc_weights) = reference, accumulated
    assert set(acc_logs) == set(logs), (acc_logs, logs)
    for key in logged or logs:
        np.testing.assert_allclose(
            acc_logs[key], logs[key], rtol=LOSS_RTOL, atol=1e-6, err_msg=key
        )
    names = [w.path for w in model.weights]
    moved = {
        name: float(np.abs(a - b).max())
        for name, a, b in zip(names, weights, initial[0], strict=True)
    }
    assert max(moved.values()) > 1e-2, moved
    assert moved[model.log_temperature.path] > 1e-3, moved
    if model.logit_bias is not None:
        assert moved[model.logit_bias.path] > 1e-3, moved
    # Every trainable weight; the others are a locked tower's (unchanged)
    # or statistics of the last forward pass (LIMoE's routing).
    trainable = {id(w) for w in model.trainable_weights}
    for weight, a, b in zip(model.weights, weights, acc_weights, strict=True):
        if id(weight) in trainable:
            np.testing.assert_allclose(
                b, a, rtol=WEIGHT_TOL, atol=WEIGHT_TOL, err_msg=weight.path
            )


@contextlib.contextmanager
def _micro_batched_forward(model, steps):
    """Inside the block, `model`'s forward pass embeds rows `i, i + steps,
    ...` for each `i` in turn (the micro-batches of `accumulation_steps=
    steps`), so that Keras' own training step is the large-batch step with
    the micro-batches' random draws. (Each pass would replace the losses
    the previous one added: the models used here add none.)"""
    call = model.call
    parts = [np.arange(i, BATCH, steps) for i in range(steps)]
    order = np.argsort(np.concatenate(parts))

    def split_call(inputs, training=None, mask=None):
        outputs = [
            call(
                keras.tree.map_structure(
                    lambda x, rows=rows: ops.take(x, rows, axis=0), inputs
                ),
                training=training,
            )
            for rows in parts
        ]
        return keras.tree.map_structure(
            lambda *parts: ops.take(ops.concatenate(parts, 0), order, 0),
            *outputs,
        )

    model.__dict__["call"] = split_call
    try:
        yield
    finally:
        del model.__dict__["call"]


@pytest.fixture(scope="module", params=["softmax", "sigmoid"])
def clippo(request):
    """A tiny CLIPPO, its initial state and its step on the whole batch."""
    model = _clippo(request.param)
    initial = _initial_weights(model)
    return model, initial, _one_step(model, initial, "clippo", 1)


# 2 compiled steps per loss in CI (the renderer included), 3 with 4 steps.
@pytest.mark.parametrize("steps", [2, pytest.param(4, marks=HEAVY)])
def test_clippo_accumulation_equals_large_batch(clippo, steps):
    model, initial, reference = clippo
    accumulated = _one_step(model, initial, "clippo", steps)
    _assert_same_step(reference, accumulated, initial, model)


def test_lit_accumulation_with_positives_equals_large_batch():
    """LiT (locked image tower), with a positives matrix as targets whose
    extra pairs cross the micro-batches."""
    model = _lit("softmax")
    initial = _initial_weights(model)
    positives = np.eye(BATCH, dtype="int32")
    positives[[0, 1, 5, 6], [3, 2, 0, 1]] = 1
    reference = _one_step(model, initial, "lit", 1, positives)
    accumulated = _one_step(model, initial, "lit", 4, positives)
    _assert_same_step(reference, accumulated, initial, model)
    # The locked tower stays as it was.
    tower = {id(w) for w in model.backbone.image_encoder.weights}
    for weight, before, after in zip(
        model.weights, initial[0], accumulated[1], strict=True
    ):
        if id(weight) in tower:
            np.testing.assert_array_equal(after, before)


def test_limoe_averages_auxiliary_losses():
    """LIMoE's auxiliary losses (means over routing groups of one example
    each) averaged over the micro-batches: the whole batch's loss and
    gradient. The routing metrics describe the last micro-batch."""
    model = _limoe("softmax")
    initial = _initial_weights(model)
    reference = _one_step(model, initial, "limoe", 1)
    accumulated = _one_step(model, initial, "limoe", 2)
    same = ("loss", "i2t_accuracy", "t2i_accuracy", "skipped_steps")
    _assert_same_step(reference, accumulated, initial, model, same)
    # The auxiliary losses count: without them the loss would differ.
    assert reference[0]["moe_auxiliary_loss"] > 1e-4, reference[0]


def test_limoe_replays_router_noise_and_dropout():
    """Router noise and dropout on: the same step as the large batch whose
    forward pass embeds the same micro-batches, with the same draws."""
    model = _limoe("sigmoid", randomness=True)
    initial = _initial_weights(model)
    with _micro_batched_forward(model, 2):
        reference = _one_step(model, initial, "limoe", 1)
    accumulated = _one_step(model, initial, "limoe", 2)
    _assert_same_step(reference, accumulated, initial, model)


@pytest.mark.parametrize(
    "steps, batch_size, match",
    [
        (0, 8, "int >= 1"),
        (True, 8, "int >= 1"),
        (2.0, 8, "int >= 1"),
        (3, 8, "batches of 8"),
        (4, 6, "batches of 2"),  # 8 rows: batches of 6 and 2.
    ],
)
def test_bad_accumulation_steps(steps, batch_size, match):
    model = _lit("softmax")
    model.compile()
    with pytest.raises(ValueError, match=match):
        model.fit(
            _data("lit"),
            batch_size=batch_size,
            accumulation_steps=steps,
            verbose=0,
        )
