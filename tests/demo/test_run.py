"""The end-to-end demo, in its quick (smoke test) form."""

import numpy as np
from PIL import Image

from keras_vl.demo import FIGURE_NAME, PRESET_NAME, run_demo
from keras_vl.models import Clippo

SCORES = (
    "seen_top1",
    "held_out_top1",
    "held_out_top1_last",
    "name_seen_top1",
    "name_held_out_top1",
    "t2i_recall1",
    "i2t_recall1",
    "chance",
)


def test_quick_demo_writes_outputs_and_scores(tmp_path, capsys):
    metrics = run_demo(str(tmp_path), quick=True, seed=0)

    for key in SCORES:
        assert 0.0 <= metrics[key] <= 1.0, (key, metrics[key])
    assert metrics["chance"] == 1.0 / metrics["num_classes"]
    assert (
        metrics["num_seen"] + metrics["num_held_out"]
        == (metrics["num_classes"])
    )
    assert metrics["wall_time_s"] > 0
    out = capsys.readouterr().out
    assert "held-out combinations" in out
    assert "with class-name prompts" in out
    assert "text->image recall@1" in out

    with Image.open(tmp_path / FIGURE_NAME) as figure:
        assert figure.format == "PNG"
        assert figure.width > 256 and figure.height > 256

    # The preset reloads into a working model.
    model = Clippo.from_preset(str(tmp_path / PRESET_NAME))
    embeddings = model.encode_texts(["a red circle", "a blue star"])
    assert embeddings.shape[0] == 2
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1), 1.0, 1e-4)
