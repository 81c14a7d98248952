"""`benchmarks/gpu.py --quick` runs end to end without TensorFlow.

The check runs on JAX only (the script measures that backend), with XLA's
cheaper CPU compilation: the quick rows' times mean nothing, and compiling
their training steps is most of the check's cost.
"""

import json

import keras
import pytest
from conftest import FAST_COMPILE_XLA_FLAGS
from without_tensorflow import run_without_tensorflow

pytestmark = pytest.mark.skipif(
    keras.backend.backend() != "jax",
    reason="benchmarks/gpu.py measures the JAX backend only",
)


def test_quick_gpu_benchmark_runs_without_tensorflow(tmp_path):
    output = tmp_path / "gpu.json"
    out = run_without_tensorflow(
        "import os, runpy, sys\n"
        "os.environ['KERAS_BACKEND'] = 'jax'\n"
        "sys.path.insert(0, 'benchmarks')\n"
        f"sys.argv = ['gpu.py', '--quick', '--output', {str(output)!r}]\n"
        "runpy.run_path('benchmarks/gpu.py', run_name='__main__')\n",
        env={"XLA_FLAGS": FAST_COMPILE_XLA_FLAGS},
    )
    assert out.strip().endswith("TENSORFLOW_MODULES 0")
    result = json.loads(output.read_text())
    assert result["bf16_ceiling_tflops"] > 0
    ours = {"CLIPPO tiny", "LiT tiny (uu)", "LIMoE tiny E=4"}
    big_vision = {"big_vision CLIPPO tiny", "big_vision two-tower tiny"}
    assert set(result["rows"]) in (ours, ours | big_vision)
    for row in result["rows"].values():
        assert row["step_ms"] > 0
        assert row["pairs_per_s"] == pytest.approx(
            result["config"]["batch_size"] / (row["step_ms"] / 1e3)
        )
        assert 0 < row["mfu"] < 1
    assert "skipped" in result["pali_decode"]
