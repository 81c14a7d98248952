"""`from_preset(..., image_size=)`: a preset loaded at another resolution,
its learned position embeddings resampled as big_vision does."""

import keras
import keras_hub
import numpy as np
import pytest
from conftest import to_numpy
from model_contract import tiny_text_kwargs, tiny_vit_kwargs

from keras_vl.layers.position_embedding import (
    resample_position_embedding,
    sincos2d_embedding,
)
from keras_vl.models import (
    Clippo,
    ClippoBackbone,
    LiT,
    LiTBackbone,
    LiTPreprocessor,
    TextTransformer,
    ViTBackbone,
)
from keras_vl.models.resolution import with_image_size

SAVED, NEW, PATCH = 32, 48, 8  # A 4 x 4 patch grid becomes 6 x 6.
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "red", "blue", "circle"]


def tiny_vit(**overrides):
    return ViTBackbone(
        **tiny_vit_kwargs(image_size=SAVED, patch_size=PATCH, **overrides)
    )


def posemb_of(vit):
    return to_numpy(vit.position_embedding.embedding)


def assert_same_weights(a, b):
    for x, y in zip(a.weights, b.weights, strict=True):
        np.testing.assert_array_equal(to_numpy(x), to_numpy(y))


def assert_resampled(vit, saved, grid):
    """`vit` holds `saved`'s weights, its position embedding resampled."""
    ndimage = pytest.importorskip("scipy.ndimage")
    old = saved.grid_size
    expected = ndimage.zoom(
        posemb_of(saved).reshape(*old, -1),
        (grid[0] / old[0], grid[1] / old[1], 1),
        order=1,
    ).reshape(1, grid[0] * grid[1], -1)
    np.testing.assert_allclose(posemb_of(vit), expected, atol=1e-6, rtol=0)
    np.testing.assert_array_equal(
        posemb_of(vit), resample_position_embedding(posemb_of(saved), grid)
    )
    for new, old_weight in zip(vit.weights, saved.weights, strict=True):
        if new is not vit.position_embedding.embedding:
            np.testing.assert_array_equal(to_numpy(new), to_numpy(old_weight))


@pytest.fixture(scope="module")
def presets(tmp_path_factory):
    root = tmp_path_factory.mktemp("resolution")
    keras.utils.set_random_seed(0)
    vit = tiny_vit(pool_type="tok", num_classes=8, head_zeroinit=False)
    vit.save_to_preset(str(root / "vit"))
    clippo = Clippo(
        ClippoBackbone(tiny_vit(pool_type="map", num_classes=8)),
        temperature_init=7.0,
    )
    clippo.save_to_preset(str(root / "clippo"))
    tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=VOCAB)
    lit = LiT(
        LiTBackbone(
            tiny_vit(pool_type="gap"),
            TextTransformer(**tiny_text_kwargs(vocab_size=len(VOCAB))),
            image_projection_dim=8,
            text_projection_dim=8,
        ),
        LiTPreprocessor(tokenizer, sequence_length=4, image_size=SAVED),
        lock="LU",
    )
    lit.save_to_preset(str(root / "lit"))
    return {"vit": vit, "clippo": clippo, "lit": lit, "root": root}


def test_vit_preset_at_a_larger_size(presets):
    saved = presets["vit"]
    vit = ViTBackbone.from_preset(str(presets["root"] / "vit"), image_size=NEW)
    assert vit.image_size == (NEW, NEW)
    assert vit.grid_size == (6, 6)
    assert_resampled(vit, saved, (6, 6))
    out = to_numpy(vit(np.ones((2, NEW, NEW, 3), "float32")))
    assert out.shape == (2, 8)
    assert np.isfinite(out).all()


def test_vit_preset_at_a_smaller_rectangular_size(presets):
    vit = ViTBackbone.from_preset(
        str(presets["root"] / "vit"), image_size=(24, 40)
    )
    assert vit.grid_size == (3, 5)
    assert_resampled(vit, presets["vit"], (3, 5))
    assert to_numpy(vit(np.zeros((1, 24, 40, 3)))).shape == (1, 8)


