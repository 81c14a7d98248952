"""`Evaluator`: the demo's zero-shot and retrieval scores."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from keras_vl.data import ShapesDataset
from keras_vl.demo.demo_config import DemoConfig
from keras_vl.evaluation import ZeroShotClassifier, retrieval_recall


def attribute_prompts(
    dataset: ShapesDataset, templates: Sequence[str]
) -> list[list[str]]:
    """Each class of `dataset` described by its colour and its shape alone.

    Args:
        dataset: A `ShapesDataset`.
        templates: Format strings with `{color}` or `{shape}` (or both).

    Returns:
        One list of prompts per class, in label order, e.g. for a red
        circle `["a red shape", ..., "a circle", ...]`.

    Example:

    ```python
    prompts = attribute_prompts(ShapesDataset(), ["a {color} shape"])
    prompts[0]  # ["a red shape"]
    ```
    """
    return [
        [t.format(color=color, shape=shape) for t in templates]
        for color, shape in dataset.classes
    ]


class Evaluator:
    """Zero-shot top-1 (seen and held-out classes) and recall@1.

    Test images are drawn once, fresh (never trained on), so every
    evaluation of a run scores the same examples.

    The zero-shot classifier describes every class by its colour-only and
    shape-only captions ("a red shape", "a circle", from
    `DemoConfig.partial_caption_templates`): their mean embedding points at
    images with both attributes, whether or not any caption ever named the
    combination. The same scores with class-name prompts ("a red circle",
    the `name_*` metrics) are reported beside them: on held-out classes
    they depend on how the model reads a phrase it never trained on.

    Calling the evaluator on a model returns `seen_top1`, `held_out_top1`,
    `name_seen_top1`, `name_held_out_top1`, `text_top1` (captions
    classified against the class embeddings), `t2i_recall1` and
    `i2t_recall1`, all in [0, 1].

    Args:
        dataset: The `ShapesDataset` the model trains on.
        config: Evaluation sizes.
        seed: Seed of the test samples.

    Example:

    ```python
    evaluator = Evaluator(ShapesDataset(image_size=48), QUICK_CONFIG)
    metrics = evaluator(model)  # a trained CLIPPO
    metrics["held_out_top1"]
    ```
    """

    def __init__(
        self, dataset: ShapesDataset, config: DemoConfig, seed: int = 0
    ):
        self.dataset = dataset
        self.config = config
        # Seeds far from the training stream's, drawn by `sample`.
        self.seen = dataset.sample(
            config.num_seen_test, split="train", seed=10_000 + seed
        )
        self.held_out = dataset.sample(
            config.num_held_out_test, split="held_out", seed=20_000 + seed
        )
        pairs = config.retrieval_pool * config.num_retrieval_pools
        self.retrieval = dataset.sample(pairs, split="all", seed=30_000 + seed)

    def __call__(self, model: Any) -> dict[str, float]:
        """Evaluates `model` (with `encode_images` and `encode_texts`)."""
        # Thousands of examples: `encode_*` run them compiled, in batches.
        by_name = ZeroShotClassifier(
            model,
            self.dataset.class_names,
            templates=self.dataset.prompt_templates,
        )
        classifier = ZeroShotClassifier(
            model,
            self.dataset.class_names,
            class_prompts=attribute_prompts(
                self.dataset, self.config.partial_caption_templates
            ),
        )
        # Each split is encoded once and scored by both classifiers.
        embeddings = {
            split: model.encode_images(getattr(self, split)["images"])
            for split in ("seen", "held_out")
        }
        metrics = {}
        for prefix, zero_shot in (("", classifier), ("name_", by_name)):
            for split in ("seen", "held_out"):
                metrics[f"{prefix}{split}_top1"] = zero_shot.evaluate(
                    labels=getattr(self, split)["labels"],
                    ks=(1,),
                    image_embeddings=embeddings[split],
                )["top1"]
        images = model.encode_images(self.retrieval["images"])
        texts = model.encode_texts(self.retrieval["captions"])
        # How well captions alone are classified: whether the text side
        # reads both words, whatever the images do.
        predictions = np.argmax(texts @ classifier.class_embeddings.T, -1)
        metrics["text_top1"] = float(
            np.mean(predictions == self.retrieval["labels"])
        )
        pool = self.config.retrieval_pool
        recalls = [
            retrieval_recall(
                images[lo : lo + pool], texts[lo : lo + pool], ks=(1,)
            )
            for lo in range(0, len(images), pool)
        ]
        for key, name in (
            ("text_to_image/recall@1", "t2i_recall1"),
            ("image_to_text/recall@1", "i2t_recall1"),
        ):
            metrics[name] = float(np.mean([r[key] for r in recalls]))
        return metrics
