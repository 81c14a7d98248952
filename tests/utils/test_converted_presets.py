"""Converted presets that name extra files (e.g. a tokenizer vocabulary)."""

import json
import os

import pytest
from conftest import serve_files

from keras_vl.utils.converted_presets import (
    converted_preset_dir,
    register_converted_presets,
)
from keras_vl.utils.download import DownloadError

FILES = {"/ckpt.npz": b"weights" * 100, "/a/vocab.model": b"pieces" * 50}
TABLE: dict = {}
CALLS: list = []


class _Saved:
    def __init__(self, payload):
        self.payload = payload

    def save_to_preset(self, directory):
        with open(os.path.join(directory, "config.json"), "w") as f:
            json.dump(self.payload, f)


def _convert(checkpoint, entry, files=None):
    CALLS.append((checkpoint, files))
    if entry.get("fail"):
        raise RuntimeError("conversion failed")
    with open(checkpoint, "rb") as f, open(files["vocabulary"], "rb") as g:
        return _Saved({"weights": len(f.read()), "vocabulary": len(g.read())})


register_converted_presets(TABLE, _convert)


def entry(base, vocabulary="/a/vocab.model", filename="x.model", **extra):
    return {
        "url": base + "/ckpt.npz",
        "files": {
            "vocabulary": {"url": base + vocabulary, "filename": filename}
        },
        **extra,
    }


@pytest.fixture(autouse=True)
def clean():
    TABLE.clear()
    CALLS.clear()


def test_extra_files_are_downloaded_and_handed_over(tmp_path):
    with serve_files(FILES) as (base, requests):
        TABLE["tiny_with_vocab"] = entry(base)
        path = converted_preset_dir("tiny_with_vocab", tmp_path)
        assert json.loads(open(os.path.join(path, "config.json")).read()) == {
            "weights": 700,
            "vocabulary": 300,
        }
        # The small file first, under the entry's own name.
        assert requests == ["/a/vocab.model", "/ckpt.npz"]
        ((checkpoint, files),) = CALLS
        assert files == {"vocabulary": str(tmp_path / "checkpoints/x.model")}
        assert checkpoint == str(tmp_path / "checkpoints/ckpt.npz")
        # A cache hit asks nothing and converts nothing.
        assert converted_preset_dir("tiny_with_vocab", tmp_path) == path
        assert requests == ["/a/vocab.model", "/ckpt.npz"]
        assert len(CALLS) == 1


def test_plain_url_files_keep_their_name(tmp_path):
    with serve_files(FILES) as (base, _):
        TABLE["tiny_plain"] = {
            "url": base + "/ckpt.npz",
            "files": {"vocabulary": base + "/a/vocab.model"},
        }
        converted_preset_dir("tiny_plain", tmp_path)
    assert CALLS[0][1] == {
        "vocabulary": str(tmp_path / "checkpoints/vocab.model")
    }


@pytest.mark.parametrize("cut", ["/a/vocab.model", "/ckpt.npz"])
def test_truncated_file_leaves_no_preset(tmp_path, cut):
    with serve_files(FILES, truncate=(cut,)) as (base, _):
        TABLE["tiny_cut"] = entry(base)
        with pytest.raises(DownloadError, match="truncated"):
            converted_preset_dir("tiny_cut", tmp_path)
    assert CALLS == []
    assert not (tmp_path / "presets" / "tiny_cut").exists()
    partial = [p for p in tmp_path.rglob("*") if ".partial-" in p.name]
    assert partial == []
    if cut == "/a/vocab.model":
        # Nothing at all: the checkpoint was not even asked for.
        assert [p for p in tmp_path.rglob("*") if p.is_file()] == []


def test_failed_conversion_and_bad_spec_leave_no_preset(tmp_path):
    with serve_files(FILES) as (base, _):
        TABLE["tiny_fail"] = entry(base, fail=True)
        with pytest.raises(RuntimeError, match="conversion failed"):
            converted_preset_dir("tiny_fail", tmp_path)
        TABLE["tiny_bad"] = {"url": base + "/ckpt.npz", "files": {"v": 3}}
        with pytest.raises(ValueError, match="File 'v' of preset 'tiny_bad'"):
            converted_preset_dir("tiny_bad", tmp_path)
        TABLE["tiny_404"] = entry(base, "/nope.model", "y.model")
        with pytest.raises(DownloadError, match="404"):
            converted_preset_dir("tiny_404", tmp_path)
    presets = tmp_path / "presets"
    assert not presets.exists() or list(presets.iterdir()) == []
