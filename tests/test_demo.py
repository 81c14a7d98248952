"""The end-to-end demo, in its quick (smoke test) form."""

import numpy as np
import pytest
from conftest import to_numpy
from PIL import Image

from keras_vl.data import ShapesDataset
from keras_vl.demo import (
    DEFAULT_CONFIG,
    DEMO_CAPTION_TEMPLATES,
    DEMO_PARTIAL_CAPTION_TEMPLATES,
    FIGURE_NAME,
    PRESET_NAME,
    QUICK_CONFIG,
    UNNAMED_HUE_TEMPLATES,
    DemoConfig,
    run_demo,
    training_data,
)
from keras_vl.layers import TextRenderer
from keras_vl.models import Clippo

SCORES = (
    "seen_top1",
    "held_out_top1",
    "held_out_top1_last",
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
    assert "text->image recall@1" in out

    with Image.open(tmp_path / FIGURE_NAME) as figure:
        assert figure.format == "PNG"
        assert figure.width > 256 and figure.height > 256

    # The preset reloads into a working model.
    model = Clippo.from_preset(str(tmp_path / PRESET_NAME))
    embeddings = model.encode_texts(["a red circle", "a blue star"])
    assert embeddings.shape[0] == 2
    np.testing.assert_allclose(np.linalg.norm(embeddings, axis=-1), 1.0, 1e-4)


def test_config_rejects_steps_not_a_multiple_of_eval_every():
    with pytest.raises(ValueError, match="eval_every"):
        DemoConfig(steps=5, eval_every=2)
    with pytest.raises(ValueError, match="unnamed_hue_fraction"):
        DemoConfig(text_pair_fraction=0.5, unnamed_hue_fraction=0.5)


def test_training_batches_and_their_positives():
    config = QUICK_CONFIG
    dataset = ShapesDataset(
        image_size=config.image_size,
        caption_templates=config.caption_templates,
        radius_range=config.radius_range,
    )
    inputs, positives = next(iter(training_data(dataset, config, seed=3)))
    batch, size = config.batch_size, config.image_size
    texts = [t.decode() for t in np.asarray(inputs["texts"])]
    image_texts = [t.decode() for t in np.asarray(inputs["image_texts"])]
    positives = np.asarray(positives)
    assert np.asarray(inputs["images"]).shape == (batch, size, size, 3)
    assert positives.shape == (batch, batch) and positives.dtype == bool
    assert positives.diagonal().all()
    num_hued = round(config.unnamed_hue_fraction * batch)
    num_pairs = round(config.text_pair_fraction * batch)
    assert all(image_texts[:num_pairs]) and not any(image_texts[num_pairs:])
    # The unnamed-hue rows name a shape only and match exactly the
    # captions naming no colour and their shape (or nothing).
    for i in range(batch - num_hued, batch):
        assert not any(color in texts[i] for color in dataset.colors)
        (shape,) = [s for s in dataset.shapes if s in texts[i]]
        for j, text in enumerate(texts):
            named_color = any(color in text for color in dataset.colors)
            other_shape = any(s in text for s in dataset.shapes if s != shape)
            assert positives[i, j] == (not named_color and not other_shape)
    # No caption names a held-out combination.
    for text in texts:
        named = set(text.split())
        for color, shape in dataset.held_out_classes:
            assert not {color, shape} <= named, text


@pytest.mark.parametrize(
    "template",
    DEMO_CAPTION_TEMPLATES
    + DEMO_PARTIAL_CAPTION_TEMPLATES
    + UNNAMED_HUE_TEMPLATES,
)
def test_longest_demo_captions_fit_the_rendered_image(template):
    # The last character still draws ink, so no caption of the demo loses
    # its colour or shape word off the edge of the rendering.
    config = DEFAULT_CONFIG
    caption = template.format(
        color="yellow", shape="triangle", size="medium-sized"
    )
    assert len(caption) <= config.sequence_length
    renderer = TextRenderer(
        image_size=config.image_size, font_size=config.font_size
    )
    full, cut = to_numpy(renderer([caption, caption[:-1]]))
    assert (full != cut).any(), caption
