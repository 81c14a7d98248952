"""big_vision ViT checkpoints -> presets: parity with the golden fixtures."""

import json

import keras
import numpy as np
import pytest
from conftest import load_npz, require_fixtures, to_numpy

from keras_vl.convert.checkpoint import load_npz_checkpoint
from keras_vl.models import ViTBackbone
from keras_vl.models.vit.vit_convert import convert_vit
from tools import convert_big_vision

VIT_MODELS = (
    "gap_learn",
    "map_sincos2d",
    "tok_learn",
    "tok_sincos2d_nc10",
    "map_learn_nc10",
    "gap_learn_nc10_zeroinit",
)
TOLERANCE = 1e-4


def vit_fixture(name):
    root = require_fixtures("vit")
    config = json.loads((root / "configs.json").read_text())["models"][name]
    return root, config


def intermediate(model, layer_name):
    return keras.Model(model.inputs, model.get_layer(layer_name).output)


@pytest.mark.parametrize("name", VIT_MODELS)
def test_converted_preset_matches_big_vision(name, tmp_path):
    root, config = vit_fixture(name)
    config_path = tmp_path / "config.json"
    config_path.write_text(json.dumps(config))
    preset = tmp_path / "preset"
    convert_big_vision.main(
        [
            "--model",
            "vit",
            "--checkpoint",
            str(root / config["params_file"]),
            "--config",
            str(config_path),
            "--output",
            str(preset),
        ]
    )
    vit = ViTBackbone.from_preset(str(preset))
    images = load_npz(root / "inputs.npz")["images"]
    expected = load_npz(root / config["io_file"])

    out = to_numpy(vit(images))
    assert out.shape == expected["out"].shape
    assert np.abs(out - expected["out"]).max() <= TOLERANCE

    stem = to_numpy(intermediate(vit, "embedding")(images))
    assert np.abs(stem - expected["stem"]).max() <= TOLERANCE
    encoded = to_numpy(intermediate(vit, "Transformer")(images))
    assert np.abs(encoded - expected["encoded"]).max() <= TOLERANCE
    tokens = keras.Model(vit.inputs, vit.encoder.input)(images)
    for i, block in enumerate(vit.encoder.blocks):
        tokens = block(tokens)
        reference = expected[f"encoder/block{i:02d}/+mlp"]
        assert np.abs(to_numpy(tokens) - reference).max() <= TOLERANCE


def test_missing_parameter_is_named(tmp_path):
    root, config = vit_fixture("tok_learn")
    params = load_npz(root / config["params_file"])
    del params["cls"]
    path = tmp_path / "ckpt.npz"
    np.savez(path, **params)
    with pytest.raises(ValueError, match="'cls' is missing"):
        convert_vit(path, config)


def test_unknown_parameter_is_named(tmp_path):
    root, config = vit_fixture("gap_learn")
    params = load_npz(root / config["params_file"])
    params["Transformer/encoderblock_7/extra"] = np.zeros(3, "float32")
    path = tmp_path / "ckpt.npz"
    np.savez(path, **params)
    with pytest.raises(ValueError, match="encoderblock_7/extra"):
        convert_vit(path, config)


def test_wrong_shape_names_parameter_and_variable(tmp_path):
    root, config = vit_fixture("gap_learn")
    params = load_npz(root / config["params_file"])
    params["embedding/bias"] = np.zeros(7, "float32")
    path = tmp_path / "ckpt.npz"
    np.savez(path, **params)
    with pytest.raises(ValueError, match="embedding/bias.*\\(7,\\)"):
        convert_vit(path, config)


def test_bfloat16_checkpoint_is_recovered(tmp_path):
    root, config = vit_fixture("gap_learn")
    params = load_npz(root / config["params_file"])
    # numpy stores bfloat16 as 2-byte void: keep the top 16 bits.
    as_bf16 = {
        k: (v.astype("float32").view(np.uint32) >> 16)
        .astype(np.uint16)
        .view("V2")
        for k, v in params.items()
    }
    path = tmp_path / "bf16.npz"
    np.savez(path, **as_bf16)
    loaded = load_npz_checkpoint(path)
    for key, value in params.items():
        assert loaded[key].dtype == np.float32
        np.testing.assert_allclose(loaded[key], value, rtol=1e-2, atol=1e-6)
    images = load_npz(root / "inputs.npz")["images"]
    out = to_numpy(convert_vit(path, config)(images))
    reference = load_npz(root / config["io_file"])["out"]
    assert np.abs(out - reference).max() < 0.1


def test_unknown_config_key(tmp_path):
    root, config = vit_fixture("gap_learn")
    config = {**config, "model_kwargs": {**config["model_kwargs"], "x": 1}}
    with pytest.raises(ValueError, match="'x'"):
        convert_vit(root / config["params_file"], config)
