"""Raw CLIPPO inputs (pixels, strings) -> ClippoBackbone inputs."""

import keras
import numpy as np
from keras_hub.models import Preprocessor
from keras_hub.src.utils.tensor_utils import preprocessing_function

from keras_vl.models.clippo.clippo_backbone import ClippoBackbone
from keras_vl.models.preprocessing import (
    check_resize_mode,
    check_same_batch_size,
    resized_pixels,
)
from keras_vl.models.preset_files import CheckedPresetFiles
from keras_vl.utils.converted_presets import (
    converted_preset_dir,
    is_converted_preset,
)

try:
    import tensorflow as tf
except ImportError:  # pragma: no cover - tensorflow comes with keras-hub
    tf = None


@keras.saving.register_keras_serializable(package="keras_vl")
class ClippoPreprocessor(CheckedPresetFiles, Preprocessor):
    """Turns raw image-text pairs into `ClippoBackbone` inputs.

    Images (uint8, or float in `[0, 255]`, `[B, H, W, 3]`) are resized to
    `image_size` (as `resize` says; skipped when the size already matches)
    and mapped to `[-1, 1]` by `v / 255 * 2 - 1`. Strings are decoded
    from UTF-8 into code points (invalid bytes become U+FFFD), cut to
    `sequence_length` and padded with -1; the backbone renders them. Runs in
    `tf.data` pipelines and eagerly on numpy batches.

    Input dict keys (a batch, or one example without the batch axis, as
    `tf.data.Dataset.map` passes before batching):
        texts: strings `[B]` (required).
        images: pixels `[B, H, W, 3]`; optional when every example is a
            text-text pair.
        image_texts: strings `[B]` rendered in place of the image (text-text
            pairs, e.g. consecutive sentences); an empty string keeps that
            example's image, so one batch can mix both kinds.

    Args:
        image_size: Side of the model's square input.
        sequence_length: Code points kept per string. Defaults to 768 (the
            renderer's `max_chars`, which is exact for any string); a
            smaller value saves work when texts are short. Strings longer
            than this are cut.
        resize: `"antialiased"` bilinear (default), or `"big_vision"`:
            bilinear without antialiasing, integer pixels rounded down
            again, as big_vision's `resize` op fed the released models
            (their converted presets use it).
        **kwargs: Standard layer arguments.

    Example:

    ```python
    preprocessor = keras_vl.models.ClippoPreprocessor(image_size=224)
    x = preprocessor({"images": uint8_images, "texts": ["a cat", "a dog"]})
    ```
    """

    backbone_cls = ClippoBackbone

    def __init__(
        self,
        image_size: int = 224,
        sequence_length: int = 768,
        resize: str = "antialiased",
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in (
            ("image_size", image_size),
            ("sequence_length", sequence_length),
        ):
            if not isinstance(value, int) or isinstance(value, bool):
                raise TypeError(f"`{name}` must be an int. Received: {value!r}")
            if value < 1:
                raise ValueError(f"`{name}` must be >= 1. Received: {value}")
        self._image_size = image_size
        self.sequence_length = sequence_length
        self.resize = check_resize_mode(resize)

    @property
    def image_size(self) -> int:
        """Side of the model's square input."""
        return self._image_size

    def __call__(self, x, *args, **kwargs):
        # Before keras-hub turns Python strings into tensors, which fails
        # on strings UTF-8 cannot encode (lone surrogates) without naming
        # the input.
        for name in ("texts", "image_texts"):
            texts = x.get(name) if isinstance(x, dict) else None
            if isinstance(texts, list | tuple | np.ndarray):
                _check_encodable(texts, name)
        return super().__call__(x, *args, **kwargs)

    @preprocessing_function
    def call(self, x, y=None, sample_weight=None):
        if not isinstance(x, dict) or "texts" not in x:
            raise ValueError(
                "`ClippoPreprocessor` expects a dict with a 'texts' entry "
                "(and 'images' and/or 'image_texts'). Received: "
                f"{type(x).__name__}"
                + (f" with keys {sorted(x)}" if isinstance(x, dict) else "")
            )
        unknown = set(x) - {"texts", "images", "image_texts"}
        if unknown:
            raise ValueError(
                f"Unexpected input keys {sorted(unknown)}; expected 'texts', "
                "'images', 'image_texts'."
            )
        texts = self._codepoints(x["texts"], "texts")
        # No batch axis for one example; a list keeps the rank static.
        batch_shape = [] if texts.shape.rank == 1 else [tf.shape(texts)[0]]
        if "image_texts" in x:
            image_texts = self._codepoints(x["image_texts"], "image_texts")
        else:
            image_texts = tf.fill(batch_shape + [1], -1)
        if "images" in x:
            images = self._images(x["images"])
        elif "image_texts" in x:
            size = self.image_size
            images = tf.zeros(batch_shape + [size, size, 3])
        else:
            raise ValueError(
                "Pass 'images' (image-text pairs) or 'image_texts' "
                "(text-text pairs) next to 'texts'."
            )
        check_same_batch_size(images, texts)
        outputs = {"images": images, "texts": texts, "image_texts": image_texts}
        return keras.utils.pack_x_y_sample_weight(outputs, y, sample_weight)

    def _codepoints(self, texts, name):
        texts = tf.convert_to_tensor(texts)
        if texts.dtype != tf.string:
            raise TypeError(
                f"'{name}' must be strings. Received dtype {texts.dtype.name}"
            )
        if texts.shape.rank not in (0, 1):
            raise ValueError(
                f"'{name}' must be a batch of strings (rank 1) or one string. "
                f"Received shape {texts.shape}"
            )
        single = texts.shape.rank == 0
        batch = texts[None] if single else texts
        codepoints = tf.strings.unicode_decode(batch, "UTF-8", errors="replace")
        codepoints = codepoints[:, : self.sequence_length]
        # Pad to a fixed length so compiled steps keep one shape.
        codepoints = codepoints.to_tensor(
            default_value=-1, shape=[None, self.sequence_length]
        )
        return codepoints[0] if single else codepoints

    def _images(self, images):
        size = (self.image_size, self.image_size)
        images = resized_pixels(images, size, channels=3, resize=self.resize)
        return images * (2.0 / 255.0) - 1.0

    @classmethod
    def from_preset(cls, preset: str, **kwargs):
        """Loads the preprocessor of a preset: a local directory, a
        `kaggle://` or `hf://` handle, or a name in `Clippo.presets`
        (downloaded and converted on first use)."""
        if is_converted_preset(preset):
            preset = converted_preset_dir(preset)
        return super().from_preset(preset, **kwargs)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_size": self.image_size,
                "sequence_length": self.sequence_length,
                "resize": self.resize,
            }
        )
        return config


def _check_encodable(texts, name: str) -> None:
    for index, text in enumerate(np.asarray(texts, dtype=object).ravel()):
        if isinstance(text, str):
            try:
                text.encode("utf-8")
            except UnicodeEncodeError as error:
                raise ValueError(
                    f"'{name}' must hold valid Unicode strings; entry "
                    f"{index} does not: {error}"
                ) from None
