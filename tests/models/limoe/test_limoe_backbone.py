"""Tests for `LIMoEBackbone`: shapes, config, MoE placement, attention
isolation between modalities, and keras-hub's backbone contract."""

import math

import numpy as np
import pytest
from conftest import to_numpy
from model_contract import ContractTestCase
from model_contract import random_images as images
from model_contract import tiny_limoe_kwargs as tiny_kwargs

from keras_vl.models.limoe.limoe_backbone import (
    LIMoEBackbone,
    moe_layer_indices,
)
from keras_vl.models.limoe.limoe_moe_mlp import LIMoEMoeMlp

SEQUENCE_LENGTH = 4


def inputs(token_ids=None, seed=0) -> dict:
    if token_ids is None:
        token_ids = [[1, 2, 3, 0], [4, 5, 0, 0]]
    token_ids = np.asarray(token_ids, "int32")
    return {
        "images": images(seed=seed),
        "token_ids": token_ids,
        "padding_mask": token_ids > 0,
    }


@pytest.fixture(scope="module")
def roomy():
    """Capacity for every token: routing has no capacity pressure."""
    return LIMoEBackbone(**tiny_kwargs(capacity_factor=4.0))


def test_outputs_are_unit_embeddings(roomy):
    out = roomy(inputs())
    for name in ("image_embeddings", "text_embeddings"):
        z = to_numpy(out[name])
        assert z.shape == (2, 8)
        np.testing.assert_allclose(np.linalg.norm(z, axis=-1), 1.0, atol=1e-5)


def test_config_round_trip(roomy):
    clone = LIMoEBackbone.from_config(roomy.get_config())
    clone.set_weights(roomy.get_weights())
    a, b = roomy(inputs()), clone(inputs())
    for name in a:
        np.testing.assert_allclose(to_numpy(a[name]), to_numpy(b[name]))
    assert clone.get_config() == roomy.get_config()


def test_moe_placement_in_the_backbone(roomy):
    kinds = [type(block.mlp).__name__ for block in roomy.encoder.blocks]
    assert kinds == ["MlpBlock", "LIMoEMoeMlp"]
    assert [type(m) for m in roomy.moe_mlps] == [LIMoEMoeMlp]
    # Joint routing: one example's image and text tokens share a group.
    assert roomy.moe_mlps[0].group_size == 4 + SEQUENCE_LENGTH


@pytest.mark.parametrize(
    "spec, expected",
    [
        ("every_2", [1, 3, 5]),
        ("every_3", [2, 5]),
        ("every_1", [0, 1, 2, 3, 4, 5]),
        ("last_2", [4, 5]),
        ([0, 4], [0, 4]),
        ((5, 2), [2, 5]),
    ],
)
def test_moe_layer_indices(spec, expected):
    assert moe_layer_indices(spec, 6) == expected


@pytest.mark.parametrize(
    "spec",
    ["every_0", "every", "last_7", "first_2", "every_2x", [1, 1], [6], 3],
)
def test_bad_moe_layers_are_rejected(spec):
    with pytest.raises(ValueError, match="moe_layers"):
        moe_layer_indices(spec, 6)


def test_bad_arguments_are_rejected():
    with pytest.raises(ValueError, match="moe_layers"):
        LIMoEBackbone(**tiny_kwargs(moe_layers="sometimes"))
    with pytest.raises(ValueError, match="entropy_threshold"):
        LIMoEBackbone(**tiny_kwargs(entropy_threshold=math.log(4) + 0.1))
    with pytest.raises(ValueError, match="entropy_threshold"):
        LIMoEBackbone(**tiny_kwargs(entropy_threshold=(0.5, -1.0)))
    with pytest.raises(ValueError, match="text_pool"):
        LIMoEBackbone(**tiny_kwargs(text_pool="cls"))
    with pytest.raises(ValueError, match="image_size"):
        LIMoEBackbone(**tiny_kwargs(image_size=40))


