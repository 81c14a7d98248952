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
"""

import keras
import numpy as np
import pytest
from model_contract import tiny_limoe_kwargs, tiny_text_kwargs, tiny_vit_kwargs

from keras_vl.layers.text_renderer import TextRenderer
from keras_vl.models import (
    LIMoE,
    LIMoEBackbone,
    Clippo,
    ClippoBackbone,
    ClippoPreprocessor,
    LiT,
    LiTBackbone,
    TextTransformer,
    ViTBackbone,
)

BATCH, SIZE, LENGTH, VOCAB = 8, 32, 8, 16
LOSS_RTOL = 1e-5
WEIGHT_ATOL = 1e-5
CAPTIONS = [
    "a cat",
    "Ein Hund",
    "un oiseau bleu",
    "星空",
    "red car",
    "Привет",
    "two ships at sea",
    "x",
]


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
    backbone = LiTBackbone(vit, text, image_projection_dim=8)
    model = LiT(backbone, None, "Lu", loss)
    model.preprocessor = None  # Fed model-ready inputs.
    return model


def _limoe(loss, noise_std=0.0, dropout_rate=0.0):
    backbone = LIMoEBackbone(
        **tiny_limoe_kwargs(
            sequence_length=LENGTH,
            dropout_rate=dropout_rate,
            moe_kwargs={"noise_std": noise_std},
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
    keras.utils.set_random_seed(1)
    model.log_temperature.assign([np.log(12.0)])
    if model.logit_bias is not None:
        model.logit_bias.assign([-4.0])
    return model.get_weights()


def _one_step(model, weights, family, steps, positives=None):
    """One SGD step on the batch of 8; the logs and the new weights."""
    model.set_weights(weights)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=0.5))
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


def _assert_same_step(reference, accumulated, initial, model):
    (logs, weights), (acc_logs, acc_weights) = reference, accumulated
    assert set(acc_logs) == set(logs), (acc_logs, logs)
    for key, value in logs.items():
        np.testing.assert_allclose(
            acc_logs[key], value, rtol=LOSS_RTOL, atol=1e-6, err_msg=key
        )
    names = [w.path for w in model.weights]
    moved = {
        name: float(np.abs(a - b).max())
        for name, a, b in zip(names, weights, initial, strict=True)
    }
    # The step moves the towers and the temperature visibly...
    assert max(moved.values()) > 1e-2, moved
    assert moved[model.log_temperature.path] > 1e-3, moved
    # ...and accumulating moves every weight the same way.
    for name, a, b in zip(names, weights, acc_weights, strict=True):
        np.testing.assert_allclose(b, a, rtol=0, atol=WEIGHT_ATOL, err_msg=name)


FAMILIES = {"clippo": _clippo, "lit": _lit, "limoe": _limoe}


@pytest.fixture(scope="module", params=["softmax", "sigmoid"])
def clippo(request):
    model = _clippo(request.param)
    return model, _initial_weights(model)


@pytest.mark.parametrize("steps", [2, 4])
def test_clippo_accumulation_equals_large_batch(clippo, steps):
    model, initial = clippo
    reference = _one_step(model, initial, "clippo", 1)
    accumulated = _one_step(model, initial, "clippo", steps)
    _assert_same_step(reference, accumulated, initial, model)
