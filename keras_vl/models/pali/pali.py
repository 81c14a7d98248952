"""PaLI: a jointly-scaled multilingual language-image model.

Chen et al., ICLR 2023. Images and a text prompt go into an mT5 encoder
(image tokens first); the mT5 decoder writes the answer (a caption, a VQA
answer, ...). Trained with teacher forcing on the response tokens;
generates with keras-hub's samplers over key/value caches.
"""

import keras
import keras_hub
import numpy as np
from keras import ops
from keras_hub.models import Seq2SeqLM
from keras_hub.src.utils.tensor_utils import any_equal

from keras_vl.distribute.tracing import is_tracing
from keras_vl.models.finite_presets import FinitePresets
from keras_vl.models.pali.pali_backbone import PaLIBackbone
from keras_vl.models.pali.pali_language_model import (
    PaLILanguageModel,
    padding_bias,
)
from keras_vl.models.pali.pali_preprocessor import PaLIPreprocessor
from keras_vl.models.preprocessing import check_same_rows, check_token_ids
from keras_vl.models.skip_non_finite_optimizer import SkipsNonFiniteSteps
from keras_vl.models.vit.vit_backbone import ViTBackbone

# mT5 starts decoding from, and pads with, token 0.
PAD_TOKEN_ID = 0
INPUT_KEYS = (
    "images",
    "encoder_token_ids",
    "encoder_padding_mask",
    "decoder_token_ids",
    "decoder_padding_mask",
)


def check_vocabulary(backbone: PaLIBackbone, preprocessor) -> None:
    """Raises if the preprocessor's tokenizer makes ids the embedding table
    does not have."""
    tokenizer = getattr(preprocessor, "tokenizer", None)
    if tokenizer is None:
        return
    try:
        size = tokenizer.vocabulary_size()
    except (AttributeError, ValueError, TypeError):
        return  # A tokenizer without a vocabulary yet (loaded later).
    if size is not None and size > backbone.vocabulary_size:
        raise ValueError(
            f"The preprocessor's tokenizer has a vocabulary of {size} tokens "
            f"but the language model embeds only {backbone.vocabulary_size} "
            "(`vocabulary_size`). Use a matching tokenizer or language model."
        )


def _token_vit(vision: ViTBackbone) -> ViTBackbone:
    """The same ViT returning its tokens: pooling and head removed, the
    patch embedding, position embedding and encoder weights kept."""
    if vision.pool_type == "none" and vision.output_dim == vision.width:
        return vision
    if vision.pool_type == "tok":
        raise ValueError(
            "`vision` uses a class token (pool_type='tok'); PaLI reads a "
            "ViT's patch tokens. Use a ViT without a class token."
        )
    config = vision.get_config()
    config.update(pool_type="none", rep_size=False, num_classes=None)
    config.pop("name", None)
    tokens = ViTBackbone.from_config(config)
    for name in ("patch_embedding", "position_embedding", "encoder"):
        source, target = getattr(vision, name), getattr(tokens, name)
        for old, new in zip(source.weights, target.weights, strict=True):
            new.assign(old)
    return tokens


