"""Tests for `keras_vl.utils.download` against a local HTTP server.

No external network: a `ThreadingHTTPServer` on 127.0.0.1 serves a normal
file, a body cut short of its Content-Length, a chunked body cut mid-chunk,
a body of unknown length, a 404 and a stalled response.
"""

import hashlib
import http.server
import os
import threading

import pytest

from keras_vl.utils import download
from keras_vl.utils.download import (
    ChecksumError,
    DownloadError,
    default_cache_dir,
    download_file,
    gcs_to_https,
)

PAYLOAD = bytes(range(256)) * 1024  # 256 KiB, spans several reads
PAYLOAD_SHA256 = hashlib.sha256(PAYLOAD).hexdigest()
TRUNCATED_SENT = 1000


class _Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        server = self.server
        with server.lock:
            server.requests.append(self.path)
        self.close_connection = True
        path = self.path.split("?")[0]
        if path in ("/files/model.bin", "/bucket/dir/model.bin"):
            self._send_head(200, len(PAYLOAD))
            self.wfile.write(PAYLOAD)
        elif path == "/truncated.bin":
            # Announce the whole payload, send a little, hang up.
            self._send_head(200, len(PAYLOAD))
            self.wfile.write(PAYLOAD[:TRUNCATED_SENT])
        elif path == "/chunked-dropped.bin":
            self.send_response(200)
            self.send_header("Transfer-Encoding", "chunked")
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(b"%x\r\n" % 5000 + PAYLOAD[:100])
        elif path == "/unknown-length.bin":
            self.send_response(200)
            self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(PAYLOAD)
        elif path == "/stall.bin":
            self._send_head(200, len(PAYLOAD))
            self.wfile.write(PAYLOAD[:10])
            self.wfile.flush()
            server.release.wait(timeout=5)
        else:
            self.send_error(404, "Not Found")

    def _send_head(self, status, length):
        self.send_response(status)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(length))
        self.send_header("Connection", "close")
        self.end_headers()


@pytest.fixture
def server():
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    httpd.lock = threading.Lock()
    httpd.requests = []
    httpd.release = threading.Event()
    httpd.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(
        target=httpd.serve_forever, kwargs={"poll_interval": 0.05}
    )
    thread.daemon = True
    thread.start()
    try:
        yield httpd
    finally:
        httpd.release.set()
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_VL_CACHE", raising=False)
    path = tmp_path / "cache"
    path.mkdir()
    return path


def _listing(path):
    return sorted(os.listdir(path))


def test_download_and_cache_hit(server, cache):
    url = f"{server.base_url}/files/model.bin"
    path = download_file(url, cache_dir=cache, progress=False)
    assert path == cache / "model.bin"
    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["/files/model.bin"]
    assert _listing(cache) == ["model.bin"]

    again = download_file(url, cache_dir=cache, progress=False)
    assert again == path
    again = download_file(
        url, cache_dir=cache, sha256=PAYLOAD_SHA256.upper(), progress=False
    )
    assert again == path
    assert len(server.requests) == 1  # served from the cache


def test_filename_and_new_cache_dir(server, tmp_path):
    target = tmp_path / "a" / "b"
    path = download_file(
        f"{server.base_url}/files/model.bin?alt=media",
        cache_dir=target,
        filename="renamed.bin",
        progress=False,
    )
    assert path == target / "renamed.bin"
    assert path.read_bytes() == PAYLOAD


def test_sha256_match(server, cache):
    path = download_file(
        f"{server.base_url}/files/model.bin",
        cache_dir=cache,
        sha256=PAYLOAD_SHA256,
        progress=False,
    )
    assert path.read_bytes() == PAYLOAD


def test_stale_cached_file_is_replaced(server, cache):
    (cache / "model.bin").write_bytes(b"stale")
    path = download_file(
        f"{server.base_url}/files/model.bin",
        cache_dir=cache,
        sha256=PAYLOAD_SHA256,
        progress=False,
    )
    assert path.read_bytes() == PAYLOAD
    assert len(server.requests) == 1
    assert _listing(cache) == ["model.bin"]


def test_sha256_mismatch_leaves_nothing(server, cache):
    url = f"{server.base_url}/files/model.bin"
    with pytest.raises(ChecksumError) as info:
        download_file(url, cache_dir=cache, sha256="0" * 64, progress=False)
    assert isinstance(info.value, DownloadError)
    assert isinstance(info.value, ValueError)
    message = str(info.value)
    assert url in message and "0" * 64 in message and PAYLOAD_SHA256 in message
    assert _listing(cache) == []


