"""Raw PaLI inputs (pixels, prompt and response strings) -> PaLI inputs.

Also holds PaLI's task prompts: the paper names the task and the language
of the answer in the text that goes into the encoder, e.g. "Generate the
alt_text in FR" or "Answer in EN: what colour is the shape?".
"""

import re

import keras
from keras_hub.models import Seq2SeqLMPreprocessor
from keras_hub.src.utils.tensor_utils import preprocessing_function
from keras_hub.tokenizers import T5Tokenizer

from keras_vl.models.pali.pali_backbone import PaLIBackbone
from keras_vl.models.preprocessing import resized_pixels, special_token_id
from keras_vl.models.preset_files import CheckedPresetFiles
from keras_vl.ops import pair

try:
    import tensorflow as tf
except ImportError:  # pragma: no cover - tensorflow comes with keras-hub
    tf = None

#: PaLI's task prompts, by task. Fields: ``{lang}``, the language the
#: answer is written in (a code such as "EN" or "FR"), and ``{question}``
#: for visual question answering. The encoder reads the prompt after the
#: image tokens; the decoder writes the answer in `lang`.
PROMPT_TEMPLATES: dict[str, str] = {
    "caption": "Generate the alt_text in {lang}",
    "vqa": "Answer in {lang}: {question}",
}

# A language code: two or three letters, optionally a script or region
# ("EN", "FR", "ZH-HANS", "PT-BR").
_LANGUAGE_CODE = re.compile(r"[A-Za-z]{2,3}(-[A-Za-z0-9]{2,8})?")
# Keys the data modules attach to examples; describing the prompt, they are
# accepted here and dropped.
_METADATA_KEYS = ("task", "lang")


def format_prompt(task: str, lang: str, question: str | None = None) -> str:
    """Writes PaLI's prompt for `task`, answered in language `lang`.

    Args:
        task: A key of `PROMPT_TEMPLATES`: ``"caption"`` or ``"vqa"``.
        lang: The answer's language code, e.g. ``"EN"`` or ``"fr"``;
            written in upper case, as PaLI writes it.
        question: The question, for ``"vqa"`` only (a non-empty string).

    Returns:
        The prompt string.

    Raises:
        ValueError: for an unknown `task`, a malformed `lang`, a missing or
            empty `question` for ``"vqa"``, or a `question` for a task that
            takes none.

    Example:

    ```python
    format_prompt("caption", "FR")  # "Generate the alt_text in FR"
    format_prompt("vqa", "EN", "what shape is it?")
    # "Answer in EN: what shape is it?"
    ```
    """
    if task not in PROMPT_TEMPLATES:
        raise ValueError(
            f"`task` must be one of {sorted(PROMPT_TEMPLATES)}. Received: "
            f"task={task!r}"
        )
    if not isinstance(lang, str) or not _LANGUAGE_CODE.fullmatch(lang):
        raise ValueError(
            "`lang` must be a language code such as 'EN' or 'FR'. "
            f"Received: lang={lang!r}"
        )
    template = PROMPT_TEMPLATES[task]
    takes_question = "{question}" in template
    if takes_question:
        if not isinstance(question, str) or not question.strip():
            raise ValueError(
                f"`question` must be a non-empty string for task={task!r}. "
                f"Received: question={question!r}"
            )
        return template.format(lang=lang.upper(), question=question)
    if question is not None:
        raise ValueError(
            f"task={task!r} takes no `question`. Received: "
            f"question={question!r}"
        )
    return template.format(lang=lang.upper())


def _positive_int(value, name):
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise ValueError(
            f"`{name}` must be a positive int. Received: {name}={value!r}"
        )
    return value


def _first(outputs):
    """One example's outputs from a batch of one (images are unbatched)."""
    return {
        key: value if key == "images" else value[0]
        for key, value in outputs.items()
    }


