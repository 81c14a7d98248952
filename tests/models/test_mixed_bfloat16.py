"""Every model trains under `dtype="mixed_bfloat16"`: bfloat16 layers, with
the loss, softmaxes, norm statistics and temperature in float32.

Each family's tiny model is built twice from the same weights, in float32
and in mixed precision; the mixed one trains three compiled steps on one
batch (one compile per family), and its first loss, taken before any
update, must match the float32 model's within bfloat16's precision.
"""

import keras
import numpy as np
import pytest
from conftest import to_numpy
from model_contract import (
    random_images,
    tiny_limoe_kwargs,
    tiny_text_kwargs,
    tiny_vit_kwargs,
)
from pali.pali_fixtures import VOCAB, tiny_inputs, tiny_language, tiny_vision

from keras_vl.layers import TextRenderer
from keras_vl.models import (
    Clippo,
    ClippoBackbone,
    LIMoE,
    LIMoEBackbone,
    LiT,
    LiTBackbone,
    PaLI,
    PaLIBackbone,
    TextTransformer,
    ViTBackbone,
)

# bfloat16 keeps 8 bits of mantissa (~0.4% per rounding), and the
# contrastive logits multiply bfloat16 embeddings by a scale of 10: CLIPPO's
# first loss differs by 2.5% on torch.
LOSS_RTOL = 3e-2


def pooled_vit(dtype):
    return ViTBackbone(
        **tiny_vit_kwargs(
            pool_type="map", num_classes=8, head_zeroinit=False, dtype=dtype
        )
    )


def token_batch():
    token_ids = np.array([[1, 2, 3, 0], [4, 5, 0, 0]], "int32")
    return token_ids, token_ids > 0


def clippo(dtype):
    backbone = ClippoBackbone(
        pooled_vit(dtype), TextRenderer(image_size=32), dtype=dtype
    )
    codepoints = np.array([[97, 98], [99, -1]], "int32")  # "ab", "c"
    x = {
        "images": random_images(),
        "texts": codepoints,
        "image_texts": np.full((2, 2), -1, "int32"),
    }
    return Clippo(backbone), x, None


def lit(dtype):
    text = TextTransformer(**tiny_text_kwargs(num_classes=8, dtype=dtype))
    backbone = LiTBackbone(pooled_vit(dtype), text, dtype=dtype)
    token_ids, _ = token_batch()
    x = {"images": random_images(), "token_ids": token_ids}
    return LiT(backbone, lock="UU", loss="sigmoid"), x, None


def limoe(dtype):
    # No routing noise: the two models must route alike.
    kwargs = tiny_limoe_kwargs(moe_kwargs={"noise_std": 0.0}, dtype=dtype)
    token_ids, mask = token_batch()
    x = {
        "images": random_images(),
        "token_ids": token_ids,
        "padding_mask": mask,
    }
    return LIMoE(LIMoEBackbone(**kwargs)), x, None


def pali(dtype):
    backbone = PaLIBackbone(
        tiny_vision(dtype=dtype), tiny_language(dtype=dtype), dtype=dtype
    )
    x = tiny_inputs()
    y = np.random.default_rng(1).integers(1, VOCAB, (2, 5)).astype("int32")
    return PaLI(backbone, compile=False), x, y


def compile_model(model):
    # Fed model-ready batches.
    model.preprocessor = None
    if isinstance(model, PaLI):
        model.compile(optimizer=keras.optimizers.Adam(1e-3), sampler="greedy")
    else:
        model.compile(learning_rate=1e-3)


def first_loss(model, x, y):
    """The training loss at the current weights, computed eagerly."""
    y_pred = model(x, training=True)
    return model.compute_loss(x=x, y=y, y_pred=y_pred, training=True)


@pytest.mark.parametrize(
    "family",
    [clippo, lit, limoe, pali],
)
def test_trains_in_mixed_bfloat16(family):
    keras.utils.set_random_seed(0)
    reference, x, y = family(None)
    compile_model(reference)
    expected = float(to_numpy(first_loss(reference, x, y)))

    keras.utils.set_random_seed(0)
    model, _, _ = family("mixed_bfloat16")
    model.set_weights(reference.get_weights())
    compile_model(model)
    assert model.backbone.compute_dtype == "bfloat16"
    logs = [model.train_on_batch(x, y, return_dict=True) for _ in range(3)]

    losses = [log["loss"] for log in logs]
    assert np.all(np.isfinite(losses)), losses
    assert all(log.get("skipped_steps", 0) == 0 for log in logs)
    np.testing.assert_allclose(losses[0], expected, rtol=LOSS_RTOL)
    assert losses[0] != losses[2]  # the steps trained
    assert all(
        np.all(np.isfinite(to_numpy(w))) for w in model.trainable_weights
    )
    # Float32 where it must be: the loss, the master weights, and for the
    # contrastive models the temperature (and bias) and the logits.
    out = model(x, training=True)
    loss = model.compute_loss(x=x, y=y, y_pred=out, training=True)
    assert keras.backend.standardize_dtype(loss.dtype) == "float32"
    assert {w.dtype for w in model.weights} == {"float32"}
    if not isinstance(model, PaLI):
        assert model.log_temperature.dtype == "float32"
        assert (
            keras.backend.standardize_dtype(out["image_embeddings"].dtype)
            == "bfloat16"
        )
        logits = model.logits(out["image_embeddings"], out["text_embeddings"])
        assert keras.backend.standardize_dtype(logits.dtype) == "float32"
