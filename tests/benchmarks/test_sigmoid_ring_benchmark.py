"""`benchmarks/sigmoid_ring.py --quick`: every row compiles on forced host
devices and the ring needs less memory per device than the all-gather."""

import json
import os
import subprocess
import sys

import pytest
from conftest import REPO_ROOT, backend


@pytest.mark.skipif(backend() != "jax", reason="the ring runs on JAX meshes")
def test_quick_sigmoid_ring_benchmark(tmp_path):
    output = tmp_path / "ring.json"
    env = {
        **os.environ,
        "KERAS_BACKEND": "jax",
        "JAX_PLATFORMS": "cpu",
        "TF_CPP_MIN_LOG_LEVEL": "2",
        "PYTHONPATH": str(REPO_ROOT),
    }
    result = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "benchmarks" / "sigmoid_ring.py"),
            "--quick",
            "--output",
            str(output),
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    assert "ring / gather" in result.stdout
    report = json.loads(output.read_text())
    assert report["devices"] == 4
    (rows,) = report["rows"].values()
    for row in ("gather", "ring", "ring, autodiff"):
        assert rows[row]["total_bytes"] > 0, rows
    assert rows["ring"]["total_bytes"] < rows["gather"]["total_bytes"], rows