def test_batch_size_mismatch_is_rejected(roomy):
    x = inputs()
    x["images"] = images(batch=3)
    with pytest.raises(ValueError, match="same batch size"):
        roomy(x)


def test_single_modality_encoders_match_the_joint_pass(roomy):
    joint = roomy(inputs())
    np.testing.assert_allclose(
        to_numpy(roomy.embed_images(inputs()["images"])),
        to_numpy(joint["image_embeddings"]),
        atol=1e-6,
    )
    np.testing.assert_allclose(
        to_numpy(roomy.embed_texts(inputs())),
        to_numpy(joint["text_embeddings"]),
        atol=1e-6,
    )


def test_texts_do_not_change_image_embeddings(roomy):
    base = roomy(inputs())
    other = roomy(inputs([[7, 8, 9, 10], [11, 0, 0, 0]]))
    np.testing.assert_allclose(
        to_numpy(base["image_embeddings"]),
        to_numpy(other["image_embeddings"]),
        atol=1e-6,
    )
    # The texts themselves did change.
    diff = to_numpy(base["text_embeddings"] - other["text_embeddings"])
    assert np.abs(diff).max() > 1e-3


def test_images_and_padding_do_not_change_text_embeddings(roomy):
    base = roomy(inputs())
    changed = inputs([[1, 2, 3, 9], [4, 5, 12, 13]], seed=1)
    changed["padding_mask"] = inputs()["padding_mask"]  # same real tokens
    other = roomy(changed)
    np.testing.assert_allclose(
        to_numpy(base["text_embeddings"]),
        to_numpy(other["text_embeddings"]),
        atol=1e-6,
    )
    diff = to_numpy(base["image_embeddings"] - other["image_embeddings"])
    assert np.abs(diff).max() > 1e-3


def test_joint_routing_shares_capacity():
    """With one slot per expert and group, texts compete with images:
    changing the texts changes which image tokens keep a slot."""
    tight = LIMoEBackbone(
        **tiny_kwargs(
            capacity_factor=0.5,
            moe_kwargs={"capacity_multiple_of": None},
        )
    )
    per_modality = LIMoEBackbone(
        **tiny_kwargs(
            capacity_factor=0.5,
            joint_routing=False,
            moe_kwargs={"capacity_multiple_of": None},
        )
    )
    per_modality.set_weights(tight.get_weights())
    rng = np.random.default_rng(3)
    outputs = {"joint": [], "separate": []}
    for _ in range(4):
        ids = rng.integers(1, 16, (2, SEQUENCE_LENGTH)).astype("int32")
        x = inputs(ids)
        outputs["joint"].append(to_numpy(tight(x)["image_embeddings"]))
        outputs["separate"].append(
            to_numpy(per_modality(x)["image_embeddings"])
        )
    joint = np.abs(np.diff(np.stack(outputs["joint"]), axis=0)).max()
    separate = np.abs(np.diff(np.stack(outputs["separate"]), axis=0)).max()
    assert separate < 1e-6  # own groups: texts cannot take image slots
    assert joint > 1e-4


def test_entropy_losses_are_added():
    backbone = LIMoEBackbone(
        **tiny_kwargs(local_entropy_weight=0.1, global_entropy_weight=0.1)
    )
    backbone(inputs())
    (moe,) = backbone.moe_mlps
    assert len(backbone.losses) == 2  # router auxiliary + entropy
    total = sum(float(to_numpy(v)) for v in backbone.losses)
    auxiliary = sum(float(to_numpy(v)) for v in moe.router.losses)
    # Local entropy of a near-uniform router alone is about 0.1 * ln 4.
    assert total - auxiliary > 0.05


class LIMoEBackboneContractTest(ContractTestCase):
    def test_backbone_contract(self):
        self.run_backbone_contract(
            LIMoEBackbone,
            tiny_kwargs(local_entropy_weight=0.01),
            inputs(),
            {"image_embeddings": (2, 8), "text_embeddings": (2, 8)},
            # The text length is fixed (learned positions).
            variable_length_data=[inputs()],
        )
