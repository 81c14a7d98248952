"""Raw LiT inputs (pixels, strings) -> LiTBackbone inputs."""

import os
from typing import Any

import keras
import keras_hub
from keras_hub.models import Preprocessor
from keras_hub.src.utils.tensor_utils import preprocessing_function

from keras_vl.models.lit.lit_backbone import LiTBackbone
from keras_vl.models.preprocessing import (
    check_resize_mode,
    check_same_batch_size,
    resized_pixels,
    special_token_id,
)
from keras_vl.models.preset_files import CheckedPresetFiles
from keras_vl.ops import pair
from keras_vl.utils.converted_presets import (
    converted_preset_dir,
    is_converted_preset,
)

try:
    import tensorflow as tf
except ImportError:  # pragma: no cover - tensorflow comes with keras-hub
    tf = None

EOS_MODES = ("sticky", "yes", "none")
# Where keras-hub tokenizers keep their special tokens: id attributes
# first, then the usual token strings of SentencePiece / WordPiece vocabs.
_SPECIAL_TOKENS = {
    "bos": (("start_token_id", "cls_token_id"), ("<s>", "[CLS]", "<bos>")),
    "eos": (("end_token_id", "sep_token_id"), ("</s>", "[SEP]", "<eos>")),
    "pad": (("pad_token_id",), ("<pad>", "[PAD]")),
}
WORDPIECE_SUFFIXES = (".txt",)
SENTENCEPIECE_SUFFIXES = (".model", ".spm")
# How the released models turn strings into token ids (see
# `LiTPreprocessor.from_vocabulary`).
# The preprocessing of the released model families. All of them resized
# images with their code's default: bilinear without antialiasing.
TEXT_RULES: dict[str, dict[str, Any]] = {
    # vision_transformer's BERT towers: `[CLS]` first, no `[SEP]`, cut to
    # the length and padded with id 0 (the towers mask `token_ids != 0`).
    "bert": {
        "eos": "none",
        "add_bos": True,
        "pad_id": 0,
        "lower": True,
        "resize": "big_vision",
    },
    # vision_transformer's SentencePiece towers: EOS appended and sticky,
    # padded with EOS; the text is not lowercased.
    "lit_sentencepiece": {
        "eos": "sticky",
        "lower": False,
        "resize": "big_vision",
    },
    # big_vision SigLIP: `tokenize(eos="sticky", pad_value=1)`, lowercased.
    "siglip": {
        "eos": "sticky",
        "pad_id": 1,
        "lower": True,
        "resize": "big_vision",
    },
}


def tokenizer_from_vocabulary(path: str | os.PathLike):
    """Builds the keras-hub tokenizer of a vocabulary file.

    A `.txt` file is a WordPiece vocabulary (one token a line), read by a
    `WordPieceTokenizer` that lowercases and strips accents as BERT's
    uncased tokenizer does; a `.model` (or `.spm`) file is a SentencePiece
    model, read by a `SentencePieceTokenizer`. Neither adds special tokens
    or pads: `LiTPreprocessor` does.

    Args:
        path: Path of the vocabulary file.

    Returns:
        A `keras_hub.tokenizers.WordPieceTokenizer` or
        `SentencePieceTokenizer`.

    Raises:
        ValueError: If the file is missing or its suffix is neither.

    Example:

    >>> tokenizer = tokenizer_from_vocabulary("LiT-B16B.txt")  # doctest: +SKIP
    """
    if not isinstance(path, str | os.PathLike):
        raise TypeError(
            "`path` must be the path of a vocabulary file. Received: "
            f"{type(path).__name__}"
        )
    path = os.fspath(path)
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in WORDPIECE_SUFFIXES + SENTENCEPIECE_SUFFIXES:
        raise ValueError(
            "A vocabulary file must be a WordPiece vocabulary "
            f"({', '.join(WORDPIECE_SUFFIXES)}) or a SentencePiece model "
            f"({', '.join(SENTENCEPIECE_SUFFIXES)}). Received: {path!r}"
        )
    if not os.path.isfile(path):
        raise ValueError(f"The vocabulary file {path!r} does not exist.")
    if suffix in WORDPIECE_SUFFIXES:
        return keras_hub.tokenizers.WordPieceTokenizer(
            vocabulary=path, lowercase=True, strip_accents=True
        )
    return keras_hub.tokenizers.SentencePieceTokenizer(proto=path)


def _floats(value, name):
    if value is None:
        return None
    values = value if isinstance(value, list | tuple) else (value,)
    try:
        return tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(
            f"`{name}` must be a number or a sequence of numbers. Received: "
            f"{name}={value!r}"
        ) from None


