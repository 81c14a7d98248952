"""LiT's two towers (big_vision `proj/image_text/two_towers.py`)."""

import keras
from keras import ops
from keras_hub.models import Backbone

from keras_vl.models.finite_presets import FinitePresets
from keras_vl.models.parallel_layouts import TRANSFORMER_RULES, ParallelLayouts
from keras_vl.models.rematerializable import (
    Rematerializable,
    check_remat,
)
from keras_vl.ops import l2_normalize
from keras_vl.utils.converted_presets import (
    converted_preset_dir,
    is_converted_preset,
)

IMAGE_POOLING_TYPES = ("auto", "avg", "max", "first", "none")
TEXT_INPUT_NAMES = ("token_ids", "segment_ids", "padding_mask")
# Keys under which keras-hub / transformers-style models return features,
# most useful first. Text towers are read at the [CLS] token of the last
# layer, without BERT's pooler, as big_vision's BERT tower does.
FEATURE_KEYS = {
    "image": (
        "pooled_output",
        "pooler_output",
        "image_features",
        "features",
        "sequence_output",
        "last_hidden_state",
    ),
    "text": (
        "sequence_output",
        "last_hidden_state",
        "text_features",
        "features",
    ),
}


class _Tower(keras.layers.Layer):
    """Runs one tower and turns its output into features `[B, C]`.

    A *locked* tower (its `trainable` set to False, see `LiT`'s `lock`) runs
    in inference mode whatever the outer `training` flag (batch norm uses
    its moving statistics, dropout is off), and its output is cut from the
    gradient tape, so no backward pass is traced through it.

    Args:
        encoder: The wrapped Keras model.
        modality: `"image"` or `"text"`, for error messages.
        pooling: How a `[B, N, C]` or `[B, h, w, C]` output becomes
            `[B, C]`; see `LiTBackbone`.
        auto_tokens: What `"auto"` does with tokens `[B, N, C]`: `"avg"`
            (images) or `"first"` (texts: BERT's `[CLS]`).
        channels_first: Whether a 4-D output is `[B, C, h, w]`.
    """

    def __init__(
        self,
        encoder: keras.Layer,
        modality: str,
        pooling: str = "auto",
        auto_tokens: str = "avg",
        channels_first: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if isinstance(encoder, dict):
            encoder = keras.layers.deserialize(encoder)
        self.encoder = encoder
        self.modality = modality
        self.pooling = pooling
        self.auto_tokens = auto_tokens
        self.channels_first = channels_first

    @property
    def locked(self) -> bool:
        return not self.encoder.trainable

    def call(self, inputs, training=None):
        if self.locked:
            training = False
        outputs = self.encoder(inputs, training=training)
        features = self._pool(self._select(outputs))
        if self.locked:
            features = ops.stop_gradient(features)
        return features

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "encoder": keras.layers.serialize(self.encoder),
                "modality": self.modality,
                "pooling": self.pooling,
                "auto_tokens": self.auto_tokens,
                "channels_first": self.channels_first,
            }
        )
        return config

    def compute_output_spec(self, inputs, training=None):
        # Let the encoder infer its own output spec: tracing its `call`
        # symbolically fails on unknown image sizes (e.g. a ResNet).
        outputs = self.encoder.compute_output_spec(inputs)
        return self._pool(self._select(outputs))

    def _select(self, outputs):
        """Picks the feature tensor out of the encoder's output."""
        name = f"{self.modality}_encoder"
        if isinstance(outputs, dict):
            keys = FEATURE_KEYS[self.modality]
            for key in keys:
                if key in outputs:
                    return outputs[key]
            raise ValueError(
                f"`{name}` ({type(self.encoder).__name__}) returns a dict "
                f"with keys {sorted(outputs)} and none of them is a feature "
                f"output (expected one of {keys}). Wrap it in a "
                "`keras.Model(inputs, outputs=<the feature tensor>)`."
            )
        if isinstance(outputs, list | tuple):
            raise ValueError(
                f"`{name}` ({type(self.encoder).__name__}) has "
                f"{len(outputs)} outputs; LiT needs one feature tensor. Wrap "
                "it in a `keras.Model(inputs, outputs=<the feature tensor>)`."
            )
        dtype = keras.backend.standardize_dtype(outputs.dtype)
        if "float" not in dtype or len(outputs.shape) not in (2, 3, 4):
            raise ValueError(
                f"`{name}` ({type(self.encoder).__name__}) must output float "
                "features [B, C], tokens [B, N, C] or a feature map "
                f"[B, h, w, C]. Received an output of shape "
                f"{tuple(outputs.shape)} and dtype {dtype}."
            )
        return outputs

    def _pool(self, x):
        rank, pooling = len(x.shape), self.pooling
        name = f"{self.modality}_pooling"
        if rank == 2:
            if pooling not in ("auto", "none"):
                raise ValueError(
                    f"`{name}={pooling!r}` needs tokens or a feature map, but "
                    f"the {self.modality} encoder already outputs pooled "
                    f"features of shape {tuple(x.shape)}. Use 'auto'."
                )
            return x
        if pooling == "none":
            raise ValueError(
                f"`{name}='none'` needs pooled features [B, C]; the "
                f"{self.modality} encoder outputs shape {tuple(x.shape)}."
            )
        if rank == 3:
            axes, first = (1,), x[:, 0]
            if pooling == "auto":
                pooling = self.auto_tokens
        elif self.channels_first:
            axes, first = (2, 3), None
        else:
            axes, first = (1, 2), None
        if pooling == "first":
            if first is None:
                raise ValueError(
                    f"`{name}='first'` applies to tokens [B, N, C], not to a "
                    f"feature map of shape {tuple(x.shape)}."
                )
            return first
        if pooling == "max":
            return ops.max(x, axis=axes)
        return ops.mean(x, axis=axes)  # "auto" and "avg"