def test_saved_size_is_a_no_op(presets):
    root = presets["root"]
    for cls, name in (
        (ViTBackbone, "vit"),
        (ClippoBackbone, "clippo"),
        (Clippo, "clippo"),
        (LiTBackbone, "lit"),
        (LiT, "lit"),
    ):
        plain = cls.from_preset(str(root / name))
        same = cls.from_preset(str(root / name), image_size=SAVED)
        assert same.get_config() == plain.get_config()
        assert_same_weights(same, plain)
    vit = presets["vit"]
    assert with_image_size(vit, (SAVED, SAVED)) is vit


def test_sincos2d_embedding_is_rebuilt(tmp_path):
    tiny_vit(posemb="sincos2d", width=16).save_to_preset(str(tmp_path))
    vit = ViTBackbone.from_preset(str(tmp_path), image_size=NEW)
    np.testing.assert_array_equal(
        vit.position_embedding.embedding, sincos2d_embedding(6, 6, 16)
    )
    assert to_numpy(vit(np.zeros((1, NEW, NEW, 3)))).shape == (1, 16)


def test_clippo_backbone_and_task(presets):
    root, saved = presets["root"], presets["clippo"]
    saved_vit = saved.backbone.vision_encoder
    backbone = ClippoBackbone.from_preset(str(root / "clippo"), image_size=NEW)
    assert backbone.image_size == NEW
    assert backbone.text_renderer.image_size == NEW
    assert_resampled(backbone.vision_encoder, saved_vit, (6, 6))

    model = Clippo.from_preset(str(root / "clippo"), image_size=NEW)
    assert model.backbone.image_size == NEW
    assert model.preprocessor.image_size == NEW
    assert model.backbone.text_renderer.image_size == NEW
    assert_resampled(model.backbone.vision_encoder, saved_vit, (6, 6))
    np.testing.assert_allclose(
        to_numpy(model.log_temperature), to_numpy(saved.log_temperature)
    )
    pixels = np.random.default_rng(0).integers(0, 256, (2, 20, 20, 3))
    images = model.preprocessor(
        {"images": pixels.astype("uint8"), "texts": ["", ""]}
    )["images"]
    assert tuple(images.shape) == (2, NEW, NEW, 3)
    assert model.encode_images(pixels.astype("uint8")).shape == (2, 8)
    assert model.encode_texts(["a red circle"]).shape == (1, 8)


def test_lit_backbone_and_task(presets):
    root, saved = presets["root"], presets["lit"]
    saved_vit = saved.backbone.image_encoder
    backbone = LiTBackbone.from_preset(str(root / "lit"), image_size=NEW)
    assert backbone.image_size == (NEW, NEW)
    assert_resampled(backbone.image_encoder, saved_vit, (6, 6))

    model = LiT.from_preset(str(root / "lit"), image_size=NEW)
    assert model.lock == "LU"
    assert model.backbone.image_size == (NEW, NEW)
    assert model.preprocessor.image_size == (NEW, NEW)
    assert_resampled(model.backbone.image_encoder, saved_vit, (6, 6))
    # The text side, tokenizer vocabulary included, is unchanged.
    assert model.preprocessor.tokenizer.get_vocabulary() == VOCAB
    texts = ["a red circle", "blue"]
    np.testing.assert_array_equal(
        model.encode_texts(texts), saved.encode_texts(texts)
    )
    pixels = np.zeros((2, 20, 20, 3), "uint8")
    assert model.encode_images(pixels).shape == (2, 8)


def test_bad_image_sizes(presets):
    root = presets["root"]
    with pytest.raises(ValueError, match="`image_size` must be a positive"):
        ViTBackbone.from_preset(str(root / "vit"), image_size=0)
    with pytest.raises(ValueError, match="square images only"):
        Clippo.from_preset(str(root / "clippo"), image_size=(48, 64))
    with pytest.raises(ValueError, match="multiple of `patch_size`"):
        ViTBackbone.from_preset(str(root / "vit"), image_size=36)
    text = TextTransformer(**tiny_text_kwargs())
    with pytest.raises(ValueError, match="no image size to change"):
        with_image_size(text, NEW)
