"""`benchmarks/memory.py --quick`: both rows measure and the table prints
the ratios."""

import json
import runpy
import sys

import keras
import pytest
from conftest import REPO_ROOT


# Two compiled ViT steps, and on torch and TensorFlow a fresh process per
# row: 30-60 s a backend.
@pytest.mark.slow
def test_quick_memory_benchmark(tmp_path, monkeypatch, capsys):
    output = tmp_path / "memory.json"
    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    monkeypatch.setattr(
        sys,
        "argv",
        ["memory.py", "--quick", "--steps", "1", "--output", str(output)],
    )
    runpy.run_path(
        str(REPO_ROOT / "benchmarks" / "memory.py"), run_name="__main__"
    )
    result = json.loads(output.read_text())
    assert result["backend"] == keras.backend.backend()
    for row in ("plain", "remat"):
        assert result[row]["step_s"] > 0
        assert result[row]["peak_bytes"] >= 0
    if keras.backend.backend() == "jax":
        # XLA's own figure, exact: remat keeps fewer activations.
        assert 0 < result["remat"]["peak_bytes"]
        assert result["remat"]["peak_bytes"] < result["plain"]["peak_bytes"]
    printed = capsys.readouterr().out
    assert "remat / plain" in printed and "peak memory" in printed
