"""Named CLIPPO presets: download over HTTP, convert once, cache."""

import json

import numpy as np
import pytest
from conftest import load_npz, require_fixtures, serve_files, to_numpy
from model_contract import dense_parameters, map_vit_parameters

from keras_vl.models import (
    Clippo,
    ClippoBackbone,
    ClippoPreprocessor,
    ViTBackbone,
)
from keras_vl.models.clippo import clippo_presets
from keras_vl.utils.converted_presets import converted_preset_dir
from keras_vl.utils.download import DownloadError

RELEASED = sorted(
    [
        "clippo_b16_yfcc100m",
        "clippo_b16_yfcc100m_i21k_init",
        "clippo_b16_yfcc100m_i21k_init_25c4",
        "clippo_b16_yfcc100m_i21k_init_50c4",
        "clippo_b16_yfcc100m_i21k_init_75c4",
        "clippo_b16_100c4",
    ]
)


def test_registry_lists_the_released_checkpoints():
    assert sorted(clippo_presets.backbone_presets) == RELEASED
    for name, entry in clippo_presets.backbone_presets.items():
        assert entry["url"] == f"gs://big_vision/clippo/{name}.npz"
        assert entry["config"]["image"]["variant"] == "B/16"


@pytest.mark.parametrize("cls", [Clippo, ClippoBackbone])
def test_presets_are_listed_with_descriptions(cls):
    presets = cls.presets
    assert sorted(presets) == RELEASED
    descriptions = set()
    for entry in presets.values():
        metadata = entry["metadata"]
        assert metadata["description"].startswith(("CLIPPO B/16", "As `"))
        assert metadata["params"] == 93_474_816
        assert metadata["path"] == "clippo"
        descriptions.add(metadata["description"])
    assert len(descriptions) == len(RELEASED)
    # Other families do not inherit CLIPPO's checkpoints.
    assert not set(ViTBackbone.presets) & set(RELEASED)


def test_listed_parameter_count_is_the_b16_backbone():
    # The B/16 itself is too large to build here: count it from the sizes
    # (patch embedding, position embedding, 12 blocks, encoder norm, MAP
    # head, 768-wide head) and check the formula on a tiny backbone.
    def count(width, depth, mlp, patches, out_dim):
        return map_vit_parameters(
            width, depth, mlp, 16, patches
        ) + dense_parameters(width, out_dim)

    tiny = ViTBackbone(
        image_size=32,
        patch_size=16,
        width=32,
        depth=2,
        mlp_dim=64,
        num_heads=2,
        pool_type="map",
        num_classes=8,
    )
    assert tiny.count_params() == count(32, 2, 64, 4, 8)
    assert count(768, 12, 3072, 196, 768) == 93_474_816


@pytest.fixture
def server():
    """Serves `/good.npz` whole and `/cut.npz` truncated, on 127.0.0.1."""
    root = require_fixtures("clippo")
    payload = (root / "params.npz").read_bytes()
    files = {"/good.npz": payload, "/cut.npz": payload}
    with serve_files(files, truncate=["/cut.npz"]) as (base, requests):
        yield base, requests, root


def fake_entry(url, root):
    config = json.loads((root / "config.json").read_text())
    return {
        "metadata": {"description": "A tiny CLIPPO.", "path": "clippo"},
        "url": url,
        "config": {**config, "image_size": 64},
    }


def test_download_convert_cache(server, tmp_path, monkeypatch):
    base, requests, root = server
    monkeypatch.setenv("KERAS_VL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(
        clippo_presets.backbone_presets,
        "clippo_b16_yfcc100m",
        fake_entry(base + "/good.npz", root),
    )
    model = Clippo.from_preset("clippo_b16_yfcc100m")
    io = load_npz(root / "io.npz")
    zimg = model.encode_images(io["images"], preprocessed=True)
    assert np.abs(zimg - io["zimg"]).max() <= 1e-4
    assert requests == ["/good.npz"]
    # The second load uses the converted preset and asks nothing.
    Clippo.from_preset("clippo_b16_yfcc100m")
    assert requests == ["/good.npz"]
    assert (tmp_path / "cache/presets/clippo_b16_yfcc100m/config.json").exists()


def test_truncated_download_leaves_no_cache_entry(
    server, tmp_path, monkeypatch
):
    base, _, root = server
    cache = tmp_path / "cache"
    monkeypatch.setenv("KERAS_VL_CACHE", str(cache))
    monkeypatch.setitem(
        clippo_presets.backbone_presets,
        "clippo_b16_100c4",
        fake_entry(base + "/cut.npz", root),
    )
    with pytest.raises(DownloadError, match="truncated"):
        Clippo.from_preset("clippo_b16_100c4")
    leftovers = [p for p in cache.rglob("*") if p.is_file()]
    assert leftovers == []
    assert not (cache / "presets" / "clippo_b16_100c4").exists()


def test_backbone_from_a_registered_name(server, tmp_path, monkeypatch):
    base, requests, root = server
    monkeypatch.setenv("KERAS_VL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(
        clippo_presets.backbone_presets,
        "clippo_b16_yfcc100m_i21k_init",
        fake_entry(base + "/good.npz", root),
    )
    backbone = ClippoBackbone.from_preset("clippo_b16_yfcc100m_i21k_init")
    io = load_npz(root / "io.npz")
    logits = backbone.vision_encoder(io["images"])
    assert np.abs(to_numpy(logits) - io["img/logits"]).max() <= 1e-4
    assert requests == ["/good.npz"]
    # The preprocessor resolves the same name from the cache.
    preprocessor = ClippoPreprocessor.from_preset(
        "clippo_b16_yfcc100m_i21k_init"
    )
    assert preprocessor.image_size == 64
    assert requests == ["/good.npz"]


def test_unknown_name_is_not_a_registry_lookup(tmp_path):
    with pytest.raises(
        ValueError, match="Unknown converted preset 'clippo_b99'"
    ):
        converted_preset_dir("clippo_b99", tmp_path)
    assert not (tmp_path / "presets").exists()