@keras.saving.register_keras_serializable(package="keras_vl")
class PaLI(SkipsNonFiniteSteps, FinitePresets, Seq2SeqLM):
    """PaLI task: image and prompt in, text out.

    Takes (and `fit` takes, as `x`) a dict of `images` `[B, H, W, 3]`
    scaled for the ViT, `encoder_token_ids` / `encoder_padding_mask` (the
    prompt) and `decoder_token_ids` / `decoder_padding_mask` (the start
    token then the response); returns next-token logits `[B, Td, vocab]`.
    For training, `y` is the decoder ids shifted left and `sample_weight`
    marks the response tokens: the loss is the mean cross-entropy over
    them alone (prompt, image and padding positions never count). Without
    `sample_weight`, the decoder padding mask is used.

    `generate` encodes each input once and decodes with self-attention
    caches (cross-attention keys and values are computed once), with the
    sampler chosen by `compile(sampler=...)` ("greedy", "beam", "top_k",
    ... or a `keras_hub.samplers.Sampler`). With a preprocessor it takes
    what the preprocessor's `generate_preprocess` takes and returns
    strings; without one it takes the dict above (the decoder ids may be
    left out: decoding then starts from token 0) and returns
    `{"decoder_token_ids", "decoder_padding_mask"}`, with token 0 after
    the end.

    Args:
        backbone: A `PaLIBackbone`.
        preprocessor: A preprocessor with `generate_preprocess` and
            `generate_postprocess` (keras-hub's `Seq2SeqLMPreprocessor`
            contract), or None to feed model-ready dicts.
        **kwargs: `keras_hub.models.Task` arguments (`compile=False`, ...).

    Example:

    ```python
    model = keras_vl.models.PaLI.from_parts(
        vision="./vit_b16_preset", language="./mt5_base_preset",
        preprocessor=preprocessor, freeze_vision=True,
    )
    model.compile(optimizer=keras.optimizers.Adam(1e-4), sampler="greedy")
    model.fit(dataset, epochs=1)  # (x, y, sample_weight) batches
    model.generate(
        {"images": images, "prompts": ["caption en"]}, max_length=32
    )
    ```
    """

    backbone_cls = PaLIBackbone
    preprocessor_cls = PaLIPreprocessor

    def __init__(
        self,
        backbone: PaLIBackbone,
        preprocessor=None,
        **kwargs,
    ):
        if not isinstance(backbone, PaLIBackbone):
            raise TypeError(
                "`backbone` must be a PaLIBackbone. Received: "
                f"{type(backbone).__name__}"
            )
        check_vocabulary(backbone, preprocessor)
        # === Layers ===
        self.backbone = backbone
        self.preprocessor = preprocessor

        # === Functional Model ===
        inputs = backbone.input
        hidden = backbone(inputs)["decoder_sequence_output"]
        logits = backbone.language_model.lm_head(hidden)
        super().__init__(inputs=inputs, outputs=logits, **kwargs)

    @classmethod
    def from_parts(
        cls,
        vision: ViTBackbone | str,
        language: PaLILanguageModel | str,
        preprocessor=None,
        max_encoder_length: int | None = None,
        freeze_vision: bool = False,
        **kwargs,
    ) -> "PaLI":
        """Builds PaLI from a vision model and a language model.

        Args:
            vision: A `ViTBackbone` or the preset (path or handle) of one;
                a pooled ViT or one with a head is turned into one that
                returns its patch tokens, with the same weights.
            language: A `PaLILanguageModel` or the preset of one (e.g.
                written by `tools/convert_transformers.py --model mt5`).
            preprocessor: See `PaLI`.
            max_encoder_length: See `PaLIBackbone`.
            freeze_vision: Lock the ViT (see `PaLIBackbone`).
            **kwargs: Passed to `PaLI`.

        Returns:
            A compiled `PaLI` (unless `compile=False`).
        """
        if isinstance(vision, str):
            vision = ViTBackbone.from_preset(vision)
        if isinstance(language, str):
            language = PaLILanguageModel.from_preset(language)
        if not isinstance(vision, ViTBackbone):
            raise TypeError(
                "`vision` must be a ViTBackbone or a preset of one. "
                f"Received: {type(vision).__name__}"
            )
        backbone = PaLIBackbone(
            _token_vit(vision),
            language,
            max_encoder_length=max_encoder_length,
            freeze_vision=freeze_vision,
        )
        return cls(backbone, preprocessor=preprocessor, **kwargs)

    @classmethod
    def from_preset(cls, preset: str, **kwargs) -> "PaLI":
        """Loads a preset saved by `save_to_preset`."""
        model = super().from_preset(preset, **kwargs)
        # A tokenizer's vocabulary is only loaded after construction.
        check_vocabulary(model.backbone, model.preprocessor)
        return model

    # --- Training ---------------------------------------------------------

    def compile(
        self,
        optimizer="auto",
        loss="auto",
        *,
        weighted_metrics="auto",
        sampler="top_k",
        skip_non_finite_steps: bool = True,
        **kwargs,
    ):
        """Configures training and generation.

        Args:
            optimizer: As for `keras.Model.compile`; `"auto"` is Adam 2e-5.
            loss: As for `keras.Model.compile`; `"auto"` is the token
                cross-entropy averaged over the weighted (response) tokens.
            weighted_metrics: `"auto"` is token accuracy on response tokens.
            sampler: A keras-hub sampler name (`"greedy"`, `"beam"`,
                `"top_k"`, `"top_p"`, `"random"`, `"contrastive"`) or a
                `keras_hub.samplers.Sampler`.
            skip_non_finite_steps: Whether a step whose loss or any
                gradient is NaN or infinite leaves the weights and the
                optimizer's state untouched (see `SkipNonFiniteOptimizer`);
                `fit` logs the running count as `skipped_steps`.
            **kwargs: Passed to `keras.Model.compile`.
        """
        try:
            resolved = keras_hub.samplers.get(sampler)
        except (KeyError, ValueError, TypeError) as error:
            raise ValueError(
                f"Unknown `sampler` {sampler!r}: {error}"
            ) from error
        if not isinstance(resolved, keras_hub.samplers.Sampler):
            raise ValueError(
                "`sampler` must be a keras-hub sampler name (e.g. 'greedy', "
                "'beam', 'top_k', 'top_p', 'random') or a "
                f"keras_hub.samplers.Sampler. Received: sampler={sampler!r}"
            )
        if optimizer == "auto":
            optimizer = keras.optimizers.Adam(2e-5)
        optimizer = self._skipping(optimizer, skip_non_finite_steps)
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, reduction="mean_with_sample_weight"
            )
        super().compile(
            optimizer=optimizer,
            loss=loss,
            weighted_metrics=weighted_metrics,
            sampler=resolved,
            **kwargs,
        )

    def get_compile_config(self) -> dict:
        """The compile config plus the sampler, so that a `.keras` file
        reloads compiled as it was saved."""
        config = super().get_compile_config()
        if config and getattr(self, "sampler", None) is not None:
            config["sampler"] = keras_hub.samplers.serialize(self.sampler)
        return config

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        if sample_weight is None and isinstance(x, dict):
            # No response mask given: at least skip the decoder padding.
            sample_weight = x.get("decoder_padding_mask")
            if sample_weight is not None:
                sample_weight = ops.cast(sample_weight, "float32")
        return super().compute_loss(
            x=x,
            y=y,
            y_pred=y_pred,
            sample_weight=sample_weight,
            training=training,
        )

    # --- Generation -------------------------------------------------------

    def call_encoder(self, images, encoder_token_ids, encoder_padding_mask):
        """Encodes images and prompts once.

        Returns:
            `(encoder_outputs, encoder_padding_mask)` over the image tokens
            followed by the prompt.
        """
        return self.backbone.encode(
            images, encoder_token_ids, encoder_padding_mask
        )

    def call_decoder_with_cache(
        self,
        decoder_token_ids,
        cache,
        cache_index,
        bias_table,
        cross_attention_bias,
        weights=None,
    ):
        """Decodes `decoder_token_ids` (the tokens from `cache_index` on)
        against the caches.

        Args:
            decoder_token_ids: `[B, T]` int tokens.
            cache: Per decoder layer, the self-attention keys and values
                `[B, heads, max_length, head_dim]` and the cross-attention
                ones `[B, heads, S, head_dim]` (see
                `MT5Stack.start_cache`); updated in place on torch.
            cache_index: Position of the first token.
            bias_table: The decoder's `causal_bias_table(max_length)`.
            cross_attention_bias: `[B, 1, 1, S]` float32 bias hiding the
                encoder's padding.
            weights: The decoder's `decoding_weights()`, fetched once per
                decoding; by default fetched here.

        Returns:
            `(logits, hidden_states, cache)`.
        """
        language = self.backbone.language_model
        hidden, cache = language.decoder.decode(
            language.embed(decoder_token_ids),
            cache,
            cache_index,
            bias_table,
            cross_attention_bias,
            weights,
        )
        return language.logits(hidden), hidden, cache

    def generate_step(self, inputs, stop_token_ids=None):
        """One compilable generation pass over a batch of model inputs.

        Args:
            inputs: The dict `PaLI` takes, with `decoder_token_ids` holding
                the start token then padding up to the output length.
            stop_token_ids: Token ids that end a sequence, or None.

        Returns:
            `{"decoder_token_ids", "decoder_padding_mask"}`.
        """
        decoder_token_ids = inputs["decoder_token_ids"]
        decoder_padding_mask = inputs["decoder_padding_mask"]
        encoder_outputs, encoder_padding_mask = self.call_encoder(
            inputs["images"],
            inputs["encoder_token_ids"],
            inputs["encoder_padding_mask"],
        )
        decoder = self.backbone.language_model.decoder
        max_length = ops.shape(decoder_token_ids)[1]
        # Made once per call; the loop only reads them.
        bias_table = decoder.causal_bias_table(max_length)
        cross_bias = padding_bias(encoder_padding_mask)
        # Joined kernels save eager calls; compiled, they cost copies.
        weights = decoder.decoding_weights(
            fused=not is_tracing(encoder_outputs)
        )
        cache = decoder.start_cache(encoder_outputs, max_length)
        row_lengths = ops.sum(ops.cast(decoder_padding_mask, "int32"), axis=-1)
        index = ops.min(row_lengths)
        # One pass over the given tokens seeds the self-attention cache
        # (no logits: the sampler starts from the next step's). Eagerly,
        # only the tokens before `index` (the decoding steps write the
        # rest); traced, the length must be static, so all of them.
        seed = decoder_token_ids
        if not is_tracing(encoder_outputs):
            seed = seed[:, : int(ops.convert_to_numpy(index))]
        hidden, cache = decoder.decode(
            self.backbone.language_model.embed(seed),
            cache,
            0,
            bias_table,
            cross_bias,
            weights,
        )
        # The sampler's states cover every position.
        hidden = ops.pad(
            hidden, [[0, 0], [0, max_length - ops.shape(seed)[1]], [0, 0]]
        )

        def next(prompt, cache, index):
            cache_index = index - 1
            batch_size = ops.shape(prompt)[0]
            prompt = ops.slice(prompt, [0, cache_index], [batch_size, 1])
            # The per-row bias rides in the cache, so that beam search
            # repeats it per beam.
            cross_bias, layer_caches = cache
            logits, hidden, layer_caches = self.call_decoder_with_cache(
                prompt,
                layer_caches,
                cache_index,
                bias_table,
                cross_bias,
                weights,
            )
            return (
                ops.squeeze(logits, axis=1),
                ops.squeeze(hidden, axis=1),
                (cross_bias, layer_caches),
            )

        decoder_token_ids = self.sampler(
            next=next,
            prompt=decoder_token_ids,
            cache=(cross_bias, cache),
            index=index,
            mask=decoder_padding_mask,
            stop_token_ids=stop_token_ids,
            hidden_states=hidden,
            model=self,
        )
        if stop_token_ids is None:
            decoder_padding_mask = ops.ones_like(decoder_token_ids, "bool")
        else:
            # Valid up to and including each row's first generated stop.
            ends = any_equal(
                decoder_token_ids,
                stop_token_ids,
                ops.logical_not(decoder_padding_mask),
            )
            ends = ops.cast(ends, "int32")
            after = ops.cumsum(ends, axis=-1) - ends
            decoder_padding_mask = ops.equal(after, 0)
            decoder_token_ids = ops.where(
                decoder_padding_mask, decoder_token_ids, PAD_TOKEN_ID
            )
        return {
            "decoder_token_ids": decoder_token_ids,
            "decoder_padding_mask": decoder_padding_mask,
        }

    def generate(
        self,
        inputs,
        max_length: int | None = None,
        stop_token_ids="auto",
        strip_prompt: bool = False,
    ):
        """Generates responses.

        Args:
            inputs: What the preprocessor's `generate_preprocess` takes; or,
                without a preprocessor, a dict of model inputs (see `PaLI`)
                whose decoder entries may be left out.
            max_length: Length of the decoder sequence (start token
                included). Without a preprocessor, the decoder inputs are
                padded to it.
            stop_token_ids: `"auto"` (the tokenizer's end token), None, or
                token ids that end a sequence.
            strip_prompt: Drop the given decoder tokens from the output.

        Returns:
            Strings with a preprocessor, else a dict of token ids and mask.
        """
        if max_length is not None and (
            isinstance(max_length, bool)
            or not isinstance(max_length, int | np.integer)
            or max_length <= 0
        ):
            raise ValueError(
                "`max_length` must be a positive int. Received: "
                f"max_length={max_length!r}"
            )
        if self.preprocessor is None and not hasattr(inputs, "element_spec"):
            # One batch of model inputs (a tf.data.Dataset passes as is).
            inputs = self._model_ready(inputs, max_length)
        return super().generate(
            inputs,
            max_length=max_length,
            stop_token_ids=stop_token_ids,
            strip_prompt=strip_prompt,
        )

    def _model_ready(self, inputs, max_length):
        if not isinstance(inputs, dict):
            raise TypeError(
                "Without a preprocessor, `inputs` must be a dict of "
                f"{list(INPUT_KEYS)}. Received: {type(inputs).__name__}"
            )
        missing = set(INPUT_KEYS[:3]) - set(inputs)
        if missing:
            raise ValueError(
                f"`inputs` misses {sorted(missing)}; PaLI takes "
                f"{list(INPUT_KEYS)} (the decoder entries are optional)."
            )
        inputs = dict(inputs)
        batch_size = np.shape(inputs["encoder_token_ids"])[0]
        if "decoder_token_ids" not in inputs:
            if max_length is None:
                raise ValueError(
                    "Pass `max_length` or `decoder_token_ids` to generate "
                    "without a preprocessor."
                )
            ids = np.full((batch_size, 1), PAD_TOKEN_ID, "int32")
            inputs["decoder_token_ids"] = ids
            inputs["decoder_padding_mask"] = np.ones_like(ids, bool)
        ids = np.asarray(inputs["decoder_token_ids"], "int32")
        mask = np.asarray(inputs["decoder_padding_mask"], bool)
        if max_length is not None:
            if ids.shape[1] > max_length:
                raise ValueError(
                    f"`decoder_token_ids` has {ids.shape[1]} tokens, more "
                    f"than max_length={max_length}."
                )
            pad = ((0, 0), (0, max_length - ids.shape[1]))
            ids = np.pad(ids, pad, constant_values=PAD_TOKEN_ID)
            mask = np.pad(mask, pad, constant_values=False)
        inputs["decoder_token_ids"], inputs["decoder_padding_mask"] = ids, mask
        # Eagerly, so that every backend raises the same clear error.
        check_same_rows(inputs, "inputs")
        for key in ("encoder_token_ids", "decoder_token_ids"):
            check_token_ids(
                inputs[key], self.backbone.vocabulary_size, f"inputs[{key!r}]"
            )
        return inputs
