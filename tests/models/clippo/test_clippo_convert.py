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
