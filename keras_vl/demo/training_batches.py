"""The demo's training stream: captioned shapes, text pairs, unnamed hues.

Each batch mixes images of the training classes (with full and partial
captions, some as CLIPPO's text-text pairs) with the same shapes in hues no
caption names, and comes with its positives matrix as the target of `fit`.
"""

from __future__ import annotations

import colorsys

import numpy as np

from keras_vl.data import ShapesDataset
from keras_vl.demo.demo_config import UNNAMED_HUE_TEMPLATES, DemoConfig


def training_datasets(
    dataset: ShapesDataset, config: DemoConfig
) -> tuple[ShapesDataset, ShapesDataset]:
    """The two generators of the training stream.

    Args:
        dataset: The demo's `ShapesDataset` (evaluation captions).
        config: Caption phrasings and unnamed hues.

    Returns:
        `(captioned, unnamed)`: `dataset`'s classes and images with the
        training captions (full and partial), and the same shapes in
        `config.num_unnamed_hues` hues with shape-only captions.

    Example:

    ```python
    captioned, unnamed = training_datasets(ShapesDataset(), DEFAULT_CONFIG)
    unnamed.sample(2, split="all", seed=0)["captions"]  # e.g. ["a star", ...]
    ```
    """
    common = dict(
        image_size=dataset.image_size,
        radius_range=dataset.radius_range,
        seed=dataset.seed,
    )
    captioned = ShapesDataset(
        colors=dataset.palette,
        shapes=dataset.shapes,
        held_out=dataset.held_out_classes or None,
        caption_templates=(
            config.caption_templates + config.partial_caption_templates
        ),
        **common,
    )
    hues = {
        f"hue {k}": tuple(
            round(255 * v)
            for v in colorsys.hsv_to_rgb(k / config.num_unnamed_hues, 0.8, 0.9)
        )
        for k in range(config.num_unnamed_hues)
    }
    unnamed = ShapesDataset(
        colors=hues,
        shapes=dataset.shapes,
        held_out=None,
        caption_templates=UNNAMED_HUE_TEMPLATES,
        **common,
    )
    return captioned, unnamed


def training_data(dataset: ShapesDataset, config: DemoConfig, seed: int = 0):
    """The endless `tf.data` stream of training batches for `fit`.

    Each batch holds `config.batch_size` pairs: images of the training
    classes with full and partial captions (the first
    `text_pair_fraction` of them as text-text pairs), then shapes in
    unnamed hues. The target is the batch's positives matrix.

    Args:
        dataset: The `ShapesDataset`.
        config: Batch composition and captions.
        seed: Seed of the stream.

    Returns:
        A `tf.data.Dataset` of `(inputs, positives)`: dicts `images`,
        `texts` and `image_texts`, and a bool `[B, B]` matrix.

    Example:

    ```python
    dataset = ShapesDataset(image_size=48, radius_range=(0.18, 0.30))
    inputs, positives = next(iter(training_data(dataset, QUICK_CONFIG)))
    ```
    """
    import tensorflow as tf  # Only for the tf.data pipeline.

    batch = config.batch_size
    num_hued = round(config.unnamed_hue_fraction * batch)
    count = round(config.text_pair_fraction * batch)
    captioned, unnamed = training_datasets(dataset, config)
    keys = ("images", "texts", "labels")
    parts = [
        captioned.as_tf_dataset(
            "train", batch - num_hued, seed=seed, with_labels=True
        )
    ]
    if num_hued:
        parts.append(
            unnamed.as_tf_dataset("all", num_hued, seed=seed, with_labels=True)
        )

    def join(*arrays):
        # Without unnamed hues, an empty slice of the captioned batch.
        hued = arrays[3:] or [array[:0] for array in arrays]
        inputs, positives = _training_batch(
            dataset,
            unnamed,
            count,
            dict(zip(keys, arrays[:3], strict=True)),
            dict(zip(keys, hued, strict=True)),
        )
        return (
            inputs["images"],
            inputs["texts"],
            inputs["image_texts"],
            positives,
        )

    def to_inputs(*batches):
        arrays = [part[key] for part in batches for key in keys]
        images, texts, image_texts, positives = tf.numpy_function(
            join,
            arrays,
            [tf.uint8, tf.string, tf.string, tf.bool],
            stateful=False,
        )
        size = dataset.image_size
        images.set_shape([batch, size, size, 3])
        texts.set_shape([batch])
        image_texts.set_shape([batch])
        positives.set_shape([batch, batch])
        inputs = {"images": images, "texts": texts, "image_texts": image_texts}
        return inputs, positives

    data = tf.data.Dataset.zip(*parts) if num_hued else parts[0]
    return data.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE)


def _training_batch(dataset, unnamed, count, captioned, hued):
    """Joins a captioned and an unnamed-hue batch (numpy dicts) into the
    model's inputs and the positives target of `caption_positives`."""
    image_texts = _partner_captions(
        captioned["texts"], captioned["labels"], count
    )
    # What each image slot shows: a partner caption (text pairs), a class,
    # or a shape in a hue no caption names.
    shown = [
        image_texts[i] if image_texts[i] else int(label)
        for i, label in enumerate(captioned["labels"])
    ] + [(None, unnamed.classes[label][1]) for label in hued["labels"]]
    texts = np.concatenate([captioned["texts"], hued["texts"]])
    inputs = {
        "images": np.concatenate([captioned["images"], hued["images"]]),
        "texts": texts,
        "image_texts": np.concatenate(
            [image_texts, np.full(len(hued["texts"]), b"", np.bytes_)]
        ),
    }
    positives = dataset.caption_positives(shown, texts)
    # A text pair whose first text is partial ("a red shape") does not
    # name all its partner names, but is a pair all the same.
    positives |= np.eye(len(texts), dtype=bool)
    return inputs, positives


def _partner_captions(texts: np.ndarray, labels: np.ndarray, count: int):
    """For the first `count` rows, the caption of the next row of the same
    class (cyclically; the row itself if it is its class's only one); empty
    strings for the other rows."""
    partners = np.full(len(texts), b"", dtype=object)
    for i in range(min(count, len(texts))):
        same = np.flatnonzero(labels == labels[i])
        position = np.searchsorted(same, i)
        partners[i] = texts[same[(position + 1) % len(same)]]
    return partners.astype(np.bytes_)
