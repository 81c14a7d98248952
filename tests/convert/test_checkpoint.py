"""Flat npz checkpoints and the `CheckpointReader` bookkeeping."""

import numpy as np
import pytest

from keras_vl.convert.checkpoint import CheckpointReader, load_npz_checkpoint


def test_pickled_checkpoint_is_refused(tmp_path):
    path = tmp_path / "evil.npz"
    np.savez(path, payload=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ValueError, match="pickled"):
        load_npz_checkpoint(path)


def test_corrupted_checkpoint_is_refused(tmp_path):
    path = tmp_path / "broken.npz"
    path.write_bytes(b"PK\x03\x04 not really a zip")
    with pytest.raises(ValueError, match="not a readable"):
        load_npz_checkpoint(path)


def test_bfloat16_entries_are_widened(tmp_path):
    values = np.array([1.5, -2.25, 3.0e-3], "float32")
    bits = (values.view(np.uint32) >> 16).astype(np.uint16).view("V2")
    path = tmp_path / "bf16.npz"
    np.savez(path, **{"a/kernel": bits, "b": values})
    loaded = load_npz_checkpoint(path)
    assert loaded["a/kernel"].dtype == np.float32
    # bfloat16 keeps 8 bits of mantissa: 1.5 and -2.25 are exact.
    np.testing.assert_array_equal(loaded["a/kernel"][:2], values[:2])
    np.testing.assert_allclose(loaded["a/kernel"], values, rtol=1e-2)
    np.testing.assert_array_equal(loaded["b"], values)


def test_reader_reports_unused_and_missing_names():
    reader = CheckpointReader(
        {"x": np.zeros(2), "opt/m": np.zeros(1)}, source="ckpt.npz"
    )
    with pytest.raises(ValueError, match="'y' is missing from ckpt.npz"):
        reader.take("y")
    reader.ignore("opt/")
    with pytest.raises(ValueError, match="does not use: x"):
        reader.finish()
    np.testing.assert_array_equal(reader.take("x"), np.zeros(2))
    reader.finish()


def test_a_json_or_missing_checkpoint_is_named_for_what_it_is(tmp_path):
    path = tmp_path / "config.json"
    path.write_text('{"variant": "B/16"}')
    with pytest.raises(ValueError, match="config.json.*not a readable .npz"):
        load_npz_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="nothing.npz.*does not exist"):
        load_npz_checkpoint(tmp_path / "nothing.npz")
