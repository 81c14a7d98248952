"""ViTBackbone: keras-hub's contract, shapes, variants, fit."""

import keras
import keras_hub
import numpy as np
import pytest
from conftest import to_numpy
from model_contract import ContractTestCase, random_images, tiny_vit_kwargs

from keras_vl.layers.transformer_encoder import ENCODER_SIZES
from keras_vl.models import ViTBackbone

TINY = dict(
    image_size=32, patch_size=8, width=32, depth=2, mlp_dim=64, num_heads=2
)


class ViTBackboneContractTest(ContractTestCase):
    def test_backbone_contract(self):
        # MAP pooling, a tanh pre-logits layer and a head: every optional
        # layer of the ViT in one tiny model.
        init_kwargs = tiny_vit_kwargs(
            pool_type="map", rep_size=True, num_classes=8, head_zeroinit=False
        )
        self.run_backbone_contract(
            ViTBackbone, init_kwargs, random_images(), (2, 8)
        )

    def test_class_token_backbone_contract(self):
        # The class token path, checked without quantization (the test
        # above covers that for every layer type the ViT has).
        self.run_backbone_test(
            ViTBackbone,
            tiny_vit_kwargs(pool_type="tok", posemb="sincos2d"),
            random_images(),
            (2, 16),
            run_quantization_check=False,
        )


@pytest.mark.parametrize(
    "pool_type, expected_shape",
    [
        ("gap", (2, 32)),
        ("map", (2, 32)),
        ("tok", (2, 32)),
        ("0", (2, 32)),
        ("none", (2, 16, 32)),
    ],
)
def test_pooling_output_shapes(pool_type, expected_shape):
    vit = ViTBackbone(**TINY, pool_type=pool_type)
    assert tuple(vit(random_images()).shape) == expected_shape


def test_head_and_rep_size():
    vit = ViTBackbone(**TINY, rep_size=24, num_classes=5, head_zeroinit=True)
    out = to_numpy(vit(random_images()))
    assert out.shape == (2, 5)
    np.testing.assert_array_equal(out, 0.0)  # zero-initialised head
    assert vit.output_dim == 5
    features = to_numpy(vit.get_layer("pre_logits").output.shape[-1:])
    assert tuple(features) == (24,)


def test_rectangular_images_and_sincos():
    vit = ViTBackbone(
        **{**TINY, "image_size": (16, 40)}, posemb="sincos2d", pool_type="map"
    )
    assert vit.grid_size == (2, 5)
    images = np.zeros((3, 16, 40, 3), "float32")
    assert tuple(vit(images).shape) == (3, 32)
    assert not any("pos_embedding" in w.path for w in vit.weights)


def test_sincos2d_matches_formula():
    from keras_vl.layers.position_embedding import sincos2d_embedding

    table = sincos2d_embedding(2, 3, 8)
    # patch (y=1, x=2), omega = [1, 1e-4]
    omega = np.array([1.0, 1e-4])
    expected = np.concatenate(
        [np.sin(2 * omega), np.cos(2 * omega), np.sin(omega), np.cos(omega)]
    )
    np.testing.assert_allclose(table[0, 5], expected, atol=1e-6)


@pytest.mark.parametrize("variant", sorted(ENCODER_SIZES))
def test_variant_table(variant):
    config = ViTBackbone.variant_config(f"{variant}/14")
    width, depth, mlp_dim, heads = ENCODER_SIZES[variant]
    assert config == dict(
        width=width,
        depth=depth,
        mlp_dim=mlp_dim,
        num_heads=heads,
        patch_size=14,
    )
    assert width % heads == 0


def test_from_variant_builds_published_sizes():
    vit = ViTBackbone.from_variant("mu/8", image_size=32)
    assert (vit.width, vit.depth, vit.mlp_dim, vit.num_heads) == (
        32,
        1,
        128,
        2,
    )
    # ViT-Ti/16 at 224 px: 5.5M parameters without a head, as published.
    ti = ViTBackbone.from_variant("Ti/16", image_size=224)
    assert 5.4e6 < ti.count_params() < 5.8e6


def test_variant_errors():
    with pytest.raises(ValueError, match="variant"):
        ViTBackbone.from_variant("Q/16")


@pytest.mark.parametrize(
    "kwargs, match",
    [
        (dict(image_size=30), "image_size"),
        (dict(image_size=0), "image_size"),
        (dict(patch_size=(8, 8, 8)), "patch_size"),
        (dict(pool_type="cls"), "pool_type"),
        (dict(posemb="rope"), "posemb"),
        (dict(num_heads=3), "num_heads"),
        (dict(image_size=4.5), "image_size"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ViTBackbone(**{**TINY, **kwargs})


def test_bad_images():
    vit = ViTBackbone(**TINY)
    with pytest.raises(ValueError, match="axis -1"):
        vit(np.zeros((2, 32, 32, 1), "float32"))
    with pytest.raises(ValueError, match="images"):
        vit(np.zeros((32, 32, 3), "float32"))


def test_generic_backbone_entry_point_finds_the_class(tmp_path):
    vit = ViTBackbone(**TINY)
    vit.save_to_preset(str(tmp_path / "vit"))
    # keras_hub's generic loader reads the class from the preset's config.
    generic = keras_hub.models.Backbone.from_preset(str(tmp_path / "vit"))
    assert isinstance(generic, ViTBackbone)
    images = random_images()
    np.testing.assert_array_equal(
        to_numpy(generic(images)), to_numpy(vit(images))
    )


def test_mixed_bfloat16_close_to_float32():
    vit = ViTBackbone(
        **TINY, pool_type="map", num_classes=4, head_zeroinit=False
    )
    mixed = ViTBackbone(
        **TINY,
        pool_type="map",
        num_classes=4,
        head_zeroinit=False,
        dtype="mixed_bfloat16",
    )
    mixed.set_weights(vit.get_weights())
    images = random_images()
    assert all(w.dtype == "float32" for w in mixed.weights)
    out = mixed(images)
    assert keras.backend.standardize_dtype(out.dtype) == "bfloat16"
    np.testing.assert_allclose(
        to_numpy(keras.ops.cast(out, "float32")),
        to_numpy(vit(images)),
        atol=0.1,
    )


def test_fit_classifier_reduces_loss():
    keras.utils.set_random_seed(0)
    vit = ViTBackbone(**TINY, num_classes=2, head_zeroinit=False)
    images = random_images(batch=16, seed=1)
    labels = (images.mean(axis=(1, 2, 3)) > 0).astype("int32")
    vit.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = vit.fit(images, labels, epochs=8, batch_size=8, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < losses[0]