@keras.saving.register_keras_serializable(package="keras_vl")
class PaLIPreprocessor(CheckedPresetFiles, Seq2SeqLMPreprocessor):
    """Turns images, prompts and responses into PaLI's encoder-decoder inputs.

    Images (uint8, or float in `[0, 255]`, `[B, H, W, 3]`) are resized to
    `image_size` (antialiased bilinear, skipped when the size already
    matches) and mapped to `value_range` (default `[-1, 1]`, as the ViT
    expects). Prompts and responses are tokenized with T5's conventions
    (no BOS; `<pad>` and `</s>` from the vocabulary, 0 and 1 in mT5's):

    - **Prompts** -> `encoder_token_ids` `[B, encoder_sequence_length]`:
      the prompt's tokens, then EOS, then padding; `encoder_padding_mask`
      is True on the tokens and the EOS. A prompt is never cut: one longer
      than `encoder_sequence_length` (EOS included) raises a `ValueError`
      naming `prompts` when called eagerly (numpy batches, Python lists);
      inside `tf.data` (`dataset.map(preprocessor)`), where lengths are
      only known when the pipeline runs, a `tf.debugging` assertion stops
      the pipeline with an `InvalidArgumentError` carrying the same
      message.
    - **Responses** (training only) -> the decoder sequence `[start] +
      tokens + [EOS]` made exactly `decoder_sequence_length + 1` long, with
      the start token being the pad id (T5's decoder start). Its first
      `decoder_sequence_length` entries are `decoder_token_ids`, its last
      `decoder_sequence_length` entries the targets `y` (the next token at
      each position). A response longer than `decoder_sequence_length - 1`
      tokens keeps its first `decoder_sequence_length - 1` tokens and still
      ends in EOS (keras-hub's `StartEndPacker` rule), so every target
      sequence ends; size `decoder_sequence_length` to the longest answer
      to lose nothing. `sample_weight` (float32) is 1.0 on the response's
      tokens and its EOS, 0.0 on padding, so the loss counts answers only.

    `call` (training) returns `(x, y, sample_weight)`; `generate_preprocess`
    returns `x` alone, with the decoder holding only the start token, and
    `generate_postprocess` turns generated ids back into strings. Batches
    or single examples (one image `[H, W, 3]` with one prompt string) are
    accepted, as Python lists, numpy arrays or tensors, eagerly or inside
    `tf.data`.

    Input dict keys:
        images: pixels `[B, H, W, 3]` (or one image `[H, W, 3]`).
        prompts: strings `[B]` (or one string), e.g. from `format_prompt`.
        responses: strings `[B]` (or one string), the target texts;
            required by `call`, refused by `generate_preprocess`.
        task, lang: optional example metadata (as `keras_vl.data` makes
            it); accepted and dropped.

    Output `x` dict keys: `images` (float32 `[B, H, W, 3]`),
    `encoder_token_ids` (int32 `[B, Te]`), `encoder_padding_mask` (bool
    `[B, Te]`), `decoder_token_ids` (int32 `[B, Td]`) and
    `decoder_padding_mask` (bool `[B, Td]`).

    Args:
        tokenizer: A keras-hub SentencePiece tokenizer (`T5Tokenizer` or
            `SentencePieceTokenizer`) whose vocabulary has `<pad>` and
            `</s>`, created without its own `sequence_length`. Saved with
            the preset, vocabulary included.
        encoder_sequence_length: Prompt tokens (EOS included) per example.
        decoder_sequence_length: Decoder positions per example: the longest
            response is `decoder_sequence_length - 1` tokens plus EOS.
            `sequence_length` is an alias.
        image_size: Side (int) or `(height, width)` images are resized to;
            None keeps their size.
        value_range: `(low, high)` pixels are mapped to.
        vocabulary_size: The model's token embedding size, if known: a
            tokenizer with more pieces (ids the model could not embed)
            raises a `ValueError`.
        **kwargs: Standard layer arguments.

    Example:

    ```python
    tokenizer = keras_hub.tokenizers.T5Tokenizer(proto="spm.model")
    preprocessor = PaLIPreprocessor(
        tokenizer, encoder_sequence_length=16, decoder_sequence_length=8,
        image_size=224,
    )
    x, y, sample_weight = preprocessor({
        "images": uint8_images,  # (2, H, W, 3)
        "prompts": [
            format_prompt("caption", "EN"),
            format_prompt("vqa", "FR", "de quelle couleur est la forme ?"),
        ],
        "responses": ["a red circle at the top left", "rouge"],
    })
    # Generation: the decoder starts from the start token alone.
    inputs = preprocessor.generate_preprocess(
        {"images": uint8_images[:1], "prompts": ["Generate the alt_text in EN"]}
    )
    preprocessor.generate_postprocess(generated_ids)  # ["a red circle ..."]
    ```
    """

    tokenizer_cls = T5Tokenizer

    backbone_cls = PaLIBackbone

    def __init__(
        self,
        tokenizer,
        encoder_sequence_length: int = 64,
        decoder_sequence_length: int = 32,
        image_size: int | tuple[int, int] | None = 224,
        value_range: tuple[float, float] = (-1.0, 1.0),
        vocabulary_size: int | None = None,
        **kwargs,
    ):
        kwargs.setdefault("name", "pali_preprocessor")
        if isinstance(tokenizer, dict):
            tokenizer = keras.layers.deserialize(tokenizer)
        self._check_tokenizer(tokenizer)
        _positive_int(encoder_sequence_length, "encoder_sequence_length")
        _positive_int(decoder_sequence_length, "decoder_sequence_length")
        if vocabulary_size is not None:
            _positive_int(vocabulary_size, "vocabulary_size")
        try:
            low, high = (float(v) for v in value_range)
        except (TypeError, ValueError):
            raise ValueError(
                "`value_range` must be a pair of numbers `(low, high)`. "
                f"Received: value_range={value_range!r}"
            ) from None
        super().__init__(
            tokenizer=tokenizer,
            encoder_sequence_length=encoder_sequence_length,
            decoder_sequence_length=decoder_sequence_length,
            **kwargs,
        )
        self._image_size = pair(image_size, "image_size", allow_none=True)
        self.value_range = (low, high)
        self.vocabulary_size = vocabulary_size
        self._special_ids = None
        if self._tokenizer_ready():
            self._check_vocabulary()

    @staticmethod
    def _check_tokenizer(tokenizer):
        if not (
            hasattr(tokenizer, "tokenize") and hasattr(tokenizer, "detokenize")
        ):
            raise TypeError(
                "`tokenizer` must be a keras-hub SentencePiece tokenizer "
                "(`T5Tokenizer` or `SentencePieceTokenizer`). Received: "
                f"{type(tokenizer).__name__}"
            )
        if getattr(tokenizer, "sequence_length", None):
            raise ValueError(
                "Create the `tokenizer` without `sequence_length`: "
                "PaLIPreprocessor pads and checks lengths itself. Received a "
                f"tokenizer with sequence_length={tokenizer.sequence_length}"
            )
        for flag in ("add_bos", "add_eos"):
            if getattr(tokenizer, flag, False):
                raise ValueError(
                    f"Create the `tokenizer` without `{flag}`: "
                    "PaLIPreprocessor adds the special tokens itself."
                )

    def _tokenizer_ready(self) -> bool:
        # A tokenizer restored from a config gets its vocabulary later,
        # from the preset's assets.
        return getattr(self.tokenizer, "proto", True) is not None

    def _check_vocabulary(self):
        if self.vocabulary_size is None:
            return
        size = int(self.tokenizer.vocabulary_size())
        if size > self.vocabulary_size:
            raise ValueError(
                f"The tokenizer has {size} pieces but the model embeds only "
                f"vocabulary_size={self.vocabulary_size} ids: its ids "
                f"{self.vocabulary_size}..{size - 1} would have no "
                "embedding. Use a matching tokenizer or model."
            )

    def build(self, input_shape=None):
        # Nothing to build: the sequences are packed in `call`.
        self.built = True

    @property
    def image_size(self) -> tuple[int, int] | None:
        """`(height, width)` images are resized to, or None."""
        return self._image_size

    @property
    def pad_token_id(self) -> int:
        """The padding id, also the decoder's start token (T5)."""
        return self._ids()[0]

    @property
    def end_token_id(self) -> int:
        """The end-of-sequence id appended to prompts and responses."""
        return self._ids()[1]

    def _ids(self) -> tuple[int, int]:
        """(pad id, EOS id) of the tokenizer, checked once."""
        if self._special_ids is None:
            if not self._tokenizer_ready():
                raise ValueError(
                    "The tokenizer has no vocabulary yet: create it with a "
                    "`proto`, or load the preprocessor with `from_preset`."
                )
            self._check_vocabulary()
            pad = special_token_id(
                self.tokenizer, ("pad_token_id",), ("<pad>",)
            )
            eos = special_token_id(self.tokenizer, ("end_token_id",), ("</s>",))
            missing = [
                piece
                for piece, found in (("<pad>", pad), ("</s>", eos))
                if found is None
            ]
            if missing:
                raise ValueError(
                    "PaLIPreprocessor needs a vocabulary with T5's special "
                    "pieces `<pad>` (padding and decoder start) and `</s>` "
                    f"(end of sequence); the tokenizer's lacks {missing}."
                )
            self._special_ids = (int(pad), int(eos))
        return self._special_ids

    # --- Training ---------------------------------------------------------

    @preprocessing_function
    def call(
        self,
        x,
        y=None,
        sample_weight=None,
        *,
        encoder_sequence_length=None,
        decoder_sequence_length=None,
        sequence_length=None,
    ):
        if y is not None or sample_weight is not None:
            raise ValueError(
                "PaLIPreprocessor makes the targets and sample weights from "
                "`responses`: pass `x` alone (y=None, sample_weight=None)."
            )
        self._check_keys(x, "call", ("images", "prompts", "responses"))
        encoder_length, decoder_length = self._lengths(
            encoder_sequence_length, decoder_sequence_length, sequence_length
        )
        pad, eos = self._ids()
        images = self._images(x["images"])
        prompts, batched = self._strings(x["prompts"], "prompts")
        responses, responses_batched = self._strings(
            x["responses"], "responses"
        )
        self._check_batch(images, batched, (prompts, "prompts"))
        if responses_batched != batched:
            raise ValueError(
                "'prompts' and 'responses' must both be batches or both be "
                "single strings."
            )
        self._check_batch(images, batched, (responses, "responses"))
        outputs = self._encode(images, prompts, encoder_length)

        # [start] + tokens (cut to leave room for EOS) + [EOS], then pad.
        tokens = self._tokenize(responses)[:, : decoder_length - 1]
        sequence = tf.concat(
            [self._column(pad, tokens), tokens, self._column(eos, tokens)],
            axis=1,
        )
        total = decoder_length + 1
        ids = sequence.to_tensor(default_value=pad, shape=[None, total])
        mask = tf.sequence_mask(sequence.row_lengths(), total)
        outputs["decoder_token_ids"] = ids[:, :-1]
        outputs["decoder_padding_mask"] = mask[:, :-1]
        y = ids[:, 1:]
        sample_weight = tf.cast(mask[:, 1:], "float32")
        if not batched:
            outputs = _first(outputs)
            y, sample_weight = y[0], sample_weight[0]
        return keras.utils.pack_x_y_sample_weight(outputs, y, sample_weight)

    # --- Generation -------------------------------------------------------

    @preprocessing_function
    def generate_preprocess(
        self,
        x,
        *,
        encoder_sequence_length=None,
        decoder_sequence_length=None,
        sequence_length=None,
    ):
        """Images and prompts -> model inputs for generation.

        Packs images and prompts as `call` does; the decoder holds the
        start token (the pad id) followed by padding, with
        `decoder_padding_mask` True on the start token only.

        Args:
            x: A dict with `images` and `prompts` (and optionally the
                `task` / `lang` metadata); `responses` are refused, since
                generation writes them.
            encoder_sequence_length: Overrides the prompt length.
            decoder_sequence_length: Overrides the decoder length (the
                longest generation, start token included).
            sequence_length: Alias of `decoder_sequence_length`, as
                keras-hub's `generate(max_length=...)` passes it.

        Returns:
            The `x` dict described in the class docstring.

        Example:

        ```python
        inputs = preprocessor.generate_preprocess(
            {"images": images, "prompts": ["Generate the alt_text in EN"]}
        )
        inputs["decoder_token_ids"]  # [[0, 0, 0, ...]]
        ```
        """
        self._check_keys(x, "generate_preprocess", ("images", "prompts"))
        encoder_length, decoder_length = self._lengths(
            encoder_sequence_length, decoder_sequence_length, sequence_length
        )
        pad, _ = self._ids()
        images = self._images(x["images"])
        prompts, batched = self._strings(x["prompts"], "prompts")
        self._check_batch(images, batched, (prompts, "prompts"))
        outputs = self._encode(images, prompts, encoder_length)
        batch_size = tf.shape(outputs["encoder_token_ids"])[0]
        outputs["decoder_token_ids"] = tf.fill(
            tf.stack([batch_size, decoder_length]), tf.constant(pad, "int32")
        )
        start = tf.range(decoder_length) < 1
        outputs["decoder_padding_mask"] = tf.tile(
            start[None], tf.stack([batch_size, 1])
        )
        if not batched:
            outputs = _first(outputs)
        return outputs

    @preprocessing_function
    def generate_postprocess(self, x):
        """Generated token ids -> strings.

        Everything from the first EOS on is dropped, and so are the start
        and padding tokens (the pad id) and positions that
        `decoder_padding_mask` marks as padding.

        Args:
            x: int token ids `[B, T]` (or one sequence `[T]`), or a dict with
                `decoder_token_ids` and optionally `decoder_padding_mask`,
                as a generating model returns them.

        Returns:
            The decoded strings: a list of `B` str (or one str).

        Example:

        ```python
        # Start token, "a", "red", "star", EOS, then whatever follows.
        preprocessor.generate_postprocess(generated_ids)  # ["a red star"]
        ```
        """
        mask = None
        if isinstance(x, dict):
            if "decoder_token_ids" not in x:
                raise ValueError(
                    "`generate_postprocess` expects token ids or a dict with "
                    f"'decoder_token_ids'. Received keys {sorted(x)}"
                )
            mask = x.get("decoder_padding_mask")
            x = x["decoder_token_ids"]
        ids = tf.convert_to_tensor(x)
        if not ids.dtype.is_integer or ids.shape.rank not in (1, 2):
            raise ValueError(
                "Token ids for `generate_postprocess` must be ints [B, T] or "
                f"[T]. Received dtype {ids.dtype.name} and shape {ids.shape}"
            )
        batched = ids.shape.rank == 2
        ids = tf.cast(ids if batched else ids[None], "int32")
        pad, eos = self._ids()
        after_end = tf.cumsum(tf.cast(ids == eos, "int32"), axis=1) > 0
        keep = (ids != pad) & ~after_end
        if mask is not None:
            mask = tf.cast(tf.convert_to_tensor(mask), "bool")
            keep &= mask if batched else mask[None]
        texts = self.tokenizer.detokenize(tf.ragged.boolean_mask(ids, keep))
        if isinstance(texts, tf.Tensor):
            return texts if batched else texts[0]
        texts = [
            t.decode("utf-8") if isinstance(t, bytes) else t for t in texts
        ]
        return texts if batched else texts[0]

    # --- Pieces -----------------------------------------------------------

    def _lengths(self, encoder_length, decoder_length, alias):
        encoder_length = encoder_length or self.encoder_sequence_length
        decoder_length = decoder_length or alias or self.decoder_sequence_length
        _positive_int(encoder_length, "encoder_sequence_length")
        _positive_int(decoder_length, "decoder_sequence_length")
        return encoder_length, decoder_length

    @staticmethod
    def _check_keys(x, method, required):
        if not isinstance(x, dict):
            raise ValueError(
                f"`PaLIPreprocessor.{method}` expects a dict with keys "
                f"{list(required)}. Received: {type(x).__name__}"
            )
        missing = [key for key in required if key not in x]
        if missing == ["responses"]:
            raise ValueError(
                "A training batch needs 'responses' (the target texts); "
                "got keys "
                f"{sorted(x)}. For generation use `generate_preprocess`."
            )
        if missing:
            raise ValueError(
                f"`PaLIPreprocessor.{method}` needs the keys {list(required)};"
                f" missing {missing}. Received keys {sorted(x)}"
            )
        unknown = set(x) - set(required) - set(_METADATA_KEYS)
        if "responses" in unknown:
            raise ValueError(
                "`generate_preprocess` takes no 'responses': generation "
                "writes them. Pass only 'images' and 'prompts'."
            )
        if unknown:
            raise ValueError(
                f"Unexpected input keys {sorted(unknown)}; expected "
                f"{list(required)} (and optionally {list(_METADATA_KEYS)})."
            )

    def _images(self, images):
        images = resized_pixels(images, self.image_size, channels=3)
        low, high = self.value_range
        return low + images * ((high - low) / 255.0)

    @staticmethod
    def _strings(texts, name):
        """`texts` as a tf.string batch `[B]`, and whether it was a batch."""
        if isinstance(texts, tf.RaggedTensor):
            raise ValueError(
                f"'{name}' must be strings [B] or one string. Received a "
                "ragged tensor."
            )
        texts = tf.convert_to_tensor(texts)
        if texts.shape.rank == 1 and texts.shape[0] == 0:
            raise ValueError(f"'{name}' must not be empty.")
        if texts.dtype != tf.string:
            raise TypeError(
                f"'{name}' must be strings (a str, or a list or array of "
                f"str). Received dtype {texts.dtype.name}"
            )
        if texts.shape.rank not in (0, 1):
            raise ValueError(
                f"'{name}' must be a batch of strings [B] or one string. "
                f"Received shape {texts.shape}"
            )
        batched = texts.shape.rank == 1
        return (texts if batched else texts[None]), batched

    @staticmethod
    def _check_batch(images, batched, named):
        texts, name = named
        if (images.shape.rank == 4) != batched:
            raise ValueError(
                f"'images' and '{name}' must both be batches ([B, H, W, 3] "
                "and [B]) or one example ([H, W, 3] and one string)."
            )
        if not batched:
            return
        message = f"'images' and '{name}' must have the same batch size"
        n_images, n_texts = images.shape[0], texts.shape[0]
        if n_images is not None and n_texts is not None:
            if n_images != n_texts:
                raise ValueError(
                    f"{message}. Received {n_images} images and {n_texts} "
                    f"{name}."
                )
        else:
            tf.debugging.assert_equal(
                tf.shape(images)[0], tf.shape(texts)[0], message=message
            )

    def _encode(self, images, prompts, length):
        """Images and prompts -> the encoder half of `x` (batched)."""
        pad, eos = self._ids()
        tokens = self._tokenize(prompts)
        tokens = tf.concat([tokens, self._column(eos, tokens)], axis=1)
        lengths = tokens.row_lengths()
        longest = tf.reduce_max(lengths)
        message = (
            f"'prompts' must fit encoder_sequence_length={length} tokens "
            "with their EOS; a longer prompt would lose its end. Shorten "
            "the prompt or raise `encoder_sequence_length`."
        )
        if tf.executing_eagerly():
            if int(longest) > length:
                raise ValueError(f"{message} Longest: {int(longest)} tokens.")
        else:
            with tf.control_dependencies(
                [
                    tf.debugging.assert_less_equal(
                        longest, tf.cast(length, longest.dtype), message
                    )
                ]
            ):
                tokens = tf.identity(tokens)
        return {
            "images": images,
            "encoder_token_ids": tokens.to_tensor(
                default_value=pad, shape=[None, length]
            ),
            "encoder_padding_mask": tf.sequence_mask(lengths, length),
        }

    def _tokenize(self, texts):
        """Strings `[B]` -> ragged int32 ids `[B, None]`."""
        tokens = self.tokenizer(texts)
        # keras-hub tokenizers return Python lists when run eagerly.
        if isinstance(tokens, tf.RaggedTensor):
            return tf.cast(tokens, "int32")
        if isinstance(tokens, tf.Tensor):
            return tf.RaggedTensor.from_tensor(tf.cast(tokens, "int32"))
        return tf.ragged.constant(
            [list(row) for row in tokens], dtype="int32", ragged_rank=1
        )

    @staticmethod
    def _column(value, like):
        """A ragged `[B, 1]` column of `value`, `like`'s batch size."""
        return tf.RaggedTensor.from_tensor(
            tf.fill(tf.stack([like.nrows(), 1]), tf.constant(value, "int32"))
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder_sequence_length": self.encoder_sequence_length,
                "decoder_sequence_length": self.decoder_sequence_length,
                "image_size": self.image_size,
                "value_range": self.value_range,
                "vocabulary_size": self.vocabulary_size,
            }
        )
        return config
