"""`remat` on the backbones: same gradients, loss and state; config round
trips; composites set it on their parts."""

import keras
import numpy as np
import pytest
from conftest import assert_close_gradients, sgd_step
from model_contract import random_images, tiny_limoe_kwargs, tiny_vit_kwargs
from pali.pali_fixtures import tiny_backbone, tiny_inputs

from keras_vl.models import (
    ClippoBackbone,
    LIMoEBackbone,
    LiTBackbone,
    PaLIBackbone,
    TextTransformer,
    ViTBackbone,
)


@pytest.fixture(autouse=True)
def same_weights_whatever_ran_before():
    # TensorFlow's rounding inside `recompute_grad` depends on the weights:
    # with others it reached 2e-6 on the loss.
    keras.utils.set_random_seed(0)


def assert_same_step(model, inputs, run=None):
    """One SGD step of `run` (default `model`) with `model.remat` off and
    on."""
    run = run or model
    model.remat = False
    plain = sgd_step(run, inputs)
    model.remat = True
    remat = sgd_step(run, inputs)
    np.testing.assert_allclose(remat["loss"], plain["loss"], rtol=1e-6)
    assert max(np.abs(g).max() for g in plain["gradients"]) > 1e-3
    for a, b in zip(remat["gradients"], plain["gradients"], strict=True):
        assert_close_gradients(a, b)
    for a, b in zip(remat["state"], plain["state"], strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    return plain


def test_limoe_keeps_routing_noise_aux_losses_and_statistics():
    backbone = LIMoEBackbone(**tiny_limoe_kwargs(dropout_rate=0.1))
    token_ids = np.array([[1, 2, 3, 0], [4, 5, 0, 0]], "int32")
    inputs = {
        "images": random_images(),
        "token_ids": token_ids,
        "padding_mask": token_ids > 0,
    }
    plain = assert_same_step(backbone, inputs)
    # Routing statistics are among the state compared above.
    assert any(s.dtype.kind == "f" for s in plain["state"])


def test_pali_keeps_gradients_of_both_stacks():
    assert_same_step(tiny_backbone(), tiny_inputs())


def test_clippo_keeps_gradients_of_its_shared_vit():
    backbone = ClippoBackbone.from_variant(
        "mu/16", image_size=32, out_dim=8, remat=True
    )
    assert backbone.vision_encoder.remat is True
    codepoints = np.array([[97, 98], [99, -1]], "int32")
    inputs = {
        "images": random_images(),
        "texts": codepoints,
        "image_texts": np.full((2, 2), -1, "int32"),
    }
    assert_same_step(backbone.vision_encoder, inputs, backbone)


@pytest.mark.parametrize(
    "cls, kwargs",
    [
        (ViTBackbone, tiny_vit_kwargs()),
        (
            TextTransformer,
            dict(
                vocab_size=8, sequence_length=4, width=8, depth=1, num_heads=2
            ),
        ),
        (LIMoEBackbone, tiny_limoe_kwargs()),
    ],
)
def test_config_round_trip(cls, kwargs):
    backbone = cls(**kwargs, remat=True)
    assert backbone.remat is True
    config = backbone.get_config()
    assert config["remat"] is True
    assert cls.from_config(config).remat is True
    assert cls(**kwargs).get_config()["remat"] is False


def test_composites_set_their_parts_and_round_trip():
    vit = ViTBackbone(**tiny_vit_kwargs(num_classes=8))
    text = TextTransformer(
        vocab_size=8,
        sequence_length=4,
        width=8,
        depth=1,
        num_heads=2,
        num_classes=8,
    )
    lit = LiTBackbone(vit, text, remat=True)
    assert vit.remat and text.remat and lit.get_config()["remat"] is True
    assert LiTBackbone.from_config(lit.get_config()).remat is True
    lit.remat = False
    assert not vit.remat and not text.remat

    pali = tiny_backbone(remat=True)
    assert [s.remat for s in pali.remat_stacks] == [True] * 3
    clone = PaLIBackbone.from_config(pali.get_config())
    assert [s.remat for s in clone.remat_stacks] == [True] * 3
    # None keeps each part's own setting.
    pali.language_model.remat = False
    assert pali.remat is None
    clone = PaLIBackbone.from_config(pali.get_config())
    assert [s.remat for s in clone.remat_stacks] == [True, False, False]


def test_bad_remat_is_refused():
    with pytest.raises(TypeError, match="`remat` must be a bool or None"):
        tiny_backbone(remat="yes")
    with pytest.raises(TypeError, match="`remat` must be a bool"):
        ViTBackbone(**tiny_vit_kwargs(), remat=None)
