"""Named CLIPPO presets: download over HTTP, convert once, cache."""

import http.server
import json
import threading

import numpy as np
import pytest
from conftest import load_npz, require_fixtures

from keras_vl.models import Clippo
from keras_vl.models.clippo import clippo_presets
from keras_vl.utils.download import DownloadError


def test_registry_lists_the_released_checkpoints():
    assert sorted(clippo_presets.CLIPPO_PRESETS) == sorted(
        [
            "clippo_b16_yfcc100m",
            "clippo_b16_yfcc100m_i21k_init",
            "clippo_b16_yfcc100m_i21k_init_25c4",
            "clippo_b16_yfcc100m_i21k_init_50c4",
            "clippo_b16_yfcc100m_i21k_init_75c4",
            "clippo_b16_100c4",
        ]
    )
    for name, entry in clippo_presets.CLIPPO_PRESETS.items():
        assert entry["url"] == f"gs://big_vision/clippo/{name}.npz"


@pytest.fixture
def server():
    """Serves `/good.npz` whole and `/cut.npz` truncated, on 127.0.0.1."""
    root = require_fixtures("clippo")
    payload = (root / "params.npz").read_bytes()
    requests = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requests.append(self.path)
            body = payload if self.path == "/good.npz" else payload[:1000]
            self.send_response(200)
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}", requests, root
    httpd.shutdown()
    httpd.server_close()


def fake_entry(url, root):
    config = json.loads((root / "config.json").read_text())
    return {"url": url, "config": {**config, "image_size": 64}}


def test_download_convert_cache(server, tmp_path, monkeypatch):
    base, requests, root = server
    monkeypatch.setenv("KERAS_VL_CACHE", str(tmp_path / "cache"))
    monkeypatch.setitem(
        clippo_presets.CLIPPO_PRESETS,
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
        clippo_presets.CLIPPO_PRESETS,
        "clippo_b16_100c4",
        fake_entry(base + "/cut.npz", root),
    )
    with pytest.raises(DownloadError, match="truncated"):
        Clippo.from_preset("clippo_b16_100c4")
    leftovers = [p for p in cache.rglob("*") if p.is_file()]
    assert leftovers == []
    assert not (cache / "presets" / "clippo_b16_100c4").exists()


def test_unknown_name_is_not_a_registry_lookup(tmp_path):
    with pytest.raises(ValueError, match="Unknown CLIPPO preset"):
        clippo_presets.converted_preset_dir("clippo_b99", tmp_path)