def test_truncated_download_leaves_nothing(server, cache):
    url = f"{server.base_url}/truncated.bin"
    with pytest.raises(DownloadError) as info:
        download_file(url, cache_dir=cache, progress=False)
    err = info.value
    assert isinstance(err, OSError)
    assert (err.received, err.expected) == (TRUNCATED_SENT, len(PAYLOAD))
    assert url in str(err)
    assert f"{TRUNCATED_SENT} of {len(PAYLOAD)} bytes" in str(err)
    assert _listing(cache) == []


def test_dropped_chunked_connection_leaves_nothing(server, cache):
    url = f"{server.base_url}/chunked-dropped.bin"
    with pytest.raises(DownloadError) as info:
        download_file(url, cache_dir=cache, progress=False)
    assert url in str(info.value)
    assert "receiving 100 bytes (size unknown)" in str(info.value)
    assert (info.value.received, info.value.expected) == (100, None)
    assert _listing(cache) == []


def test_timeout_leaves_nothing(server, cache):
    url = f"{server.base_url}/stall.bin"
    with pytest.raises(DownloadError) as info:
        download_file(url, cache_dir=cache, progress=False, timeout=0.2)
    server.release.set()
    assert url in str(info.value)
    assert f"receiving 10 of {len(PAYLOAD)} bytes" in str(info.value)
    assert "timed out" in str(info.value)
    assert _listing(cache) == []


def test_unknown_length(server, cache):
    path = download_file(
        f"{server.base_url}/unknown-length.bin", cache_dir=cache, progress=True
    )
    assert path.read_bytes() == PAYLOAD


def test_404(server, cache):
    url = f"{server.base_url}/missing.bin"
    with pytest.raises(DownloadError) as info:
        download_file(url, cache_dir=cache, progress=False)
    assert info.value.status == 404
    assert "404" in str(info.value) and url in str(info.value)
    assert _listing(cache) == []


def test_unreachable_host(cache):
    # Port 9 on loopback: nothing listens, the connection is refused.
    with pytest.raises(DownloadError, match="127.0.0.1:9/x.bin"):
        download_file(
            "http://127.0.0.1:9/x.bin", cache_dir=cache, progress=False
        )
    assert _listing(cache) == []


def test_progress_bar(server, cache, capsys):
    url = f"{server.base_url}/files/model.bin"
    download_file(url, cache_dir=cache, filename="quiet.bin", progress=False)
    assert capsys.readouterr().out == ""
    download_file(url, cache_dir=cache, filename="loud.bin", progress=True)
    assert str(len(PAYLOAD)) in capsys.readouterr().out


def test_gcs_to_https():
    assert (
        gcs_to_https("gs://big_vision/clippo/model.npz")
        == "https://storage.googleapis.com/big_vision/clippo/model.npz"
    )
    assert (
        gcs_to_https("gs://b/dir/a b.npz")
        == "https://storage.googleapis.com/b/dir/a%20b.npz"
    )
    assert gcs_to_https("https://x.org/a.npz") == "https://x.org/a.npz"
    with pytest.raises(ValueError):
        gcs_to_https("gs://bucket-only")


def test_download_gcs_url(server, cache, monkeypatch):
    monkeypatch.setattr(download, "GCS_ENDPOINT", server.base_url)
    path = download_file(
        "gs://bucket/dir/model.bin", cache_dir=cache, progress=False
    )
    assert path == cache / "model.bin"
    assert path.read_bytes() == PAYLOAD
    assert server.requests == ["/bucket/dir/model.bin"]


def test_env_cache_dir(server, tmp_path, monkeypatch):
    env_cache = tmp_path / "from_env"
    monkeypatch.setenv("KERAS_VL_CACHE", str(env_cache))
    assert default_cache_dir() == env_cache
    path = download_file(f"{server.base_url}/files/model.bin", progress=False)
    assert path == env_cache / "model.bin"
    assert path.read_bytes() == PAYLOAD


def test_default_cache_dir_without_env(tmp_path, monkeypatch):
    monkeypatch.delenv("KERAS_VL_CACHE", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / ".cache" / "keras_vl"


@pytest.mark.parametrize(
    "url, kwargs",
    [
        ("ftp://host/a.bin", {}),
        ("http://host/dir/", {}),
        ("http://host/a.bin", {"filename": "../escape.bin"}),
        ("http://host/a.bin", {"sha256": "not-hex"}),
    ],
)
def test_invalid_arguments(url, kwargs, cache):
    with pytest.raises(ValueError):
        download_file(url, cache_dir=cache, progress=False, **kwargs)
    assert _listing(cache) == []
