"""Hugging Face checkpoint reading: safetensors, shards, configs."""

import json

import numpy as np
import pytest

from keras_vl.convert.huggingface import (
    load_transformers_checkpoint,
    read_safetensors,
    read_weights,
)

torch = pytest.importorskip("torch")


def test_bfloat16_safetensors_are_widened(tmp_path):
    from safetensors.torch import save_file

    values = torch.randn(3, 4)
    save_file(
        {"a": values.to(torch.bfloat16), "b": values.half(), "c": values},
        tmp_path / "w.safetensors",
    )
    arrays = read_safetensors(tmp_path / "w.safetensors")
    assert {k: v.dtype for k, v in arrays.items()} == {
        "a": np.float32,
        "b": np.float32,
        "c": np.float32,
    }
    np.testing.assert_array_equal(
        arrays["a"], values.to(torch.bfloat16).float().numpy()
    )
    np.testing.assert_array_equal(arrays["c"], values.numpy())


def test_corrupted_safetensors_names_the_file(tmp_path):
    from safetensors.numpy import save_file

    path = tmp_path / "model.safetensors"
    save_file({"w": np.arange(6, dtype="float32").reshape(2, 3)}, path)
    data = path.read_bytes()
    # A header size far beyond the file.
    path.write_bytes(b"\xff" * 8 + data[8:])
    with pytest.raises(ValueError, match="model.safetensors.*not a readable"):
        read_safetensors(path)
    # Cut off inside the tensor data.
    path.write_bytes(data[:-5])
    with pytest.raises(ValueError, match="model.safetensors.*not a readable"):
        read_safetensors(path)
    with pytest.raises(ValueError, match="absent.safetensors"):
        read_safetensors(tmp_path / "absent.safetensors")


def test_sharded_folder_and_config(tmp_path):
    from safetensors.numpy import save_file

    a = np.arange(4, dtype="float32")
    b = np.arange(6, dtype="int64").reshape(2, 3)
    save_file({"a": a}, tmp_path / "model-00001-of-00002.safetensors")
    save_file({"b": b}, tmp_path / "model-00002-of-00002.safetensors")
    index = {
        "weight_map": {
            "a": "model-00001-of-00002.safetensors",
            "b": "model-00002-of-00002.safetensors",
        }
    }
    (tmp_path / "model.safetensors.index.json").write_text(json.dumps(index))
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "x"}))
    params, config = load_transformers_checkpoint(tmp_path)
    assert config == {"model_type": "x"}
    assert sorted(params) == ["a", "b"]
    np.testing.assert_array_equal(params["a"], a)
    np.testing.assert_array_equal(params["b"], b)
    assert params["b"].dtype == np.int64


def test_missing_pieces_are_named(tmp_path):
    with pytest.raises(ValueError, match="No weights in"):
        load_transformers_checkpoint(tmp_path)
    with pytest.raises(ValueError, match="does not exist"):
        load_transformers_checkpoint(tmp_path / "nowhere")
    from safetensors.numpy import save_file

    save_file({"a": np.zeros(1, "float32")}, tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="No config.json next to"):
        load_transformers_checkpoint(tmp_path / "w.safetensors")
    with pytest.raises(ValueError, match="expected .safetensors or .bin"):
        read_weights(tmp_path / "w.npz")


def test_torch_state_dict_is_read_without_code(tmp_path):
    values = torch.arange(6, dtype=torch.float16).reshape(2, 3)
    torch.save({"w": values, "i": torch.tensor([1, 2])}, tmp_path / "w.bin")
    params = read_weights(tmp_path / "w.bin")
    assert params["w"].dtype == np.float32
    np.testing.assert_array_equal(params["w"], values.float().numpy())
    np.testing.assert_array_equal(params["i"], [1, 2])
    (tmp_path / "bad.bin").write_bytes(b"not a state dict")
    with pytest.raises(ValueError, match="bad.bin.*not a readable"):
        read_weights(tmp_path / "bad.bin")
