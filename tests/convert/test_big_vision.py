"""big_vision naming helpers: Linen renumbering, configs, prefixes."""

import json

import numpy as np
import pytest

from keras_vl.convert.big_vision import (
    learned_grid_size,
    linen_names,
    open_checkpoint,
    read_config,
    strip_params_prefix,
)


def test_linen_names_renumber_pre_linen_modules():
    params = {
        "a/LayerNorm_0/scale": 0,
        "a/MultiHeadDotProductAttention_1/out/bias": 1,
        "a/LayerNorm_2/scale": 2,
        "a/MlpBlock_3/Dense_0/bias": 3,
        "a/MlpBlock_3/Dense_1/bias": 4,
        "encoderblock_10/x": 5,
        "encoderblock_2/x": 6,
    }
    assert linen_names(params) == {
        "a/LayerNorm_0/scale": 0,
        "a/MultiHeadDotProductAttention_0/out/bias": 1,
        "a/LayerNorm_1/scale": 2,
        "a/MlpBlock_0/Dense_0/bias": 3,
        "a/MlpBlock_0/Dense_1/bias": 4,
        "encoderblock_1/x": 5,  # natural order: 2 before 10
        "encoderblock_0/x": 6,
    }
    # Linen names are a fixed point.
    linen = linen_names(params)
    assert linen_names(linen) == linen


def test_read_config_requires_an_object(tmp_path):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"model_kwargs": {"width": 8}}))
    assert read_config(path) == {"model_kwargs": {"width": 8}}
    path.write_text("[1, 2]")
    with pytest.raises(ValueError, match="must hold a JSON object"):
        read_config(path)


def test_open_checkpoint_skips_training_state(tmp_path):
    path = tmp_path / "ckpt.npz"
    np.savez(
        path,
        **{
            "params/img/LayerNorm_2/scale": np.ones(3, "float32"),
            "opt/state": np.zeros(1, "float32"),
            "chrono/time": np.zeros(1, "float32"),
        },
    )
    reader = open_checkpoint(path, linen=True)
    assert sorted(reader.params) == [
        "chrono/time",
        "opt/state",
        "params/img/LayerNorm_0/scale",
    ]
    with pytest.raises(ValueError, match="LayerNorm_0/scale"):
        reader.finish()
    reader.take("params/img/LayerNorm_0/scale")
    reader.finish()
    assert strip_params_prefix(reader, "params/img/") == "params/img/"


def test_prefix_and_grid_size_follow_the_checkpoint(tmp_path):
    path = tmp_path / "bare.npz"
    np.savez(path, **{"img/pos_embedding": np.zeros((1, 16, 4), "float32")})
    reader = open_checkpoint(path)
    assert strip_params_prefix(reader, "params/img/") == "img/"
    assert strip_params_prefix(reader, "params/txt/") == "params/txt/"
    assert learned_grid_size(reader, "img/pos_embedding", 8) == 32
    assert learned_grid_size(reader, "img/pos_embedding", (4, 4)) == 16
    assert learned_grid_size(reader, "txt/pos_embedding", 8) is None


def test_grid_size_skips_class_token_and_refuses_non_square(tmp_path):
    path = tmp_path / "ckpt.npz"
    np.savez(
        path,
        **{
            "cls_posemb": np.zeros((1, 37, 4), "float32"),
            "odd_posemb": np.zeros((1, 15, 4), "float32"),
        },
    )
    reader = open_checkpoint(path)
    assert learned_grid_size(reader, "cls_posemb", 16, 1) == 96
    assert learned_grid_size(reader, "cls_posemb", (16, 8), 1) == (96, 48)
    with pytest.raises(ValueError, match="37 grid tokens.*not a square"):
        learned_grid_size(reader, "cls_posemb", 16)
    with pytest.raises(ValueError, match="'odd_posemb'.*image size"):
        learned_grid_size(reader, "odd_posemb", 16)
