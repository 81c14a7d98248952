"""The demo's scores, with a stand-in model that reads words."""

import dataclasses

import numpy as np

from keras_vl.data import ShapesDataset
from keras_vl.demo import (
    DEMO_PARTIAL_CAPTION_TEMPLATES,
    QUICK_CONFIG,
    Evaluator,
    attribute_prompts,
)
from keras_vl.evaluation import ZeroShotClassifier


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
