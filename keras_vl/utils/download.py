"""Cached, atomic HTTP(S) downloads of checkpoints and assets.

Only the standard library (`urllib.request`) does the networking; Keras
supplies the progress bar. Files land in a cache folder, by default
`$KERAS_VL_CACHE` when set, else `~/.cache/keras_vl`.

A download is streamed into a private temporary file beside its final name
(`<name>.partial-<random>`), flushed to disk, checked (byte count against
`Content-Length`, optional SHA-256), and only then renamed onto the final
name with `os.replace`. The final path therefore never holds a partial or
unverified file, and the temporary file is removed whatever happens.

Example:

>>> from keras_vl.utils.download import download_file
>>> path = download_file(  # doctest: +SKIP
...     "gs://big_vision/clippo/clippo_b16_yfcc100m.npz"
... )
>>> path.name  # doctest: +SKIP
'clippo_b16_yfcc100m.npz'
"""

from __future__ import annotations

import hashlib
import http.client
import os
import pathlib
import posixpath
import re
import secrets
import urllib.error
import urllib.parse
import urllib.request

from keras.utils import Progbar

from keras_vl.version import __version__

__all__ = [
    "CACHE_ENV_VAR",
    "DEFAULT_TIMEOUT",
    "GCS_ENDPOINT",
    "ChecksumError",
    "DownloadError",
    "default_cache_dir",
    "download_file",
    "gcs_to_https",
]

#: Environment variable naming the cache folder.
CACHE_ENV_VAR = "KERAS_VL_CACHE"

#: Seconds a connection attempt or a single read may block.
DEFAULT_TIMEOUT = 60.0

#: Root that `gs://bucket/object` URLs are rewritten onto. Point it at a
#: local emulator (for instance in tests) to avoid the real service.
GCS_ENDPOINT = "https://storage.googleapis.com"

_CHUNK_SIZE = 1 << 20  # 1 MiB
_SHA256_RE = re.compile(r"[0-9a-f]{64}")
_USER_AGENT = f"keras-vl/{__version__} (Python-urllib)"


