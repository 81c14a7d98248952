"""PaLI's backbone (Chen et al., 2022): ViT image tokens in front of the
prompt, read by an mT5 encoder-decoder."""

import keras
from keras import ops
from keras_hub.models import Backbone

from keras_vl.models.finite_presets import FinitePresets
from keras_vl.models.pali.pali_language_model import (
    PaLILanguageModel,
    seq2seq_inputs,
)
from keras_vl.models.parallel_layouts import ParallelLayouts
from keras_vl.models.rematerializable import (
    Rematerializable,
    check_remat,
)
from keras_vl.models.vit.vit_backbone import ViTBackbone


@keras.saving.register_keras_serializable(package="keras_vl")
class PaLIVisionTokens(keras.layers.Layer):
    """Runs the ViT on model-ready images and returns its tokens `[B, N, C]`.

    A locked ViT (its `trainable` set to False, see `PaLIBackbone`'s
    `freeze_vision`) runs in inference mode whatever the outer `training`
    flag, and its output is cut from the gradient, so no backward pass goes
    through it (LiT's lock).

    Args:
        vision: A `ViTBackbone` with `pool_type="none"` (or its config).
        **kwargs: Standard layer arguments.

    Example:

    ```python
    vit = ViTBackbone(image_size=16, patch_size=8, width=32, depth=1,
                      num_heads=4, pool_type="none")
    tokens = PaLIVisionTokens(vit)(np.zeros((1, 16, 16, 3)))  # (1, 4, 32)
    ```
    """

    def __init__(self, vision: ViTBackbone, **kwargs):
        super().__init__(**kwargs)
        if isinstance(vision, dict):
            vision = keras.layers.deserialize(vision)
        self.vision = vision

    @property
    def locked(self) -> bool:
        return not self.vision.trainable

    def build(self, input_shape):
        pass

    def call(self, images, training=None):
        expected = (*self.vision.image_size, self.vision.num_channels)
        if tuple(images.shape[1:]) != expected:
            raise ValueError(
                f"`images` must be [batch, {expected[0]}, {expected[1]}, "
                f"{expected[2]}], the ViT's input size. Received shape "
                f"{tuple(images.shape)}"
            )
        if self.locked:
            training = False
        tokens = self.vision(images, training=training)
        if self.locked:
            tokens = ops.stop_gradient(tokens)
        return tokens

    def compute_output_spec(self, images, training=None):
        return self.vision.compute_output_spec(images)

    def get_config(self):
        config = super().get_config()
        vision = keras.layers.serialize(self.vision)
        # Whether the ViT is locked is `PaLIBackbone`'s `freeze_vision`.
        vision["config"].pop("trainable", None)
        config["vision"] = vision
        return config


@keras.saving.register_keras_serializable(package="keras_vl")
class PaLIEncoderInputs(keras.layers.Layer):
    """Puts image tokens in front of the embedded prompt.

    Returns the encoder's input embeddings `[B, N + T, D]` and its padding
    mask, in which image tokens are always valid.

    Args:
        max_length: The most tokens (image and prompt) the encoder takes;
            None for no limit.
        **kwargs: Standard layer arguments.

    Example:

    ```python
    x, mask = PaLIEncoderInputs(max_length=16)(
        np.ones((2, 4, 32)), np.ones((2, 6, 32)), np.ones((2, 6), bool)
    )  # x: (2, 10, 32), mask: (2, 10)
    ```
    """

    def __init__(self, max_length: int | None = None, **kwargs):
        super().__init__(**kwargs)
        self.max_length = max_length

    def call(self, image_tokens, prompt_embeddings, prompt_padding_mask):
        num_image_tokens = image_tokens.shape[1]
        prompt_length = prompt_embeddings.shape[1]
        if self.max_length is not None and prompt_length is not None:
            if num_image_tokens + prompt_length > self.max_length:
                raise ValueError(
                    f"The encoder takes at most {self.max_length} tokens "
                    f"(`max_encoder_length`), but {num_image_tokens} image "
                    f"tokens plus `encoder_token_ids` of length "
                    f"{prompt_length} make {num_image_tokens + prompt_length}."
                    " Shorten the prompt."
                )
        prompt_embeddings = ops.cast(prompt_embeddings, image_tokens.dtype)
        x = ops.concatenate([image_tokens, prompt_embeddings], axis=1)
        image_mask = ops.ones_like(image_tokens[..., 0], dtype="bool")
        mask = ops.concatenate(
            [image_mask, ops.cast(prompt_padding_mask, "bool")], axis=1
        )
        return x, mask

    def compute_output_spec(self, image_tokens, prompt_embeddings, mask):
        batch, count, width = image_tokens.shape
        length = prompt_embeddings.shape[1]
        length = None if length is None else count + length
        return (
            keras.KerasTensor((batch, length, width), self.compute_dtype),
            keras.KerasTensor((batch, length), "bool"),
        )

    def get_config(self):
        config = super().get_config()
        config["max_length"] = self.max_length
        return config