@keras.saving.register_keras_serializable(package="keras_vl")
class LiTPreprocessor(CheckedPresetFiles, Preprocessor):
    """Turns raw image-text pairs into `LiTBackbone` inputs.

    Images (uint8, or float in `[0, 255]`, `[B, H, W, C]`) are resized to
    `image_size` (as `resize` says; skipped when the size already
    matches), scaled to `[0, 1]` and then mapped to `value_range` (default
    `[-1, 1]`, like big_vision) or, when `mean` and `std` are given,
    standardised as `(x - mean) / std` (ImageNet-style backbones).

    Strings are lowercased (ASCII, as big_vision's `tokenize` does; set
    `lower=False` for cased vocabularies), tokenized by `tokenizer` and made
    exactly `sequence_length` long with big_vision's `eos` rules (for
    `sequence_length=3`, EOS `1`, pad `0` and "a" = `2`):

    - `"sticky"` (default; LiT / SigLIP text towers read the last token):
      "a" -> `[2, 1, 1]`, "aaaa" -> `[2, 2, 1]`: a text is cut to
      `sequence_length - 1` tokens and always ends in EOS; padding uses the
      EOS id unless `pad_id` says otherwise.
    - `"yes"`: "a" -> `[2, 1, 0]`, "aaaa" -> `[2, 2, 2]`: EOS appended, then
      cut (BERT's `[SEP]`, with `add_bos=True` for its `[CLS]`).
    - `"none"`: "a" -> `[2, 0, 0]`, cut to `sequence_length`.

    Texts may also be given as token ids (no tokenizer needed): a ragged
    batch or `[B, L]` with `L <= sequence_length`, taken as complete
    sequences and padded with `pad_id`; longer ones raise an error rather
    than being cut. Runs in `tf.data` pipelines and eagerly, on batches or
    single examples.

    Input dict keys (at least one):
        images: pixels `[B, H, W, C]` (or one image `[H, W, C]`).
        texts: strings `[B]` (or one string), or token ids.

    Output dict keys: `images` (float32) and/or `token_ids` (int32
    `[B, sequence_length]`), plus `segment_ids` (zeros) and `padding_mask`
    (1 on tokens, 0 on padding; for `[B, L]` id inputs, ids `!= pad_id`)
    when `padding_mask=True`, as a keras-hub `BertBackbone` wants.

    Args:
        tokenizer: A keras-hub tokenizer (e.g. `SentencePieceTokenizer`,
            `WordPieceTokenizer`) created *without* its own
            `sequence_length`, `add_bos` or `add_eos`: this layer adds
            special tokens and pads; or the path of a vocabulary file
            (see `tokenizer_from_vocabulary`). None when texts arrive as
            token ids. Saved with the preset, vocabulary included.
        sequence_length: Token ids per text: the text tower's length.
        image_size: Side (int) or `(height, width)` images are resized to;
            None keeps their size.
        value_range: `(low, high)` pixels are mapped to.
        mean: Per-channel mean, in `[0, 1]` pixel units; with `std`,
            replaces `value_range`.
        std: Per-channel standard deviation, in `[0, 1]` pixel units.
        eos: `"sticky"`, `"yes"` or `"none"`, see above.
        add_bos: Whether to start every text with the BOS token (BERT's
            `[CLS]`).
        lower: Whether to lowercase ASCII letters before tokenizing.
        bos_id: BOS id; defaults to the tokenizer's (`start_token_id`,
            `cls_token_id`, or the id of `<s>` / `[CLS]`).
        eos_id: EOS id; defaults to the tokenizer's (`end_token_id`,
            `sep_token_id`, or the id of `</s>` / `[SEP]`).
        pad_id: Padding id; defaults to the EOS id with `eos="sticky"`
            (the tokenizer's `<pad>` / `[PAD]` id if it has no EOS), else
            to the tokenizer's `<pad>` / `[PAD]` id, else 0.
        padding_mask: Whether to also output `padding_mask` and
            `segment_ids`.
        resize: `"antialiased"` bilinear (default), or `"big_vision"`:
            bilinear without antialiasing, integer pixels rounded down
            again, as the released LiT and SigLIP models were fed (their
            converted presets use it).
        **kwargs: Standard layer arguments.

    Example:

    ```python
    tokenizer = keras_hub.tokenizers.SentencePieceTokenizer("spm.model")
    preprocessor = keras_vl.models.LiTPreprocessor(
        tokenizer, sequence_length=16, image_size=224
    )
    x = preprocessor({"images": uint8_images, "texts": ["a cat", "a dog"]})
    # x["images"]: (2, 224, 224, 3) in [-1, 1]; x["token_ids"]: (2, 16)

    # The rules of a released model, from its vocabulary file.
    siglip_preprocessor = keras_vl.models.LiTPreprocessor.from_vocabulary(
        "sentencepiece.model", "siglip", sequence_length=64, image_size=224
    )

    # A BERT text tower: [CLS] text [SEP], padded with [PAD].
    bert_preprocessor = keras_vl.models.LiTPreprocessor(
        keras_hub.tokenizers.WordPieceTokenizer(vocab, lowercase=True),
        sequence_length=32, eos="yes", add_bos=True, padding_mask=True,
        mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225),
    )
    ```
    """

    backbone_cls = LiTBackbone

    def __init__(
        self,
        tokenizer=None,
        sequence_length: int = 16,
        image_size: int | tuple[int, int] | None = 224,
        value_range: tuple[float, float] = (-1.0, 1.0),
        mean: float | tuple[float, ...] | None = None,
        std: float | tuple[float, ...] | None = None,
        eos: str = "sticky",
        add_bos: bool = False,
        lower: bool = True,
        bos_id: int | None = None,
        eos_id: int | None = None,
        pad_id: int | None = None,
        padding_mask: bool = False,
        resize: str = "antialiased",
        **kwargs,
    ):
        kwargs.setdefault("name", "lit_preprocessor")
        super().__init__(**kwargs)
        if isinstance(tokenizer, dict):
            tokenizer = keras.layers.deserialize(tokenizer)
        elif isinstance(tokenizer, str | os.PathLike):
            tokenizer = tokenizer_from_vocabulary(tokenizer)
        if tokenizer is not None:
            self._check_tokenizer(tokenizer)
        if (
            not isinstance(sequence_length, int)
            or isinstance(sequence_length, bool)
            or sequence_length < 1
        ):
            raise ValueError(
                "`sequence_length` must be a positive int. Received: "
                f"sequence_length={sequence_length!r}"
            )
        if eos not in EOS_MODES:
            raise ValueError(
                f"`eos` must be one of {EOS_MODES}. Received: eos={eos!r}"
            )
        value_range = _floats(value_range, "value_range")
        if value_range is None or len(value_range) != 2:
            raise ValueError(
                "`value_range` must be a pair `(low, high)`. Received: "
                f"value_range={value_range}"
            )
        mean, std = _floats(mean, "mean"), _floats(std, "std")
        if (mean is None) != (std is None):
            raise ValueError("Pass both `mean` and `std`, or neither.")
        if std is not None and min(std) <= 0:
            raise ValueError(f"`std` must be positive. Received: std={std}")
        for name, value in (
            ("bos_id", bos_id),
            ("eos_id", eos_id),
            ("pad_id", pad_id),
        ):
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
        self.value_range = value_range
        self.mean = mean
        self.std = std
        self.eos = eos
        self.add_bos = bool(add_bos)
        self.lower = bool(lower)
        self.bos_id = bos_id
        self.eos_id = eos_id
        self.pad_id = pad_id
        self.padding_mask = bool(padding_mask)
        self.resize = check_resize_mode(resize)

    @classmethod
    def from_vocabulary(
        cls,
        vocabulary: str | os.PathLike,
        rules: str,
        sequence_length: int = 16,
        **kwargs,
    ) -> "LiTPreprocessor":
        """A preprocessor that tokenizes as a released model family does.

        Args:
            vocabulary: Path of the vocabulary file (`.txt` WordPiece,
                `.model` SentencePiece; see `tokenizer_from_vocabulary`).
            rules: `"bert"` (vision_transformer's BERT LiT: lowercased,
                `[CLS]` first, no EOS, padded with 0),
                `"lit_sentencepiece"` (vision_transformer's SentencePiece
                LiT: sticky EOS, padded with EOS, case kept) or
                `"siglip"` (big_vision SigLIP: lowercased, sticky EOS,
                padded with 1).
            sequence_length: Token ids per text.
            **kwargs: Other `LiTPreprocessor` arguments (`image_size`,
                ...); they override the rules' own.

        Returns:
            The `LiTPreprocessor`.

        Example:

        ```python
        preprocessor = keras_vl.models.LiTPreprocessor.from_vocabulary(
            "LiT-B16B.txt", "bert", sequence_length=16
        )
        preprocessor({"texts": ["a photo of a cat"]})["token_ids"]
        ```
        """
        if rules not in TEXT_RULES:
            raise ValueError(
                f"`rules` must be one of {sorted(TEXT_RULES)}. Received: "
                f"rules={rules!r}"
            )
        return cls(
            tokenizer_from_vocabulary(vocabulary),
            sequence_length=sequence_length,
            **{**TEXT_RULES[rules], **kwargs},
        )

    @classmethod
    def from_preset(cls, preset: str, **kwargs):
        """Loads the preprocessor of a preset: a local directory, a
        `kaggle://` or `hf://` handle, or a name in `LiT.presets`
        (downloaded and converted on first use)."""
        if is_converted_preset(preset):
            preset = converted_preset_dir(preset)
        return super().from_preset(preset, **kwargs)

    @staticmethod
    def _check_tokenizer(tokenizer):
        if not hasattr(tokenizer, "tokenize"):
            raise TypeError(
                "`tokenizer` must be a keras-hub tokenizer (e.g. "
                "SentencePieceTokenizer, WordPieceTokenizer) or the path of "
                "a vocabulary file (.txt, .model). Received: "
                f"{type(tokenizer).__name__}"
            )
        if getattr(tokenizer, "sequence_length", None):
            raise ValueError(
                "Create the `tokenizer` without `sequence_length`: "
                "LiTPreprocessor pads and truncates itself. Received a "
                f"tokenizer with sequence_length={tokenizer.sequence_length}"
            )
        for flag in ("add_bos", "add_eos"):
            if getattr(tokenizer, flag, False):
                raise ValueError(
                    f"Create the `tokenizer` without `{flag}`: "
                    "LiTPreprocessor adds special tokens itself (see `eos` "
                    "and `add_bos`)."
                )

    def build(self, input_shape=None):
        # Nothing to build; the tokenizer is ready when constructed.
        self.built = True

    @property
    def image_size(self) -> tuple[int, int] | None:
        """`(height, width)` images are resized to, or None."""
        return self._image_size

    def special_token_id(self, kind: str) -> int | None:
        """The `"bos"`, `"eos"` or `"pad"` id this preprocessor uses
        (explicit argument, else the tokenizer's), or None if unknown."""
        explicit = {"bos": self.bos_id, "eos": self.eos_id, "pad": None}
        if kind not in explicit:
            raise ValueError(
                f"`kind` must be 'bos', 'eos' or 'pad'. Received: {kind!r}"
            )
        if kind == "pad":
            if self.pad_id is not None:
                return self.pad_id
            found = self._tokenizer_special_id("pad")
            if self.eos == "sticky":
                eos = self.special_token_id("eos")
                return found if eos is None else eos
            return 0 if found is None else found
        if explicit[kind] is not None:
            return explicit[kind]
        return self._tokenizer_special_id(kind)

    def _tokenizer_special_id(self, kind):
        if self.tokenizer is None:
            return None
        return special_token_id(self.tokenizer, *_SPECIAL_TOKENS[kind])

    def _required_id(self, kind, reason):
        value = self.special_token_id(kind)
        if value is None:
            raise ValueError(
                f"{reason} needs the {kind.upper()} token id, and the "
                f"tokenizer has none that LiTPreprocessor recognises. Pass "
                f"`{kind}_id`."
            )
        return value

    @preprocessing_function
    def call(self, x, y=None, sample_weight=None):
        if not isinstance(x, dict) or not ({"images", "texts"} & set(x)):
            raise ValueError(
                "`LiTPreprocessor` expects a dict with 'images' and/or "
                f"'texts'. Received: {type(x).__name__}"
                + (f" with keys {sorted(x)}" if isinstance(x, dict) else "")
            )
        unknown = set(x) - {"images", "texts"}
        if unknown:
            raise ValueError(
                f"Unexpected input keys {sorted(unknown)}; expected 'images' "
                "and/or 'texts'."
            )
        outputs = {}
        if "images" in x:
            outputs["images"] = self._images(x["images"])
        if "texts" in x:
            outputs.update(self._texts(x["texts"]))
        if "images" in x and "texts" in x:
            check_same_batch_size(outputs["images"], outputs["token_ids"])
        return keras.utils.pack_x_y_sample_weight(outputs, y, sample_weight)

    def _images(self, images):
        images = resized_pixels(images, self.image_size, resize=self.resize)
        images = images / 255.0
        if self.mean is not None:
            return (images - tf.constant(self.mean)) / tf.constant(self.std)
        low, high = self.value_range
        return low + images * (high - low)

    def _texts(self, texts):
        if not isinstance(texts, tf.RaggedTensor):
            texts = tf.convert_to_tensor(texts)
        rank = texts.shape.rank
        if texts.dtype == tf.string:
            if rank not in (0, 1):
                raise ValueError(
                    "'texts' must be a batch of strings [B] or one string. "
                    f"Received shape {texts.shape}"
                )
            tokens = self._tokenize(tf.reshape(texts, [-1]))
            dense_ids = None
        elif texts.dtype.is_integer:
            if rank not in (1, 2):
                raise ValueError(
                    "Token ids in 'texts' must be [B, L] (or one sequence "
                    f"[L]). Received shape {texts.shape}"
                )
            rank -= 1  # The rank the strings would have had.
            texts = tf.cast(texts, "int32")
            if rank == 0:
                texts = texts[None]
            tokens = (
                texts
                if isinstance(texts, tf.RaggedTensor)
                else tf.RaggedTensor.from_tensor(texts)
            )
            dense_ids = None if isinstance(texts, tf.RaggedTensor) else texts
            self._check_length(tokens)
        else:
            raise TypeError(
                "'texts' must be strings or int token ids. Received dtype "
                f"{texts.dtype.name}"
            )
        pad = self.special_token_id("pad")
        if pad is None:
            full = dense_ids is not None and (
                dense_ids.shape[1] == self.sequence_length
            )
            # Full-length ids need no padding; anything else needs the id.
            pad = 0 if full else self._required_id("pad", "Padding texts")
        token_ids = tokens.to_tensor(
            default_value=pad, shape=[None, self.sequence_length]
        )
        outputs = {"token_ids": token_ids}
        if self.padding_mask:
            if dense_ids is None:
                lengths = tokens.row_lengths()
                mask = tf.sequence_mask(lengths, self.sequence_length)
            else:
                mask = tf.not_equal(token_ids, pad)
            outputs["segment_ids"] = tf.zeros_like(token_ids)
            outputs["padding_mask"] = tf.cast(mask, "int32")
        if rank == 0:
            outputs = {key: value[0] for key, value in outputs.items()}
        return outputs

    def _check_length(self, tokens):
        longest = tf.reduce_max(tokens.row_lengths())
        message = (
            f"Token ids in 'texts' are longer than sequence_length="
            f"{self.sequence_length}"
        )
        if tf.executing_eagerly():
            if int(longest) > self.sequence_length:
                raise ValueError(f"{message} (longest: {int(longest)}).")
        else:
            tf.debugging.assert_less_equal(
                longest, tf.cast(self.sequence_length, longest.dtype), message
            )

    def _tokenize(self, texts):
        """Strings `[B]` -> ragged ids `[B, None]` with special tokens,
        cut to `sequence_length` by the `eos` rule."""
        if self.tokenizer is None:
            raise ValueError(
                "'texts' are strings but this LiTPreprocessor has no "
                "`tokenizer`. Pass token ids, or create it with a tokenizer."
            )
        if self.lower:
            texts = tf.strings.lower(texts)
        tokens = self.tokenizer(texts)
        # keras-hub tokenizers return Python lists when run eagerly.
        if isinstance(tokens, tf.RaggedTensor):
            tokens = tf.cast(tokens, "int32")
        elif isinstance(tokens, tf.Tensor):
            tokens = tf.RaggedTensor.from_tensor(tf.cast(tokens, "int32"))
        else:
            tokens = tf.ragged.constant(
                [list(row) for row in tokens], dtype="int32", ragged_rank=1
            )
        batch_size = tokens.nrows()
        length = self.sequence_length

        def column(value):
            return tf.RaggedTensor.from_tensor(
                tf.fill(tf.stack([batch_size, 1]), tf.constant(value, "int32"))
            )

        if self.add_bos:
            bos = self._required_id("bos", "`add_bos=True`")
            tokens = tf.concat([column(bos), tokens], axis=1)
        if self.eos == "none":
            return tokens[:, :length]
        eos = self._required_id("eos", f"`eos={self.eos!r}`")
        if self.eos == "yes":
            return tf.concat([tokens, column(eos)], axis=1)[:, :length]
        # Sticky: the EOS survives truncation.
        return tf.concat([tokens[:, : length - 1], column(eos)], axis=1)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "sequence_length": self.sequence_length,
                "image_size": self.image_size,
                "value_range": self.value_range,
                "mean": self.mean,
                "std": self.std,
                "eos": self.eos,
                "add_bos": self.add_bos,
                "lower": self.lower,
                "bos_id": self.bos_id,
                "eos_id": self.eos_id,
                "pad_id": self.pad_id,
                "padding_mask": self.padding_mask,
                "resize": self.resize,
            }
        )
        return config
