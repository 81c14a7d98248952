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


# === Resolution taken from, or fitted to, the checkpoint ===


def sized_checkpoint(tmp_path, name, side):
    """The fixture's checkpoint with a random learned position embedding
    of a `side` x `side` grid, and its config without an image size."""
    root, config = vit_fixture(name)
    params = load_npz(root / config["params_file"])
    rng = np.random.default_rng(side)
    width = params["embedding/bias"].shape[0]
    posemb = rng.normal(size=(1, side * side, width)).astype("float32")
    params["pos_embedding"] = posemb
    path = tmp_path / f"{name}_{side}.npz"
    np.savez(path, **params)
    config = {k: v for k, v in config.items() if k != "image_size"}
    return path, config, posemb


@pytest.mark.parametrize("name", ["gap_learn", "tok_learn"])
def test_image_size_is_inferred_from_the_checkpoint(name):
    root, config = vit_fixture(name)
    config = {k: v for k, v in config.items() if k != "image_size"}
    vit = convert_vit(root / config["params_file"], config)
    assert vit.image_size == (64, 64)
    images = load_npz(root / "inputs.npz")["images"]
    expected = load_npz(root / config["io_file"])["out"]
    assert np.abs(to_numpy(vit(images)) - expected).max() <= TOLERANCE


def test_96px_checkpoint_converts_at_96px_without_a_size(tmp_path):
    path, config, posemb = sized_checkpoint(tmp_path, "tok_learn", 6)
    vit = convert_vit(path, config)
    assert vit.image_size == (96, 96)
    np.testing.assert_array_equal(
        to_numpy(vit.position_embedding.embedding), posemb
    )
    # Same weights built at 96 px by hand: the outputs agree.
    root, golden = vit_fixture("tok_learn")
    at_64 = convert_vit(root / golden["params_file"], golden)
    reference = ViTBackbone.from_config(
        {**at_64.get_config(), "image_size": 96}
    )
    for target, source in zip(reference.weights, at_64.weights, strict=True):
        if target.shape == source.shape:
            target.assign(source)
    reference.position_embedding.embedding.assign(posemb)
    images = np.random.default_rng(3).normal(size=(2, 96, 96, 3))
    images = images.astype("float32")
    out = to_numpy(vit(images))
    assert out.shape == (2, 64)
    np.testing.assert_allclose(
        out, to_numpy(reference(images)), atol=1e-5, rtol=0
    )


@pytest.mark.parametrize("size", [64, 112, 160])
def test_other_size_resamples_the_position_embedding(tmp_path, size):
    ndimage = pytest.importorskip("scipy.ndimage")
    path, config, posemb = sized_checkpoint(tmp_path, "tok_learn", 6)
    vit = convert_vit(path, config, image_size=size)
    side = size // 16
    assert vit.image_size == (size, size)
    expected = ndimage.zoom(
        posemb.reshape(6, 6, -1), (side / 6, side / 6, 1), order=1
    ).reshape(1, side * side, -1)
    np.testing.assert_allclose(
        to_numpy(vit.position_embedding.embedding), expected, atol=1e-6
    )
    assert to_numpy(vit(np.zeros((1, size, size, 3)))).shape == (1, 64)


def test_sincos2d_embedding_is_rebuilt_at_the_new_size():
    from keras_vl.layers.position_embedding import sincos2d_embedding

    root, config = vit_fixture("map_sincos2d")
    vit = convert_vit(root / config["params_file"], config, image_size=96)
    np.testing.assert_array_equal(
        vit.position_embedding.embedding, sincos2d_embedding(6, 6, 64)
    )
    assert to_numpy(vit(np.zeros((1, 96, 96, 3)))).shape == (1, 64)


def test_non_square_position_embedding_needs_a_size(tmp_path):
    root, config = vit_fixture("gap_learn")
    params = load_npz(root / config["params_file"])
    params["pos_embedding"] = np.zeros((1, 15, 64), "float32")
    path = tmp_path / "ckpt.npz"
    np.savez(path, **params)
    config = {k: v for k, v in config.items() if k != "image_size"}
    with pytest.raises(ValueError, match="15 grid tokens.*not a square"):
        convert_vit(path, config)


def test_non_square_position_embedding_cannot_be_resampled(tmp_path):
    root, config = vit_fixture("gap_learn")
    params = load_npz(root / config["params_file"])
    params["pos_embedding"] = np.zeros((1, 15, 64), "float32")
    path = tmp_path / "ckpt.npz"
    np.savez(path, **params)
    with pytest.raises(ValueError, match="\\(1, 15, 64\\) cannot be resampled"):
        convert_vit(path, config, image_size=64)