class DownloadError(OSError):
    """A download failed: HTTP error, unreachable host, or truncated body.

    Attributes:
        url: The URL that was requested (after `gs://` rewriting).
        received: Bytes of body received before the failure, if any.
        expected: Bytes announced by `Content-Length`, or `None` if unknown.
        status: HTTP status code for HTTP errors, else `None`.
    """

    def __init__(
        self,
        message: str,
        *,
        url: str,
        received: int | None = None,
        expected: int | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.url = url
        self.received = received
        self.expected = expected
        self.status = status


class ChecksumError(DownloadError, ValueError):
    """The downloaded bytes do not match the expected SHA-256 digest.

    Being both a `DownloadError` (an `OSError`) and a `ValueError`, it is
    caught by handlers for either.
    """


def default_cache_dir() -> pathlib.Path:
    """Returns the default cache folder.

    That is `$KERAS_VL_CACHE` when the variable is set and non-empty, else
    `~/.cache/keras_vl`. The folder is not created.

    Returns:
        The cache folder, with `~` expanded.

    Example:

    >>> import os
    >>> os.environ["KERAS_VL_CACHE"] = "/tmp/kvl"  # doctest: +SKIP
    >>> str(default_cache_dir())  # doctest: +SKIP
    '/tmp/kvl'
    """
    env = os.environ.get(CACHE_ENV_VAR)
    if env:
        return pathlib.Path(env).expanduser()
    return pathlib.Path("~", ".cache", "keras_vl").expanduser()


def gcs_to_https(url: str) -> str:
    """Rewrites a `gs://bucket/object` URL to its public HTTPS form.

    Any other URL is returned unchanged. The object name is percent-encoded
    as the JSON/XML API expects (`/` is kept).

    Args:
        url: A URL, possibly with the `gs` scheme.

    Returns:
        `https://storage.googleapis.com/bucket/object` for `gs://` URLs (the
        root is `GCS_ENDPOINT`), else `url` itself.

    Raises:
        ValueError: If a `gs://` URL names no bucket or no object.

    Example:

    >>> gcs_to_https("gs://big_vision/vit/model.npz")
    'https://storage.googleapis.com/big_vision/vit/model.npz'
    >>> gcs_to_https("https://example.com/a.npz")
    'https://example.com/a.npz'
    """
    if not url.lower().startswith("gs://"):
        return url
    bucket, _, blob = url[len("gs://") :].partition("/")
    if not bucket or not blob:
        raise ValueError(
            f"Invalid GCS URL {url!r}: expected gs://<bucket>/<object>."
        )
    quoted = urllib.parse.quote(blob, safe="/")
    return f"{GCS_ENDPOINT.rstrip('/')}/{bucket}/{quoted}"


def download_file(
    url: str,
    cache_dir: str | os.PathLike[str] | None = None,
    filename: str | None = None,
    sha256: str | None = None,
    progress: bool = True,
    timeout: float | None = DEFAULT_TIMEOUT,
) -> pathlib.Path:
    """Downloads `url` into the cache, or returns the cached copy.

    When `cache_dir / filename` already exists (and, if `sha256` is given,
    has that digest), it is returned without any network access. Otherwise
    the file is streamed into `<filename>.partial-<random>` in the same
    folder, fsynced, checked against `Content-Length` and `sha256`, and
    atomically renamed onto its final name. On any failure the partial file
    is deleted and the final path is left untouched.

    Args:
        url: An `http://`, `https://` or `gs://` URL; `gs://bucket/object`
            is fetched from `https://storage.googleapis.com/bucket/object`.
        cache_dir: Folder to store the file in; created if missing.
            Defaults to `default_cache_dir()`.
        filename: Name of the file in `cache_dir`. Defaults to the last
            component of the URL path.
        sha256: Expected hex SHA-256 of the file (case-insensitive). Checked
            for cached files as well as fresh downloads.
        progress: Whether to show a `keras.utils.Progbar` while downloading.
        timeout: Seconds a connection attempt or any single read may block
            (not a limit on the whole transfer); `None` waits forever.

    Returns:
        The path of the downloaded (or cached) file.

    Raises:
        DownloadError: On an HTTP error status, an unreachable host, a
            timeout, a dropped connection or a truncated body. The message
            names the URL and the bytes received versus expected.
        ChecksumError: If the downloaded bytes do not match `sha256` (a
            subclass of both `DownloadError` and `ValueError`).
        ValueError: For an unsupported URL scheme, a malformed `sha256`, or
            a file name that is empty or contains a path separator.

    Example:

    >>> path = download_file(  # doctest: +SKIP
    ...     "https://storage.googleapis.com/big_vision/vit/model.npz",
    ...     sha256="0123...cdef",
    ... )
    >>> path  # doctest: +SKIP
    PosixPath('/home/me/.cache/keras_vl/model.npz')
    """
    url = gcs_to_https(url)
    scheme = urllib.parse.urlsplit(url).scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(
            f"Unsupported URL {url!r}: only http://, https:// and gs:// "
            "URLs can be downloaded."
        )
    if sha256 is not None:
        sha256 = sha256.strip().lower()
        if not _SHA256_RE.fullmatch(sha256):
            raise ValueError(
                f"`sha256` must be 64 hexadecimal digits, got {sha256!r}."
            )
    name = filename if filename is not None else _filename_from_url(url)
    _check_filename(name, url)

    directory = (
        pathlib.Path(cache_dir).expanduser()
        if cache_dir is not None
        else default_cache_dir()
    )
    final_path = directory / name
    if final_path.is_file() and (
        sha256 is None or _file_sha256(final_path) == sha256
    ):
        return final_path

    directory.mkdir(parents=True, exist_ok=True)
    partial_path, fd = _create_partial(directory, name)
    done = False
    try:
        with os.fdopen(fd, "wb") as out:
            received, expected, digest = _stream(
                url, out, timeout=timeout, progress=progress
            )
            out.flush()
            os.fsync(out.fileno())
        if expected is not None and received != expected:
            raise DownloadError(
                f"Download of {url} is truncated: received {received} of "
                f"{expected} bytes announced by Content-Length.",
                url=url,
                received=received,
                expected=expected,
            )
        if sha256 is not None and digest != sha256:
            raise ChecksumError(
                f"SHA-256 mismatch for {url}: expected {sha256}, got "
                f"{digest} after {_bytes_text(received, expected)}.",
                url=url,
                received=received,
                expected=expected,
            )
        os.replace(partial_path, final_path)
        done = True
        _fsync_directory(directory)
    finally:
        if not done:
            partial_path.unlink(missing_ok=True)
    return final_path


def _stream(
    url: str, out, *, timeout: float | None, progress: bool
) -> tuple[int, int | None, str]:
    """Copies the body of `url` into `out`.

    Returns:
        `(bytes received, Content-Length or None, hex SHA-256)`.
    """
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    received = 0
    expected = None
    try:
        response = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as err:
        err.close()
        raise DownloadError(
            f"Download of {url} failed: HTTP {err.code} {err.reason} "
            "(received 0 bytes).",
            url=url,
            received=0,
            status=err.code,
        ) from err
    except (urllib.error.URLError, OSError, http.client.HTTPException) as err:
        reason = getattr(err, "reason", None) or err
        raise DownloadError(
            f"Download of {url} failed: could not connect ({reason!r}; "
            "received 0 bytes).",
            url=url,
            received=0,
        ) from err

    with response:
        status = getattr(response, "status", None)
        if status is not None and not 200 <= status < 300:
            raise DownloadError(
                f"Download of {url} failed: unexpected HTTP status {status} "
                "(received 0 bytes).",
                url=url,
                received=0,
                status=status,
            )
        expected = _content_length(response)
        digest = hashlib.sha256()
        bar = (
            Progbar(expected if expected else None, unit_name="B")
            if progress
            else None
        )
        # `read1` returns whatever one socket read gives (at most a chunk),
        # so progress and the byte count on failure stay accurate.
        read = getattr(response, "read1", response.read)
        try:
            while True:
                try:
                    chunk = read(_CHUNK_SIZE)
                except (
                    http.client.HTTPException,  # IncompleteRead, ...
                    urllib.error.URLError,
                    OSError,  # ConnectionError, TimeoutError, ssl errors, ...
                ) as err:
                    raise DownloadError(
                        f"Download of {url} failed: connection dropped or "
                        f"timed out ({err!r}) after "
                        f"{_bytes_text(received, expected)}.",
                        url=url,
                        received=received,
                        expected=expected,
                    ) from err
                if not chunk:
                    break
                out.write(chunk)
                digest.update(chunk)
                received += len(chunk)
                if bar is not None:
                    bar.update(received, finalize=False)
        finally:
            if bar is not None:
                bar.update(received, finalize=True)
    return received, expected, digest.hexdigest()


def _content_length(response) -> int | None:
    value = response.headers.get("Content-Length")
    if value is None:
        return None
    try:
        length = int(value.strip())
    except ValueError:
        return None
    return length if length >= 0 else None


def _bytes_text(received: int, expected: int | None) -> str:
    if expected is None:
        return f"receiving {received} bytes (size unknown)"
    return f"receiving {received} of {expected} bytes"


def _filename_from_url(url: str) -> str:
    path = urllib.parse.urlsplit(url).path
    return urllib.parse.unquote(posixpath.basename(path))


def _check_filename(name: str, url: str) -> None:
    if (
        not name
        or name in (".", "..")
        or "/" in name
        or (os.altsep and os.altsep in name)
        or os.sep in name
        or "\0" in name
    ):
        raise ValueError(
            f"Cannot use {name!r} as the file name for {url}: pass a plain "
            "file name (no folders) with `filename=`."
        )


def _create_partial(directory: pathlib.Path, name: str):
    """Creates `<name>.partial-<random>` exclusively; returns (path, fd)."""
    while True:
        path = directory / f"{name}.partial-{secrets.token_hex(8)}"
        try:
            # 0o666 & ~umask, like an ordinary file (mkstemp would use 0o600).
            flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
            flags |= getattr(os, "O_BINARY", 0)
            return path, os.open(path, flags, 0o666)
        except FileExistsError:
            continue


def _file_sha256(path: pathlib.Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(_CHUNK_SIZE):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_directory(directory: pathlib.Path) -> None:
    """Makes the rename durable where the OS allows it (best effort)."""
    if os.name != "posix":
        return
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
