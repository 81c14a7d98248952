"""Raw LIMoE inputs (pixels, strings) -> LIMoEBackbone inputs."""

import keras
from keras_hub.models import Preprocessor
from keras_hub.src.utils.tensor_utils import preprocessing_function

from keras_vl.models.limoe.limoe_backbone import LIMoEBackbone
from keras_vl.models.preprocessing import (
    check_same_batch_size,
    resized_pixels,
    special_token_id,
)
from keras_vl.models.preset_files import CheckedPresetFiles
from keras_vl.ops import pair

try:
    import tensorflow as tf
except ImportError:  # pragma: no cover - tensorflow comes with keras-hub
    tf = None


@keras.saving.register_keras_serializable(package="keras_vl")
class LIMoEPreprocessor(CheckedPresetFiles, Preprocessor):
    """Turns raw image-text pairs into `LIMoEBackbone` inputs.

    Images (uint8, or float in `[0, 255]`, `[B, H, W, C]`) are resized to
    `image_size` (antialiased bilinear, skipped when the size matches) and
    mapped to `[-1, 1]`, as `ClippoPreprocessor` does. Strings are
    lowercased (ASCII; `lower=False` for cased vocabularies), tokenized by a
    keras-hub tokenizer, cut to `sequence_length - 1` tokens, ended with the
    end token (so that the backbone's default `text_pool="last"` reads it)
    and padded with `pad_id`; `padding_mask` marks the real tokens. The
    tokenizer and its vocabulary are saved with presets.

    Input dict keys (at least one):
        images: pixels `[B, H, W, C]` (or one image `[H, W, C]`).
        texts: strings `[B]` (or one string).

    Output dict keys: `images` (float32), `token_ids` (int32
    `[B, sequence_length]`) and `padding_mask` (bool).

    Args:
        tokenizer: A keras-hub tokenizer (`WordPieceTokenizer`,
            `SentencePieceTokenizer`, ...) created without `sequence_length`,
            or None for image-only use.
        sequence_length: int. Token ids per text (the backbone's).
        image_size: Side (int) or `(height, width)` images are resized to;
            None keeps their size.
        lower: Whether to lowercase ASCII letters before tokenizing.
        end_id: The end token id; defaults to the tokenizer's
            (`end_token_id`, `sep_token_id`, `</s>`, `[SEP]`). None and no
            such token: texts get no end token.
        pad_id: The padding id; defaults to the tokenizer's `<pad>` /
            `[PAD]` id, else 0.
        **kwargs: Standard layer arguments.

    Example:

    ```python
    tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocab)
    preprocessor = keras_vl.models.LIMoEPreprocessor(
        tokenizer, sequence_length=16, image_size=224
    )
    x = preprocessor({"images": uint8_images, "texts": ["a cat", "a dog"]})
    ```
    """

    backbone_cls = LIMoEBackbone

    def __init__(
        self,
        tokenizer=None,
        sequence_length: int = 16,
        image_size: int | tuple[int, int] | None = 224,
        lower: bool = True,
        end_id: int | None = None,
        pad_id: int | None = None,
        **kwargs,
    ):
        kwargs.setdefault("name", "limoe_preprocessor")
        super().__init__(**kwargs)
        if isinstance(tokenizer, dict):
            tokenizer = keras.layers.deserialize(tokenizer)
        if tokenizer is not None:
            if not hasattr(tokenizer, "tokenize"):
                raise TypeError(
                    "`tokenizer` must be a keras-hub tokenizer. Received: "
                    f"{type(tokenizer).__name__}"
                )
            if getattr(tokenizer, "sequence_length", None):
                raise ValueError(
                    "Create the `tokenizer` without `sequence_length`: "
                    "LIMoEPreprocessor cuts and pads itself."
                )
        if (
            not isinstance(sequence_length, int)
            or isinstance(sequence_length, bool)
            or sequence_length < 1
        ):
            raise ValueError(
                "`sequence_length` must be a positive int. Received: "
                f"sequence_length={sequence_length!r}"
            )
        for name, value in (("end_id", end_id), ("pad_id", pad_id)):
            if value is not None and (
                not isinstance(value, int) or isinstance(value, bool)
            ):
                raise ValueError(
                    f"`{name}` must be an int or None. Received: "
                    f"{name}={value!r}"
                )
        self.tokenizer = tokenizer
        self.sequence_length = sequence_length
        self._image_size = pair(image_size, "image_size", allow_none=True)
        self.lower = bool(lower)
        self.end_id = end_id
        self.pad_id = pad_id

    def build(self, input_shape=None):
        self.built = True

    @property
    def image_size(self) -> tuple[int, int] | None:
        """`(height, width)` images are resized to, or None."""
        return self._image_size

    def special_ids(self) -> tuple[int | None, int]:
        """`(end id or None, pad id)` this preprocessor uses."""
        end, pad = self.end_id, self.pad_id
        if self.tokenizer is not None:
            if end is None:
                end = special_token_id(
                    self.tokenizer,
                    ("end_token_id", "sep_token_id"),
                    ("</s>", "[SEP]", "<eos>"),
                )
            if pad is None:
                pad = special_token_id(
                    self.tokenizer, ("pad_token_id",), ("<pad>", "[PAD]")
                )
        return end, 0 if pad is None else pad

    @preprocessing_function
    def call(self, x, y=None, sample_weight=None):
        if not isinstance(x, dict) or not ({"images", "texts"} & set(x)):
            raise ValueError(
                "`LIMoEPreprocessor` expects a dict with 'images' and/or "
                f"'texts'. Received: {type(x).__name__}"
            )
        unknown = set(x) - {"images", "texts"}
        if unknown:
            raise ValueError(
                f"Unexpected input keys {sorted(unknown)}; expected 'images' "
                "and/or 'texts'."
            )
        outputs = {}
        if "images" in x:
            images = resized_pixels(x["images"], self.image_size)
            outputs["images"] = images * (2.0 / 255.0) - 1.0
        if "texts" in x:
            outputs.update(self._texts(x["texts"]))
        if "images" in x and "texts" in x:
            check_same_batch_size(outputs["images"], outputs["token_ids"])
        return keras.utils.pack_x_y_sample_weight(outputs, y, sample_weight)

    def _texts(self, texts):
        if self.tokenizer is None:
            raise ValueError(
                "This LIMoEPreprocessor has no `tokenizer`, so it cannot "
                "take 'texts'."
            )
        texts = tf.convert_to_tensor(texts)
        if texts.dtype != tf.string or texts.shape.rank not in (0, 1):
            raise ValueError(
                "'texts' must be a batch of strings [B] or one string. "
                f"Received dtype {texts.dtype.name}, shape {texts.shape}"
            )
        single = texts.shape.rank == 0
        texts = tf.reshape(texts, [-1])
        if self.lower:
            texts = tf.strings.lower(texts)
        tokens = self.tokenizer(texts)
        if isinstance(tokens, tf.Tensor):
            tokens = tf.RaggedTensor.from_tensor(tokens)
        elif not isinstance(tokens, tf.RaggedTensor):
            tokens = tf.ragged.constant(
                [list(row) for row in tokens], ragged_rank=1
            )
        tokens = tf.cast(tokens, "int32")
        end, pad = self.special_ids()
        if end is None:
            tokens = tokens[:, : self.sequence_length]
        else:
            column = tf.fill(tf.stack([tokens.nrows(), 1]), end)
            tokens = tf.concat(
                [
                    tokens[:, : self.sequence_length - 1],
                    tf.RaggedTensor.from_tensor(column),
                ],
                axis=1,
            )
        token_ids = tokens.to_tensor(
            default_value=pad, shape=[None, self.sequence_length]
        )
        mask = tf.sequence_mask(tokens.row_lengths(), self.sequence_length)
        outputs = {"token_ids": token_ids, "padding_mask": mask}
        if single:
            outputs = {key: value[0] for key, value in outputs.items()}
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "image_size": self.image_size,
                "lower": self.lower,
                "end_id": self.end_id,
                "pad_id": self.pad_id,
            }
        )
        return config
