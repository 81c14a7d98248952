"""The demo's training stream and the positives of each batch."""

import numpy as np

from keras_vl.data import ShapesDataset
from keras_vl.demo import QUICK_CONFIG, training_data


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
