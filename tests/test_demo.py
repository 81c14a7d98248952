"""The end-to-end demo, in its quick (smoke test) form."""

import dataclasses

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
    Evaluator,
    attribute_prompts,
    run_demo,
    training_data,
)
from keras_vl.evaluation import ZeroShotClassifier
from keras_vl.layers import TextRenderer
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


class _WordModel:
    """Embeds a text by the colour and shape words it names; every image
    alike (only the text side matters here)."""

    def __init__(self, dataset):
        self.words = dataset.colors + dataset.shapes
        self.texts = []

    def encode_texts(self, texts):
        self.texts += list(texts)
        out = np.array(
            [[w in t.split() for w in self.words] for t in texts], "float32"
        )
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1)

    def encode_images(self, images):
        out = np.ones((len(images), len(self.words)), "float32")
        return out / np.linalg.norm(out, axis=1, keepdims=True)


def test_evaluator_describes_classes_by_their_attributes():
    config = dataclasses.replace(
        QUICK_CONFIG, num_seen_test=4, num_held_out_test=4, retrieval_pool=4
    )
    dataset = ShapesDataset(image_size=config.image_size, seed=0)
    color, shape = dataset.held_out_classes[0]
    label = dataset.classes.index((color, shape))
    prompts = attribute_prompts(dataset, DEMO_PARTIAL_CAPTION_TEMPLATES)
    assert len(prompts) == len(dataset.classes)
    assert f"a {color} shape" in prompts[label]
    assert f"a {shape}" in prompts[label]
    assert not any(f"{color} {shape}" in p for p in prompts[label])

    model = _WordModel(dataset)
    metrics = Evaluator(dataset, config)(model)
    assert {
        "seen_top1",
        "held_out_top1",
        "name_seen_top1",
        "name_held_out_top1",
    } <= set(metrics)
    # Class-name prompts name the whole held-out combination.
    assert any(f"{color} {shape}" in t for t in model.texts)
    # The attribute prompts' mean embedding is the class's colour and shape
    # directions in equal parts.
    classifier = ZeroShotClassifier(
        model, dataset.class_names, class_prompts=prompts
    )
    expected = np.zeros(len(model.words))
    expected[[model.words.index(color), model.words.index(shape)]] = 0.5**0.5
    np.testing.assert_allclose(
        classifier.class_embeddings[label], expected, atol=1e-6
    )


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