def _serialize_tower(encoder):
    """`keras.layers.serialize`, minus `trainable`: which tower is locked
    is the `LiT` task's `lock`, not part of the architecture."""
    config = keras.layers.serialize(encoder)
    config["config"].pop("trainable", None)
    return config


def _input_spec(encoder):
    """The encoder's functional input(s), or None if it has none."""
    try:
        return encoder.input
    except (AttributeError, ValueError):
        pass
    # A `keras.Sequential` only lists its inputs.
    inputs = getattr(encoder, "inputs", None)
    if isinstance(inputs, list | tuple) and len(inputs) == 1:
        return inputs[0]
    return None


@keras.saving.register_keras_serializable(package="keras_vl")
class LiTBackbone(Rematerializable, FinitePresets, ParallelLayouts, Backbone):
    """LiT's two towers: an image model and a text model, each with an
    optional linear projection, embedding into one L2-normalised space.

    The image tower can be a keras_vl `ViTBackbone`, any keras-hub vision
    backbone (ViT, ResNet, EfficientNet, ...) or any Keras model producing
    features; its output is pooled to `[B, C]` (`image_pooling`). The text
    tower is a `TextTransformer` (big_vision's, SentencePiece tokens), a
    keras-hub `BertBackbone` (its `[CLS]` token, as big_vision's BERT
    towers use, without BERT's pooler) or any Keras model mapping token
    ids to features. Embeddings are `z / (||z|| + 1e-8)` (the norm taken
    in float32), in the compute dtype.

    Which tower is locked (frozen) and which trains is decided by the `LiT`
    task (`lock="Lu"` etc.); a locked tower runs in inference mode and no
    gradient flows through it.

    Inputs (a dict):
        images: float `[B, H, W, C]`, model-ready (see `LiTPreprocessor`).
        token_ids: int32 `[B, L]`.
        segment_ids, padding_mask: int32 `[B, L]`, only when the text
            encoder takes them (a keras-hub `BertBackbone`).

    Outputs (a dict): `image_embeddings`, `text_embeddings`, `[B, D]`,
    L2-normalised, in the compute dtype (float32 unless a mixed-precision
    `dtype` is set).

    Args:
        image_encoder: The image model (or its serialized config).
        text_encoder: The text model (or its serialized config). Its input
            is int token ids `[B, L]`, or a dict of `token_ids` and
            optionally `segment_ids` / `padding_mask`. A `[B, L, C]`
            sequence output (or a dict's `sequence_output`) is read at its
            first token (BERT's `[CLS]`).
        image_projection_dim: Width of a linear projection on the image
            features, or None for none (big_vision's LiT: the locked image
            tower's pre-logits are used as they are).
        text_projection_dim: Width of a linear projection on the text
            features, or None (e.g. when the `TextTransformer` has its own
            head, `num_classes`).
        image_pooling: How an image output with spatial or token axes
            becomes `[B, C]`: `"auto"` (features `[B, C]` are used as they
            are; tokens `[B, N, C]` and feature maps `[B, h, w, C]` are
            averaged), `"avg"`, `"max"`, `"first"` (the first token, e.g. a
            class token), or `"none"` (the output must already be `[B, C]`).
        dtype: Dtype policy of the layers, e.g. `"mixed_bfloat16"`.
        image_shape: `(H, W, C)` of the image input. Defaults to the image
            encoder's own input shape; needed only for models without a
            functional input.
        remat: None (each tower keeps its own setting) or a bool set on
            every tower that has the option (keras_vl's `ViTBackbone` and
            `TextTransformer`): rematerialise the transformer blocks,
            recomputing their activations in the backward pass instead of
            storing them.
        **kwargs: Standard `keras_hub.models.Backbone` arguments.

    Example:

    ```python
    image_tower = keras_hub.models.ResNetBackbone.from_preset(
        "resnet_50_imagenet"
    )
    text_tower = keras_vl.models.TextTransformer(
        vocab_size=32_000, sequence_length=16, width=512, depth=12,
        num_heads=8,
    )
    backbone = keras_vl.models.LiTBackbone(
        image_tower, text_tower, image_projection_dim=512
    )
    out = backbone({"images": images, "token_ids": token_ids})
    out["image_embeddings"]  # (B, 512), unit norm
    ```
    """

    # Weight layouts of `get_layout_map` (see `parallel_layouts`): those of
    # keras_vl's towers (ViT, TextTransformer); other towers are replicated.
    layout_rules = TRANSFORMER_RULES

    def __init__(
        self,
        image_encoder: keras.Layer,
        text_encoder: keras.Layer,
        image_projection_dim: int | None = None,
        text_projection_dim: int | None = None,
        image_pooling: str = "auto",
        dtype=None,
        image_shape: tuple | None = None,
        remat: bool | None = None,
        **kwargs,
    ):
        if isinstance(image_encoder, dict):
            image_encoder = keras.layers.deserialize(image_encoder)
        if isinstance(text_encoder, dict):
            text_encoder = keras.layers.deserialize(text_encoder)
        for name, value in (
            ("image_encoder", image_encoder),
            ("text_encoder", text_encoder),
        ):
            if not isinstance(value, keras.Layer):
                raise TypeError(
                    f"`{name}` must be a Keras model or layer. Received: "
                    f"{type(value).__name__}"
                )
        if image_pooling not in IMAGE_POOLING_TYPES:
            raise ValueError(
                f"`image_pooling` must be one of {IMAGE_POOLING_TYPES}. "
                f"Received: image_pooling={image_pooling!r}"
            )
        for name, value in (
            ("image_projection_dim", image_projection_dim),
            ("text_projection_dim", text_projection_dim),
        ):
            if value is not None and (
                not isinstance(value, int)
                or isinstance(value, bool)
                or value < 1
            ):
                raise ValueError(
                    f"`{name}` must be a positive int or None. Received: "
                    f"{name}={value!r}"
                )
        check_remat(remat, optional=True)
        image_shape = self._resolve_image_shape(image_encoder, image_shape)
        text_inputs = self._resolve_text_inputs(text_encoder)

        # === Layers ===
        self.image_tower = _Tower(
            image_encoder,
            "image",
            image_pooling,
            channels_first=(
                getattr(image_encoder, "data_format", None) == "channels_first"
            ),
            dtype=dtype,
            name="image_tower",
        )
        self.text_tower = _Tower(
            text_encoder,
            "text",
            auto_tokens="first",
            dtype=dtype,
            name="text_tower",
        )
        self.image_projection = (
            keras.layers.Dense(
                image_projection_dim, dtype=dtype, name="image_projection"
            )
            if image_projection_dim
            else None
        )
        self.text_projection = (
            keras.layers.Dense(
                text_projection_dim, dtype=dtype, name="text_projection"
            )
            if text_projection_dim
            else None
        )

        # === Functional Model ===
        inputs = {"images": keras.Input(shape=image_shape, name="images")}
        for name, shape in text_inputs.items():
            inputs[name] = keras.Input(shape=shape, dtype="int32", name=name)
        # Shape checks first, so errors reach the user without Keras'
        # "Exception encountered when calling" wrapping.
        self.image_tower.compute_output_spec(inputs["images"])
        self.text_tower.compute_output_spec(self._text_args(inputs))
        image_features = self.image_tower(inputs["images"])
        text_features = self.text_tower(self._text_args(inputs))
        if len(text_features.shape) != 2:
            raise ValueError(
                "`text_encoder` must give features [B, C] or a sequence "
                f"[B, L, C]. Received shape {tuple(text_features.shape)}."
            )
        image_dim = self._projected_dim(image_features, self.image_projection)
        text_dim = self._projected_dim(text_features, self.text_projection)
        if image_dim != text_dim:
            raise ValueError(
                f"The image embeddings ({image_dim} wide) and text embeddings "
                f"({text_dim} wide) must have the same width. Set "
                "`image_projection_dim` and/or `text_projection_dim`."
            )
        outputs = {
            "image_embeddings": self.embed_image_features(image_features),
            "text_embeddings": self._embed_text_features(text_features),
        }
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

        # === Config ===
        self.image_projection_dim = image_projection_dim
        self.text_projection_dim = text_projection_dim
        self.image_pooling = image_pooling
        self.image_shape = image_shape
        self.image_feature_dim = int(image_features.shape[-1])
        self.text_feature_dim = int(text_features.shape[-1])
        self.embedding_dim = image_dim
        self.text_input_names = tuple(text_inputs)
        if remat is not None:
            if not self.remat_stacks:
                raise ValueError(
                    "`remat` needs a tower with rematerialisable blocks (a "
                    "keras_vl ViTBackbone or TextTransformer). Received: "
                    f"remat={remat!r} with towers "
                    f"{type(image_encoder).__name__} and "
                    f"{type(text_encoder).__name__}."
                )
            self.remat = remat
        self._text_input_shape = text_inputs["token_ids"]

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Loads a preset: a local directory, a `kaggle://` or `hf://`
        handle, or a name in `LiTBackbone.presets`, which is downloaded
        and converted on first use."""
        if is_converted_preset(preset):
            preset = converted_preset_dir(preset)
        return super().from_preset(preset, load_weights, **kwargs)

    @staticmethod
    def _resolve_image_shape(encoder, image_shape):
        if image_shape is None:
            spec = _input_spec(encoder)
            if spec is None:
                raise ValueError(
                    f"`image_encoder` ({type(encoder).__name__}) has no "
                    "functional input, so its input shape is unknown. Pass "
                    "`image_shape=(H, W, C)`."
                )
            if isinstance(spec, dict | list | tuple):
                raise ValueError(
                    "`image_encoder` must take a single image tensor. "
                    f"Received a model with inputs {spec}."
                )
            image_shape = spec.shape[1:]
        image_shape = tuple(image_shape)
        if len(image_shape) != 3:
            raise ValueError(
                "`image_shape` must be `(H, W, C)`. Received: "
                f"image_shape={image_shape}"
            )
        return image_shape

    @staticmethod
    def _resolve_text_inputs(encoder):
        """`{input name: shape}` of the text encoder."""
        spec = _input_spec(encoder)
        if spec is None:
            raise ValueError(
                f"`text_encoder` ({type(encoder).__name__}) must be a "
                "functional Keras model taking token ids (e.g. "
                "TextTransformer or keras_hub BertBackbone)."
            )
        if not isinstance(spec, dict):
            if isinstance(spec, list | tuple):
                raise ValueError(
                    "`text_encoder` must take token ids [B, L] or a dict "
                    f"with keys among {TEXT_INPUT_NAMES}. Received inputs "
                    f"{spec}."
                )
            spec = {"token_ids": spec}
        unknown = set(spec) - set(TEXT_INPUT_NAMES)
        if unknown or "token_ids" not in spec:
            raise ValueError(
                "`text_encoder` must take 'token_ids' and optionally "
                "'segment_ids' / 'padding_mask'. Received inputs "
                f"{sorted(spec)}."
            )
        shapes = {}
        for name in TEXT_INPUT_NAMES:
            if name in spec:
                shape = tuple(spec[name].shape[1:])
                if len(shape) != 1:
                    raise ValueError(
                        f"`text_encoder` input '{name}' must be [B, L]. "
                        f"Received shape {tuple(spec[name].shape)}."
                    )
                shapes[name] = shape
        return shapes

    @property
    def remat_stacks(self) -> list:
        return [
            stack
            for tower in (self.image_encoder, self.text_encoder)
            if isinstance(tower, Rematerializable)
            for stack in tower.remat_stacks
        ]

    def _text_args(self, text_inputs):
        """The text encoder's argument: a tensor or a dict, as it expects."""
        spec = self.text_encoder.input
        if isinstance(spec, dict):
            return {name: text_inputs[name] for name in spec}
        if isinstance(text_inputs, dict):
            return text_inputs["token_ids"]
        return text_inputs

    @staticmethod
    def _projected_dim(features, projection):
        return projection.units if projection else int(features.shape[-1])

    @property
    def image_encoder(self) -> keras.Layer:
        """The image model."""
        return self.image_tower.encoder

    @property
    def text_encoder(self) -> keras.Layer:
        """The text model."""
        return self.text_tower.encoder

    @property
    def image_size(self) -> tuple | None:
        """`(H, W)` of the image input, or None if it takes any size."""
        height, width = self.image_shape[:2]
        return None if height is None or width is None else (height, width)

    @property
    def text_sequence_length(self) -> int | None:
        """The exact token length the text tower takes, or None if any
        length up to `max_text_length` works."""
        return self._text_input_shape[0]

    @property
    def max_text_length(self) -> int | None:
        """Longest token sequence the text tower's position embedding
        covers (None if unknown)."""
        encoder = self.text_encoder
        for attribute in ("sequence_length", "max_sequence_length"):
            value = getattr(encoder, attribute, None)
            if isinstance(value, int):
                return value
        return self.text_sequence_length

    @property
    def text_vocabulary_size(self) -> int | None:
        """Token ids the text tower embeds (None if unknown)."""
        encoder = self.text_encoder
        for attribute in ("vocab_size", "vocabulary_size"):
            value = getattr(encoder, attribute, None)
            if isinstance(value, int):
                return value
        return None

    def image_features(self, images, training: bool = False):
        """Model-ready images -> pooled image features, before the
        projection (what `LiT.precompute_image_features` caches)."""
        return self.image_tower(images, training=training)

    def embed_image_features(self, features):
        """Image features (from `image_features`) -> image embeddings."""
        if self.image_projection is not None:
            features = self.image_projection(features)
        return l2_normalize(features)

    def embed_images(self, images):
        """Model-ready images `[B, H, W, C]` -> image embeddings."""
        return self.embed_image_features(self.image_features(images))

    def embed_texts(self, text_inputs, training: bool = False):
        """Token ids `[B, L]` (or a dict with `token_ids` and the text
        encoder's other inputs) -> text embeddings."""
        features = self.text_tower(
            self._text_args(text_inputs), training=training
        )
        return self._embed_text_features(features)

    def _embed_text_features(self, features):
        if self.text_projection is not None:
            features = self.text_projection(features)
        return l2_normalize(features)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "image_encoder": _serialize_tower(self.image_encoder),
                "text_encoder": _serialize_tower(self.text_encoder),
                "image_projection_dim": self.image_projection_dim,
                "text_projection_dim": self.text_projection_dim,
                "image_pooling": self.image_pooling,
                "image_shape": self.image_shape,
                "remat": self.remat,
            }
        )
        return config
