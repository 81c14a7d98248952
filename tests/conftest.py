"""Shared test helpers.

The backend comes from ``KERAS_BACKEND`` (``make test`` runs the suite once
per backend). Golden outputs of the reference implementation live in
``../shared/fixtures`` beside the checkout (override with
``KERAS_VL_FIXTURES``). Without them the parity tests skip, except under CI
(``CI`` set), where a missing fixture folder is a failure.
"""

import contextlib
import io
import os
from collections.abc import Iterable
from pathlib import Path

# XLA:CPU compiles a tiny model's step about twice as fast with less LLVM
# optimisation. The JAX suite's time is mostly compilation of tiny models,
# so it runs with these flags (set before Keras starts JAX; XLA reads them
# once, as its backend starts); `KERAS_VL_TEST_XLA_OPTIMIZE=1` keeps XLA's
# defaults.
FAST_COMPILE_XLA_FLAGS = (
    "--xla_backend_optimization_level=0"
    " --xla_llvm_disable_expensive_passes=true"
)
if os.environ.get("KERAS_BACKEND") == "jax" and not os.environ.get(
    "KERAS_VL_TEST_XLA_OPTIMIZE"
):
    os.environ["XLA_FLAGS"] = " ".join(
        [os.environ.get("XLA_FLAGS", ""), FAST_COMPILE_XLA_FLAGS]
    ).strip()

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
FIXTURES = Path(
    os.environ.get(
        "KERAS_VL_FIXTURES", REPO_ROOT.parent / "shared" / "fixtures"
    )
)
BIG_VISION = FIXTURES / "big_vision"
VMOE = FIXTURES / "vmoe"


def backend() -> str:
    return keras.backend.backend()


def slow_on(*backends: str) -> pytest.MarkDecorator:
    """`pytest.mark.slow` when the suite runs on one of `backends` (where
    the test is heavy: `make test-slow` runs it), else a mark that does
    nothing (CI runs it). For a test or a `pytest.param`'s `marks`."""
    if backend() in backends:
        return pytest.mark.slow
    return pytest.mark.skipif(False, reason="cheap on this backend")


def require_fixtures(subdir: str) -> Path:
    """Returns ``FIXTURES/big_vision/subdir``, skipping (or failing under CI)
    when it is missing."""
    return _require_dir(BIG_VISION / subdir)


def require_vmoe_fixtures(subdir: str) -> Path:
    """Returns ``FIXTURES/vmoe/subdir`` (golden outputs of google-research's
    vmoe), skipping (or failing under CI) when it is missing."""
    return _require_dir(VMOE / subdir)


def _require_dir(path: Path) -> Path:
    if not path.is_dir():
        message = (
            f"golden fixtures not found at {path}; clone the project next to "
            "its `shared/` folder or set KERAS_VL_FIXTURES"
        )
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def load_npz(path: Path) -> dict[str, np.ndarray]:
    with np.load(path, allow_pickle=False) as data:
        return {key: data[key] for key in data.files}


def to_numpy(x) -> np.ndarray:
    return keras.ops.convert_to_numpy(x)


@pytest.fixture(autouse=True)
def _reset_dtype_policy():
    """Each test starts and ends with the float32 policy."""
    keras.config.set_dtype_policy("float32")
    yield
    keras.config.set_dtype_policy("float32")


def run_report(script: str, env: dict[str, str]) -> dict:
    """Runs `script` in a fresh Python process (e.g. with several virtual
    devices, which must be set before a backend starts) and returns the JSON
    it printed on its last line starting with `REPORT `."""
    import json
    import subprocess
    import sys

    result = subprocess.run(
        [sys.executable, "-c", script],
        env=env,
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        # Generous: a loaded 2-core machine runs the suite's backends side
        # by side.
        timeout=900,
    )
    lines = [
        line
        for line in result.stdout.splitlines()
        if line.startswith("REPORT ")
    ]
    assert result.returncode == 0 and lines, result.stderr[-4000:]
    return json.loads(lines[-1][len("REPORT ") :])


_MODULE_REPORT_SCRIPT = """
import importlib.util, json, sys
sys.path[:0] = [{tests!r}, {repo!r}]
spec = importlib.util.spec_from_file_location("_reported", {path!r})
module = importlib.util.module_from_spec(spec)
spec.loader.exec_module(module)
print("REPORT " + json.dumps(module.{function}(*{args!r})))
"""


def run_on_jax_host_devices(
    path: str,
    function: str,
    args: tuple = (),
    devices: int = 8,
    fast_compile: bool = False,
) -> dict:
    """`function(*args)` of the test module at `path`, run in a fresh JAX
    process with `devices` host devices (fixed before JAX starts), and the
    JSON-able value it returns. `fast_compile` adds
    `FAST_COMPILE_XLA_FLAGS`, for runs that compile alike and time
    nothing."""
    script = _MODULE_REPORT_SCRIPT.format(
        tests=str(REPO_ROOT / "tests"),
        repo=str(REPO_ROOT),
        path=str(path),
        function=function,
        args=tuple(args),
    )
    flags = os.environ.get("XLA_FLAGS", "")
    flags += f" --xla_force_host_platform_device_count={devices}"
    if fast_compile and FAST_COMPILE_XLA_FLAGS not in flags:
        flags += " " + FAST_COMPILE_XLA_FLAGS
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "XLA_FLAGS": flags,
    }
    return run_report(script, env)


