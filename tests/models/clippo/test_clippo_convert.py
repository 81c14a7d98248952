"""big_vision CLIPPO checkpoints -> `Clippo`, directly (the command line
and preset round trip are covered in test_clippo.py)."""

import json

import numpy as np
import pytest
from conftest import load_npz, require_fixtures, to_numpy

from keras_vl.models.clippo.clippo_convert import (
    convert_clippo,
    convert_clippo_preset,
)

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def fixture():
    root = require_fixtures("clippo")
    config = json.loads((root / "config.json").read_text())
    return root, config, load_npz(root / "io.npz")


def test_converted_model_matches_big_vision(fixture):
    root, config, io = fixture
    model = convert_clippo(root / "params.npz", config, image_size=64)
    zimg = model.encode_images(io["images"], preprocessed=True)
    ztxt = model.encode_rendered_texts(io["texts"], preprocessed=True)
    assert np.abs(zimg - io["zimg"]).max() <= TOLERANCE
    assert np.abs(ztxt - io["ztxt"]).max() <= TOLERANCE
    logits = to_numpy(model.backbone.vision_encoder(io["images"]))
    assert np.abs(logits - io["img/logits"]).max() <= TOLERANCE
    assert abs(float(to_numpy(model.logit_scale)) - 10.0) <= TOLERANCE


def test_preset_entry_config_is_used(fixture):
    root, config, io = fixture
    entry = {"config": {**config, "image_size": 64}}
    model = convert_clippo_preset(str(root / "params.npz"), entry)
    zimg = model.encode_images(io["images"], preprocessed=True)
    assert np.abs(zimg - io["zimg"]).max() <= TOLERANCE


def test_missing_temperature_is_named(fixture, tmp_path):
    root, config, _ = fixture
    params = load_npz(root / "params.npz")
    del params["params/t"]
    np.savez(tmp_path / "ckpt.npz", **params)
    with pytest.raises(ValueError, match="'params/t' is missing"):
        convert_clippo(tmp_path / "ckpt.npz", config, image_size=64)


def test_bad_configs_are_refused(fixture):
    root, config, _ = fixture
    other = {**config["model_kwargs"], "image_model": "resnet"}
    with pytest.raises(ValueError, match="image_model='resnet'"):
        convert_clippo(root / "params.npz", other, image_size=64)
    with pytest.raises(TypeError, match="`config` must be a dict"):
        convert_clippo(root / "params.npz", "config.json")


def test_image_size_is_inferred_from_the_checkpoint(fixture):
    root, config, io = fixture
    assert "image_size" not in config
    model = convert_clippo(root / "params.npz", config)
    assert model.backbone.image_size == 64
    zimg = model.encode_images(io["images"], preprocessed=True)
    ztxt = model.encode_rendered_texts(io["texts"], preprocessed=True)
    assert np.abs(zimg - io["zimg"]).max() <= TOLERANCE
    assert np.abs(ztxt - io["ztxt"]).max() <= TOLERANCE


@pytest.fixture(scope="module")
def checkpoint_96px(fixture, tmp_path_factory):
    """The fixture's weights with a learned 6 x 6 position embedding."""
    root, config, _ = fixture
    params = load_npz(root / "params.npz")
    posemb = np.random.default_rng(6).normal(size=(1, 36, 64))
    params["params/img/pos_embedding"] = posemb.astype("float32")
    path = tmp_path_factory.mktemp("clippo96") / "clippo_96.npz"
    np.savez(path, **params)
    return path, params["params/img/pos_embedding"]


def test_96px_checkpoint_converts_without_image_size(
    fixture, checkpoint_96px, tmp_path
):
    from keras_vl.models.clippo.clippo import Clippo
    from tools import convert_big_vision

    root, config, _ = fixture
    path, posemb = checkpoint_96px
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    preset = tmp_path / "preset"
    convert_big_vision.main(
        [
            "--model", "clippo",
            "--checkpoint", str(path),
            "--config", str(config_path),
            "--output", str(preset),
        ]
    )  # fmt: skip
    model = Clippo.from_preset(str(preset))
    assert model.backbone.image_size == 96
    assert model.backbone.text_renderer.image_size == 96
    assert model.preprocessor.image_size == 96
    vit = model.backbone.vision_encoder
    np.testing.assert_array_equal(
        to_numpy(vit.position_embedding.embedding), posemb
    )
    # Every other weight is the 64 px model's, which matches big_vision.
    at_64 = convert_clippo(root / "params.npz", config).backbone.vision_encoder
    for converted, golden in zip(vit.weights, at_64.weights, strict=True):
        if converted.path.endswith("pos_embedding/embedding"):
            continue
        np.testing.assert_array_equal(to_numpy(converted), to_numpy(golden))
    zimg = model.encode_images(np.zeros((2, 96, 96, 3), "uint8"))
    assert zimg.shape == (2, 32)
    np.testing.assert_allclose(np.linalg.norm(zimg, axis=1), 1.0, atol=1e-5)


def test_other_size_resamples_the_position_embedding(fixture, checkpoint_96px):
    ndimage = pytest.importorskip("scipy.ndimage")
    _, config, _ = fixture
    path, posemb = checkpoint_96px
    model = convert_clippo(path, config, image_size=128)
    assert model.backbone.text_renderer.image_size == 128
    assert model.preprocessor.image_size == 128
    expected = ndimage.zoom(
        posemb.reshape(6, 6, -1), (8 / 6, 8 / 6, 1), order=1
    ).reshape(1, 64, -1)
    embedding = model.backbone.vision_encoder.position_embedding.embedding
    np.testing.assert_allclose(to_numpy(embedding), expected, atol=1e-6)
