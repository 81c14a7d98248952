"""The LIMoE modality-experts guide, run in its quick (smoke test) mode."""

import math

import numpy as np
from conftest import load_guide, slow_on

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


# About 100 s on TensorFlow, whose graph traces dominate the quick run;
# `make test-slow` runs it there, CI on JAX and PyTorch.
@slow_on("tensorflow")
def test_quick_guide_compares_routing_with_and_without_entropy_losses(
    tmp_path, capsys
):
    guide = load_guide("limoe_modality_experts")
    results = guide.main(
        ["--quick", "--seed", "0", "--output-dir", str(tmp_path)]
    )

    runs = results["runs"]
    assert list(runs) == list(guide.RUNS)
    without, with_losses = runs.values()
    num_experts = results["num_experts"]
    max_entropy = math.log(num_experts)
    for name, run in runs.items():
        for key in ("seen_top1", "held_out_top1"):
            assert 0.0 <= run[key] <= 1.0, (name, key, run[key])
        assert np.isfinite(run["loss"]), name
        assert run["layers"], name
        for layer in run["layers"]:
            for modality in guide.MODALITIES:
                stats = layer[modality]
                shares = np.asarray(stats["shares"])
                assert shares.shape == (num_experts,)
                assert np.all((shares >= 0) & (shares <= 1)), shares
                # Kept tokens and dropped ones make up all real tokens.
                np.testing.assert_allclose(
                    shares.sum() + stats["dropped"], 1.0, atol=1e-6
                )
                assert 0.0 <= stats["dropped"] <= 1.0
                assert 0 <= stats["experts_used"] <= num_experts
                for key in ("global_entropy", "token_entropy"):
                    value = stats[key]
                    assert -1e-6 <= value <= max_entropy + 1e-6, (key, value)
                np.testing.assert_allclose(
                    stats["effective_experts"],
                    math.exp(stats["global_entropy"]),
                    rtol=1e-6,
                )
                assert 1.0 - 1e-6 <= stats["effective_experts"] <= num_experts

    # The comparison is real: only the second run's loss has entropy terms.
    assert without["moe_entropy_loss"] == 0.0
    assert with_losses["moe_entropy_loss"] > 1e-3
    assert without["moe_auxiliary_loss"] > 0.0

    figure = tmp_path / "modality_experts.png"
    assert results["figure"] == str(figure)
    data = figure.read_bytes()
    assert len(data) > 1000
    assert data.startswith(PNG_SIGNATURE)

    table = capsys.readouterr().out
    for name in guide.RUNS:
        assert name in table
    assert "dropped tokens" in table
    assert "held-out" in table