def load_guide(name: str):
    """Imports `guides/<name>.py` as a module (guides are not a package)."""
    import importlib.util
    import sys

    spec = importlib.util.spec_from_file_location(
        name, REPO_ROOT / "guides" / f"{name}.py"
    )
    module = importlib.util.module_from_spec(spec)
    # Registered first so tf.data's AutoGraph can find the module's source.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@contextlib.contextmanager
def serve_files(files: dict[str, bytes], truncate: Iterable[str] = ()):
    """Serves `files` (URL path -> body) over HTTP on 127.0.0.1.

    Paths in `truncate` announce their full length but send only half of
    their bytes, as a dropped connection would; unknown paths get a 404.
    Yields `(base_url, requests)`, where `requests` lists the paths asked
    for, in order.
    """
    import http.server
    import threading

    truncate = set(truncate)
    requests: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_GET(self):
            requests.append(self.path)
            body = files.get(self.path)
            if body is None:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if self.path in truncate:
                body = body[: len(body) // 2]
            self.wfile.write(body)

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}", requests
    finally:
        httpd.shutdown()
        httpd.server_close()


# T5's special ids, which the released SentencePiece vocabularies use.
T5_IDS = {"pad_id": 0, "eos_id": 1, "unk_id": 2, "bos_id": -1}


def train_sentencepiece(
    corpus: list[str], vocab_size: int = 40, **ids: int
) -> bytes:
    """A tiny SentencePiece model trained on `corpus` (repeated), as a
    serialized proto; special ids default to T5's (`T5_IDS`)."""
    spm = pytest.importorskip("sentencepiece")
    proto = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus * 10),
        model_writer=proto,
        vocab_size=vocab_size,
        hard_vocab_limit=False,
        minloglevel=2,
        **(ids or T5_IDS),
    )
    return proto.getvalue()


class ScalarProbe(keras.Model):
    """`model`'s outputs, all of them, reduced to one score per example by
    fixed random weights, so that every output reaches the loss."""

    def __init__(self, model, outputs):
        super().__init__()
        self.model = model
        rng = np.random.default_rng(0)
        self.weights_of = [
            rng.normal(size=tuple(o.shape[1:])).astype("float32")
            for o in keras.tree.flatten(outputs)
        ]

    def call(self, inputs, training=False):
        outputs = keras.tree.flatten(self.model(inputs, training=training))
        return sum(
            keras.ops.sum(
                keras.ops.reshape(
                    keras.ops.cast(o, "float32")
                    * keras.ops.convert_to_tensor(w),
                    (keras.ops.shape(o)[0], -1),
                ),
                axis=1,
            )
            for o, w in zip(outputs, self.weights_of, strict=True)
        )


def sgd_step(model, inputs) -> dict:
    """One `train_on_batch` of `model` on `inputs` (loss: the mean of a
    fixed random projection of every output, plus `model.losses`) with
    SGD at learning rate 1, then every variable put back as it was.

    Returns a dict: `loss`, `gradients` (one array per trainable variable,
    `before - after`, which plain SGD at rate 1 makes the gradient), and
    `state` (every non-trainable variable after the step: seeds, counters,
    statistics).
    """
    probe = ScalarProbe(model, model(inputs))
    saved = [to_numpy(v) for v in model.variables]
    probe.compile(
        optimizer=keras.optimizers.SGD(learning_rate=1.0),
        loss=lambda y_true, y_pred: keras.ops.mean(y_pred),
    )
    batch = len(keras.tree.flatten(inputs)[0])
    before = [to_numpy(v) for v in model.trainable_variables]
    # Unseeded dropout draws from the backend's global generator (torch).
    keras.utils.set_random_seed(0)
    loss = probe.train_on_batch(inputs, np.zeros((batch,), "float32"))
    result = {
        "loss": float(loss),
        "gradients": [
            b - to_numpy(v)
            for b, v in zip(before, model.trainable_variables, strict=True)
        ],
        "state": [to_numpy(v) for v in model.non_trainable_variables],
    }
    for variable, value in zip(model.variables, saved, strict=True):
        variable.assign(value)
    return result


def assert_close_gradients(actual, expected, tolerance=5e-6):
    """Gradients equal up to float32 rounding: within `tolerance` times the
    variable's largest gradient (at least 1)."""
    scale = max(1.0, float(np.abs(expected).max()))
    np.testing.assert_allclose(actual, expected, atol=tolerance * scale)
