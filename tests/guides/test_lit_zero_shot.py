"""The LiT zero-shot guide, run in its quick (smoke test) mode."""

from conftest import load_guide, slow_on

from keras_vl.models import LiT

MODES = ("Lu", "Uu", "uu")


# About 100 s on TensorFlow, whose graph traces dominate the quick run;
# `make test-slow` runs it there, CI on JAX and PyTorch.
@slow_on("tensorflow")
def test_quick_guide_runs_and_locks_the_image_tower(monkeypatch, capsys):
    cached_locks = []
    fit_cached = LiT.fit_cached

    def recording_fit_cached(self, *args, **kwargs):
        cached_locks.append(self.lock)
        return fit_cached(self, *args, **kwargs)

    monkeypatch.setattr(LiT, "fit_cached", recording_fit_cached)
    guide = load_guide("lit_zero_shot")
    results = guide.main(["--quick", "--seed", "0"])

    assert set(results["lit"]) == set(MODES)
    assert 0.0 <= results["classifier"]["seen_top1"] <= 1.0
    for lock in MODES:
        row = results["lit"][lock]
        for key in ("seen_top1", "held_out_top1"):
            assert 0.0 <= row[key] <= 1.0, (lock, key, row[key])
        assert row["train_seconds"] > 0
        # Every mode trains its text tower.
        assert row["text_tower_change"] > 1e-4, lock
    # "L": not one bit of the pretrained image tower moves; "U" and "u"
    # train theirs.
    assert results["lit"]["Lu"]["image_tower_change"] == 0.0
    assert results["lit"]["Uu"]["image_tower_change"] > 1e-4
    assert results["lit"]["uu"]["image_tower_change"] > 1e-4
    # Only the locked mode takes the cached-feature fast path.
    assert cached_locks == ["Lu"]

    table = capsys.readouterr().out
    for lock in MODES:
        assert f"\n{lock} " in table
    assert "held-out" in table
