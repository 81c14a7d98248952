"""The LiT zero-shot guide, run in its quick (smoke test) mode."""

import importlib.util
import sys

from conftest import REPO_ROOT

from keras_vl.models import LiT

GUIDE = REPO_ROOT / "guides" / "lit_zero_shot.py"
MODES = ("Lu", "Uu", "uu")


def load_guide():
    """Imports the guide script as a module (guides are not a package)."""
    spec = importlib.util.spec_from_file_location("lit_zero_shot", GUIDE)
    module = importlib.util.module_from_spec(spec)
    # Registered first so tf.data's AutoGraph can find the module's source.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def test_quick_guide_runs_and_locks_the_image_tower(monkeypatch, capsys):
    cached_locks = []
    fit_cached = LiT.fit_cached

    def recording_fit_cached(self, *args, **kwargs):
        cached_locks.append(self.lock)
        return fit_cached(self, *args, **kwargs)

    monkeypatch.setattr(LiT, "fit_cached", recording_fit_cached)
    guide = load_guide()
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
