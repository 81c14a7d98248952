"""How the image-text preprocessors resize pixels."""

import numpy as np
import pytest
import tensorflow as tf

from keras_vl.models import ClippoPreprocessor, LiTPreprocessor
from keras_vl.models.preprocessing import resized_pixels

IMAGES = np.random.default_rng(0).integers(0, 256, (2, 40, 40, 3), "uint8")


def big_vision_resize(image, size):
    """big_vision's `resize` op (its defaults), written out here."""
    resized = tf.image.resize(image, (size, size), method="bilinear")
    return tf.cast(tf.clip_by_value(resized, 0, 255), tf.uint8).numpy()


def test_big_vision_mode_is_big_vision_resize_op():
    ours = resized_pixels(IMAGES, (16, 16), resize="big_vision").numpy()
    expected = np.stack([big_vision_resize(image, 16) for image in IMAGES])
    np.testing.assert_array_equal(ours, expected.astype("float32"))
    # Antialiasing (the default) gives other pixels when shrinking.
    antialiased = resized_pixels(IMAGES, (16, 16)).numpy()
    assert np.abs(antialiased - ours).max() > 1.0


@pytest.mark.parametrize(
    "preprocessor, texts",
    [
        (
            ClippoPreprocessor(16, sequence_length=8, resize="big_vision"),
            ["a", "b"],
        ),
        (
            LiTPreprocessor(image_size=16, pad_id=0, resize="big_vision"),
            [[2], [3]],
        ),
    ],
    ids=["clippo", "lit"],
)
def test_preprocessors_resize_as_configured(preprocessor, texts):
    inputs = {"images": IMAGES, "texts": texts}
    images = np.asarray(preprocessor(inputs)["images"])
    expected = np.stack([big_vision_resize(image, 16) for image in IMAGES])
    np.testing.assert_allclose(images, expected / 127.5 - 1.0, atol=1e-6)
    config = preprocessor.get_config()
    assert config["resize"] == "big_vision"
    assert type(preprocessor).from_config(config).resize == "big_vision"


def test_unknown_resize_mode_names_the_argument():
    with pytest.raises(ValueError, match="`resize` must be one of"):
        LiTPreprocessor(resize="nearest")
    with pytest.raises(ValueError, match="`resize` must be one of"):
        ClippoPreprocessor(resize="area")
