"""`benchmarks/generate.py` at a tiny size: every row decodes, and the
cached, uncached and transformers decoders write the same greedy tokens."""

import json
import runpy
import sys

import pytest
from conftest import REPO_ROOT

pytest.importorskip("transformers")


def test_tiny_generate_benchmark(tmp_path, monkeypatch, capsys):
    output = tmp_path / "generate.json"
    monkeypatch.syspath_prepend(str(REPO_ROOT / "benchmarks"))
    monkeypatch.setattr(
        sys,
        "argv",
        [
            "generate.py",
            "--hidden-dim", "32",
            "--layers", "2",
            "--heads", "2",
            "--feed-forward", "48",
            "--vocabulary", "300",
            "--lengths", "4", "12",
            "--uncached-max-length", "4",
            "--repeats", "1",
            "--output", str(output),
        ],
    )  # fmt: skip
    runpy.run_path(
        str(REPO_ROOT / "benchmarks" / "generate.py"), run_name="__main__"
    )
    result = json.loads(output.read_text())
    rows = result["rows"]
    assert set(rows["keras_vl cached"]) == {"4", "12"}
    assert set(rows["keras_vl uncached"]) == {"4"}
    assert set(rows["transformers"]) == {"4", "12"}
    for row in rows.values():
        for cell in row.values():
            assert cell["ms_per_token"] > 0 and 0 < cell["mfu"] < 1
    # Same weights, same greedy tokens: all 12 (cached) and 4 (uncached).
    assert result["leading_tokens_equal_to_transformers"] == {
        "keras_vl cached": 12,
        "keras_vl uncached": 4,
        "transformers": 12,
    }
    printed = capsys.readouterr().out
    assert "tok/s ours / transformers" in printed
    assert "12 / 4 new tokens" in printed