@keras.saving.register_keras_serializable(package="keras_vl")
class PaLIBackbone(Rematerializable, FinitePresets, ParallelLayouts, Backbone):
    """PaLI: a ViT's tokens, projected to the language width, in front of
    the embedded prompt; an mT5 encoder reads them and an mT5 decoder
    attends to the result.

    Inputs (keras-hub's `Seq2SeqLM` layout, plus images): `images` `[B, H,
    W, 3]` scaled for the ViT, `encoder_token_ids` and
    `encoder_padding_mask` `[B, Te]` (the prompt only: the image tokens are
    always valid), `decoder_token_ids` and `decoder_padding_mask` `[B, Td]`.
    Outputs: `encoder_sequence_output` `[B, N + Te, D]` (image tokens
    first) and `decoder_sequence_output` `[B, Td, D]`; `PaLI` turns the
    latter into logits with `language_model.lm_head`.

    Args:
        vision: A `ViTBackbone` with `pool_type="none"` and no head (or its
            config).
        language: A `PaLILanguageModel` (or its config).
        max_encoder_length: The most tokens (image tokens plus prompt) the
            encoder takes; longer inputs are an error. None: no limit.
        freeze_vision: Lock the ViT: its variables do not train, it runs in
            inference mode and no gradient flows through it.
        remat: None (the ViT and the language model keep their own
            setting) or a bool set on both: rematerialise every transformer
            block in training, recomputing its activations in the backward
            pass instead of storing them.
        dtype: Dtype or dtype policy of the new layers (the projection).
        **kwargs: Standard `Backbone` arguments.

    Example:

    ```python
    vision = ViTBackbone.from_variant(
        "B/16", image_size=224, pool_type="none"
    )
    language = PaLILanguageModel.from_preset("./mt5_base")
    backbone = PaLIBackbone(vision, language, max_encoder_length=256)
    outputs = backbone({
        "images": np.zeros((1, 224, 224, 3), "float32"),
        "encoder_token_ids": np.ones((1, 16), "int32"),
        "encoder_padding_mask": np.ones((1, 16), bool),
        "decoder_token_ids": np.zeros((1, 8), "int32"),
        "decoder_padding_mask": np.ones((1, 8), bool),
    })
    ```
    """

    # Weight layouts of `get_layout_map` (see `parallel_layouts`): the
    # ViT's and the language model's.
    layout_rules = {
        **ViTBackbone.layout_rules,
        **PaLILanguageModel.layout_rules,
    }

    def __init__(
        self,
        vision: ViTBackbone,
        language: PaLILanguageModel,
        max_encoder_length: int | None = None,
        freeze_vision: bool = False,
        remat: bool | None = None,
        dtype=None,
        **kwargs,
    ):
        if isinstance(vision, dict):
            vision = keras.layers.deserialize(vision)
        if isinstance(language, dict):
            language = keras.layers.deserialize(language)
        if not isinstance(vision, ViTBackbone):
            raise TypeError(
                "`vision` must be a ViTBackbone. Received: "
                f"{type(vision).__name__}"
            )
        if vision.pool_type != "none" or vision.output_dim != vision.width:
            raise ValueError(
                "`vision` must return its tokens: build the ViTBackbone with "
                "pool_type='none' and without a head. Received: pool_type="
                f"{vision.pool_type!r}, num_classes={vision.num_classes!r}, "
                f"rep_size={vision.rep_size!r}"
            )
        if not isinstance(language, PaLILanguageModel):
            raise TypeError(
                "`language` must be a PaLILanguageModel. Received: "
                f"{type(language).__name__}"
            )
        check_remat(remat, optional=True)
        num_image_tokens = vision.grid_size[0] * vision.grid_size[1]
        if max_encoder_length is not None and (
            not isinstance(max_encoder_length, int)
            or max_encoder_length <= num_image_tokens
        ):
            raise ValueError(
                "`max_encoder_length` must be an int larger than the "
                f"{num_image_tokens} image tokens, or None. Received: "
                f"max_encoder_length={max_encoder_length!r}"
            )
        # === Layers ===
        self.vision = vision
        self.language_model = language
        self.vision_tokens = PaLIVisionTokens(
            vision, dtype=vision.dtype_policy, name="vision_tokens"
        )
        self.image_projection = keras.layers.Dense(
            language.hidden_dim, dtype=dtype, name="image_projection"
        )
        self.encoder_inputs = PaLIEncoderInputs(
            max_encoder_length, dtype=dtype, name="encoder_inputs"
        )

        # === Functional Model ===
        inputs = {
            "images": keras.Input(
                shape=(*vision.image_size, vision.num_channels), name="images"
            ),
            **seq2seq_inputs(),
        }
        image_tokens = self.image_projection(
            self.vision_tokens(inputs["images"])
        )
        prompt = language.token_embedding(inputs["encoder_token_ids"])
        encoder_embeddings, encoder_mask = self.encoder_inputs(
            image_tokens, prompt, inputs["encoder_padding_mask"]
        )
        encoded = language.encoder(
            encoder_embeddings, padding_mask=encoder_mask
        )
        decoded = language.decoder(
            language.token_embedding(inputs["decoder_token_ids"]),
            padding_mask=inputs["decoder_padding_mask"],
            encoder_outputs=encoded,
            encoder_padding_mask=encoder_mask,
        )
        super().__init__(
            inputs=inputs,
            outputs={
                "encoder_sequence_output": encoded,
                "decoder_sequence_output": decoded,
            },
            dtype=dtype,
            **kwargs,
        )
        # keras-hub's Backbone tracks only its functional graph on torch;
        # the language model's `lm_head` is not in it (see
        # `PaLILanguageModel`).
        self._tracker.track(language)

        # After the model's own `trainable`, which reaches every layer.
        if freeze_vision:
            vision.trainable = False
        if remat is not None:
            self.remat = remat

        # === Config ===
        self.max_encoder_length = max_encoder_length
        self.num_image_tokens = num_image_tokens

    @property
    def freeze_vision(self) -> bool:
        """Whether the ViT is locked."""
        return not self.vision.trainable

    @property
    def remat_stacks(self) -> list:
        return self.vision.remat_stacks + self.language_model.remat_stacks

    @property
    def image_size(self) -> tuple[int, int]:
        return self.vision.image_size

    @property
    def vocabulary_size(self) -> int:
        return self.language_model.vocabulary_size

    def encoder_embeddings(
        self, images, encoder_token_ids, encoder_padding_mask
    ):
        """What the encoder reads: the projected image tokens followed by
        the embedded prompt.

        Returns:
            `(embeddings, padding_mask)` over the image tokens followed by
            the prompt.
        """
        image_tokens = self.image_projection(self.vision_tokens(images))
        return self.encoder_inputs(
            image_tokens,
            self.language_model.token_embedding(encoder_token_ids),
            encoder_padding_mask,
        )

    def encode(self, images, encoder_token_ids, encoder_padding_mask):
        """Runs the image and prompt through the encoder.

        Returns:
            `(encoder_outputs, encoder_padding_mask)` over the image tokens
            followed by the prompt.
        """
        x, mask = self.encoder_embeddings(
            images, encoder_token_ids, encoder_padding_mask
        )
        return self.language_model.encoder(x, padding_mask=mask), mask

    def get_config(self):
        config = super().get_config()
        vision = keras.layers.serialize(self.vision)
        vision["config"].pop("trainable", None)
        config.update(
            {
                "vision": vision,
                "language": keras.layers.serialize(self.language_model),
                "max_encoder_length": self.max_encoder_length,
                "freeze_vision": self.freeze_vision,
                "remat": self.remat,
            }
        )
        return config
