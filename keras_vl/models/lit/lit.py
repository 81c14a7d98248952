"""LiT: zero-shot transfer with locked-image text tuning.

Zhai et al., CVPR 2022. A pretrained image model is kept locked (frozen)
while a text model learns to read out its representation through the
contrastive loss; lock modes are named by the paper's two-letter notation.
"""

import keras
import numpy as np

from keras_vl.models.contrastive import ContrastiveModel, ContrastiveTraining
from keras_vl.models.lit.lit_backbone import LiTBackbone
from keras_vl.models.lit.lit_preprocessor import LiTPreprocessor
from keras_vl.models.preprocessing import text_batch
from keras_vl.utils.converted_presets import (
    converted_preset_dir,
    is_converted_preset,
)

try:
    import tensorflow as tf
except ImportError:  # pragma: no cover - tensorflow comes with keras-hub
    tf = None

LOCK_MODES = {
    "L": "locked, pretrained",
    "U": "unlocked, pretrained",
    "u": "unlocked, from scratch",
}


def parse_lock(lock: str) -> tuple[str, str]:
    """Splits a lock string like `"Lu"` into `(image mode, text mode)`."""
    if (
        not isinstance(lock, str)
        or len(lock) != 2
        or any(mode not in LOCK_MODES for mode in lock)
    ):
        modes = ", ".join(f"'{k}' ({v})" for k, v in LOCK_MODES.items())
        raise ValueError(
            "`lock` must be two letters, for the image tower then the text "
            f"tower, each one of {modes}; e.g. 'Lu' (LiT), 'LU', 'Uu', 'UU' "
            f"or 'uu'. Received: lock={lock!r}"
        )
    return lock[0], lock[1]


def _reinitialize(layer: keras.Layer) -> None:
    """Gives `layer` fresh random weights, in place.

    A twin is built from the layer's config (so it draws new initial
    values exactly as a new model would) and its weights are copied over;
    the layer object, and every model sharing it, stays the same.
    """
    fresh = type(layer).from_config(layer.get_config())
    if not fresh.built:
        build_config = layer.get_build_config()
        if build_config:
            fresh.build_from_config(build_config)
    old, new = layer.weights, fresh.weights
    if [tuple(v.shape) for v in old] != [tuple(v.shape) for v in new]:
        raise ValueError(
            f"Cannot re-initialise {type(layer).__name__} '{layer.name}' from "
            "its config (the rebuilt layer has different weights), so it "
            "cannot train from scratch ('u'). Lock it ('L') or keep its "
            "weights ('U')."
        )
    for variable, value in zip(old, new, strict=True):
        variable.assign(value)


@keras.saving.register_keras_serializable(package="keras_vl")
class LiT(ContrastiveModel):
    """LiT task: contrastive tuning of two towers, one usually locked.

    `fit` takes dicts of raw pixels and strings (see `LiTPreprocessor`).

    Lock modes use the paper's notation, one letter for the image tower and
    one for the text tower:

    - `L`: locked pretrained. Its variables are not trainable, it runs in
      inference mode (batch norm keeps its moving statistics, no dropout)
      and no gradient is computed through it.
    - `U`: unlocked pretrained: trains from the weights it has.
    - `u`: unlocked from scratch: **re-initialised when the `LiT` is
      built** (fresh random weights drawn as for a new tower of the same
      config, copied into the existing variables), then trained. So build
      the `LiT` first and load trained weights after it, or use `U`/`L`
      to keep the weights a tower has. A `u` side's projection head is
      re-initialised too; projection heads otherwise always train.

    `"Lu"` (default) is LiT: a pretrained image model locked, the text
    model learned from scratch. `"LU"` starts the text side from a
    pretrained model (e.g. BERT), `"UU"` fine-tunes both, `"uu"` is
    CLIP-style training from scratch.

    With a locked image tower, images can be encoded once
    (`precompute_image_features`) and the text side trained on the cached
    features (`fit_cached`, or `cached_features_model()` for full control)
    several times faster than the full forward pass.

    Args:
        backbone: A `LiTBackbone`.
        preprocessor: A `LiTPreprocessor`; defaults to one without a
            tokenizer (texts as token ids) matching the backbone's image
            size and text length.
        lock: Lock mode, see above.
        loss: `"softmax"` (CLIP, LiT's) or `"sigmoid"` (SigLIP).
        temperature_init: Initial logit scale `exp(t)` (10 in big_vision).
        bias_init: Initial sigmoid bias; defaults to -10 for the sigmoid
            loss.
        **kwargs: See `ContrastiveModel`.

    Example:

    ```python
    image_tower = keras_vl.models.ViTBackbone.from_preset("./vit_b16")
    text_tower = keras_vl.models.TextTransformer.from_variant(
        "B", vocab_size=32_000, sequence_length=16
    )
    backbone = keras_vl.models.LiTBackbone(
        image_tower, text_tower, text_projection_dim=768
    )
    preprocessor = keras_vl.models.LiTPreprocessor(
        keras_hub.tokenizers.SentencePieceTokenizer("spm.model"),
        sequence_length=16, image_size=224,
    )
    model = keras_vl.models.LiT(backbone, preprocessor, lock="Lu")
    model.compile()
    model.fit({"images": images, "texts": captions}, batch_size=256)

    # Or: encode the locked image tower once, then train the text side.
    features = model.precompute_image_features(images, batch_size=256)
    model.fit_cached(features, captions, batch_size=256, epochs=10)

    logits = model.similarity(images, ["a photo of a cat", "a dog"])
    ```
    """

    backbone_cls = LiTBackbone
    preprocessor_cls = LiTPreprocessor

    def __init__(
        self,
        backbone: LiTBackbone,
        preprocessor: LiTPreprocessor | None = None,
        lock: str = "Lu",
        loss: str = "softmax",
        temperature_init: float = 10.0,
        bias_init: float | None = None,
        **kwargs,
    ):
        self.check_backbone(backbone)
        image_mode, text_mode = parse_lock(lock)
        if preprocessor is None:
            preprocessor = LiTPreprocessor(
                sequence_length=(
                    backbone.text_sequence_length
                    or backbone.max_text_length
                    or 16
                ),
                image_size=backbone.image_size,
                padding_mask="padding_mask" in backbone.text_input_names,
            )
        check_preprocessor(backbone, preprocessor)
        kwargs.setdefault("name", "lit")
        towers = (
            (image_mode, backbone.image_encoder, backbone.image_projection),
            (text_mode, backbone.text_encoder, backbone.text_projection),
        )
        for mode, encoder, projection in towers:
            if mode == "u":
                _reinitialize(encoder)
                if projection is not None:
                    _reinitialize(projection)
            encoder.trainable = mode != "L"
        super().__init__(
            backbone,
            preprocessor=preprocessor,
            loss=loss,
            temperature_init=temperature_init,
            bias_init=bias_init,
            **kwargs,
        )
        self.lock = lock

    @classmethod
    def from_preset(cls, preset: str, **kwargs) -> "LiT":
        """Loads a preset, tokenizer vocabulary included: a local directory
        or `kaggle://` / `hf://` handle saved by `save_to_preset`, or a
        name in `LiT.presets` (e.g. `"siglip_b16_224"`, `"lit_b16b"`),
        whose checkpoint and vocabulary are downloaded and converted on
        first use. `image_size=` loads it at another resolution (see
        `FinitePresets.from_preset`).

        Example:

        ```python
        model = keras_vl.models.LiT.from_preset("siglip_b16_224")
        model.encode_texts(["a photo of a cat"])
        ```
        """
        if is_converted_preset(preset):
            preset = converted_preset_dir(preset)
        model = super().from_preset(preset, **kwargs)
        # The tokenizer's vocabulary is only loaded after construction.
        check_preprocessor(model.backbone, model.preprocessor)
        return model

    # --- Inference ---------------------------------------------------------

    # `encode_images`, `encode_texts` and `similarity` come from
    # `ContrastiveModel`. `encode_texts` takes strings (tokenized by the
    # preprocessor's tokenizer), token ids (`[B, L]` or a list of lists,
    # padded by the preprocessor) or a dict of model-ready text inputs.

    def text_inputs(self, texts) -> dict:
        """Texts (strings, token ids, or a dict of model-ready inputs) ->
        the backbone's text inputs, as numpy arrays."""
        if isinstance(texts, dict):
            missing = set(self.backbone.text_input_names) - set(texts)
            if missing:
                raise ValueError(
                    f"The `texts` dict misses {sorted(missing)}; the text "
                    f"tower takes {list(self.backbone.text_input_names)}."
                )
            inputs = {
                name: np.asarray(texts[name], "int32")
                for name in self.backbone.text_input_names
            }
            return self._checked_text_inputs(inputs)
        texts = text_batch(texts)
        if len(texts) == 0:
            raise ValueError("`texts` is empty.")
        if isinstance(texts, np.ndarray):
            if texts.dtype.kind not in "iuSUO":
                raise TypeError(
                    "`texts` must be strings or int token ids. Received "
                    f"dtype {texts.dtype}"
                )
        elif all(isinstance(t, str | bytes) for t in texts):
            texts = np.asarray(texts, dtype=object)
        elif all(isinstance(t, list | tuple | np.ndarray) for t in texts):
            texts = self._ragged_ids(texts)
        else:
            raise TypeError(
                "`texts` must be strings or token ids (lists of ints)."
            )
        self._check_token_ids(texts, "texts")
        if self.preprocessor is None:
            raise ValueError(
                "This model has no preprocessor: pass `texts` as a dict of "
                f"model-ready inputs {list(self.backbone.text_input_names)}."
            )
        outputs = self.preprocessor({"texts": texts})
        return {
            name: keras.ops.convert_to_numpy(outputs[name])
            for name in self.backbone.text_input_names
        }

    @staticmethod
    def _ragged_ids(rows):
        if not all(
            isinstance(token, int | np.integer) and not isinstance(token, bool)
            for row in rows
            for token in row
        ):
            raise TypeError("Token ids in `texts` must be ints.")
        return tf.ragged.constant(
            [list(map(int, row)) for row in rows], dtype="int32", ragged_rank=1
        )

    def _model_texts(self, texts) -> dict:
        return self.text_inputs(texts)

    def _model_ready_range(self) -> tuple[float, float]:
        preprocessor = self.preprocessor
        if getattr(preprocessor, "mean", None) is None:
            return tuple(sorted(getattr(preprocessor, "value_range", (-1, 1))))
        # Standardised pixels: (x - mean) / std for x in [0, 1].
        mean, std = np.asarray(preprocessor.mean), np.asarray(preprocessor.std)
        return float(np.min(-mean / std)), float(np.max((1 - mean) / std))

    # --- Cached image features --------------------------------------------

    def precompute_image_features(
        self,
        images_or_dataset,
        batch_size: int = 64,
        preprocessed: bool = False,
    ) -> np.ndarray:
        """Runs the image tower once over a set of images.

        The result is the pooled image features *before* the image
        projection, i.e. the input of `fit_cached` and of
        `cached_features_model()`. Only meaningful while the image tower is
        locked (otherwise its features change as it trains).

        Args:
            images_or_dataset: `[N, H, W, C]` images (as for
                `encode_images`), or a *batched* `tf.data.Dataset` of image
                batches, of dicts with an `"images"` entry, or of
                `(x, ...)` tuples with such an `x` (other entries are
                ignored, so a training dataset works as it is).
            batch_size: Images per forward pass, for arrays.
            preprocessed: Whether the images are already model-ready.

        Returns:
            numpy float32 `[N, image_feature_dim]`.
        """
        if not preprocessed and self.preprocessor is None:
            raise ValueError(
                "This model has no preprocessor: pass model-ready images "
                "with `preprocessed=True`."
            )

        def select(*element):
            x = element[0]
            if isinstance(x, dict):
                if "images" not in x:
                    raise ValueError(
                        "Dataset elements must hold an 'images' entry. "
                        f"Received keys {sorted(x)}"
                    )
                x = x["images"]
            if not preprocessed:
                x = self.preprocessor({"images": x})["images"]
            return x

        if isinstance(images_or_dataset, tf.data.Dataset):
            dataset = images_or_dataset.map(select)
        else:
            images = np.asarray(images_or_dataset)
            if images.ndim != 4 or images.shape[0] == 0:
                raise ValueError(
                    "`images_or_dataset` must be a non-empty batch of images "
                    f"[N, H, W, C] or a tf.data.Dataset. Received shape "
                    f"{images.shape}"
                )
            dataset = (
                tf.data.Dataset.from_tensor_slices(images)
                .batch(batch_size)
                .map(select)
            )
        helpers = self._helper_models
        if "feature_extractor" not in helpers:
            images = keras.Input(shape=self.backbone.image_shape, name="images")
            helpers["feature_extractor"] = keras.Model(
                images, self.backbone.image_tower(images)
            )
        features = helpers["feature_extractor"].predict(dataset, verbose=0)
        return np.asarray(features, "float32")

    def cached_features_model(self) -> keras.Model:
        """A model that trains this LiT's text side on cached features.

        It takes `{"image_features": [B, image_feature_dim], "token_ids":
        ..., (other text inputs)}` (see `precompute_image_features` and
        `text_inputs`) and applies the *same* layers and variables as this
        model: the image projection, the text tower and projection, the
        temperature `t` and bias `b`. Training it trains this model; only
        the locked image tower is skipped. It is compiled with a copy of
        this model's optimizer configuration (its own optimizer state, and
        the same `skip_non_finite_steps`) and returned as the same object
        on every call; recompile it to change the optimizer.

        Raises:
            ValueError: if the image tower is not locked (`lock[0] != "L"`).
        """
        if self.lock[0] != "L":
            raise ValueError(
                "Training on cached image features needs a locked image "
                f"tower (lock 'L?'). This model has lock={self.lock!r}."
            )
        helpers = self._helper_models
        if "cached_features_model" not in helpers:
            model = _CachedFeaturesModel(self)
            optimizer = self.optimizer
            if optimizer is not None:
                optimizer = type(optimizer).from_config(optimizer.get_config())
            model.compile(
                optimizer=optimizer or "auto",
                skip_non_finite_steps=getattr(
                    self, "skip_non_finite_steps", True
                ),
            )
            helpers["cached_features_model"] = model
        return helpers["cached_features_model"]

    def fit_cached(
        self,
        features,
        texts,
        batch_size: int = 32,
        epochs: int = 1,
        **kwargs,
    ):
        """Trains the text side on cached image features.

        Args:
            features: `[N, image_feature_dim]` from
                `precompute_image_features`.
            texts: `N` texts as for `encode_texts` (strings or token ids),
                pair `i` being `(features[i], texts[i])`.
            batch_size: Pairs per step.
            epochs: Passes over the pairs.
            **kwargs: Other `keras.Model.fit` arguments (`shuffle`,
                `callbacks`, `verbose`, ...).

        Returns:
            The `History` of `cached_features_model().fit`.
        """
        model = self.cached_features_model()
        features = np.asarray(features, "float32")
        expected = self.backbone.image_feature_dim
        if features.ndim != 2 or features.shape[1] != expected:
            raise ValueError(
                f"`features` must be [N, {expected}] (from "
                "`precompute_image_features`). Received shape "
                f"{features.shape}"
            )
        inputs = self.text_inputs(texts)
        n_texts = len(inputs["token_ids"])
        if n_texts != len(features):
            raise ValueError(
                "`features` and `texts` must pair up one to one. Received "
                f"{len(features)} features and {n_texts} texts."
            )
        return model.fit(
            {"image_features": features, **inputs},
            batch_size=batch_size,
            epochs=epochs,
            **kwargs,
        )

    def get_config(self):
        config = super().get_config()
        config["lock"] = self.lock
        return config


class _CachedFeaturesModel(ContrastiveTraining, keras.Model):
    """LiT on cached image features: the image tower is skipped, every
    other layer and variable (projections, text tower, `t`, `b`) is the
    LiT model's own. Built by `LiT.cached_features_model()`."""

    def __init__(self, lit: LiT):
        backbone = lit.backbone
        features = keras.Input(
            shape=(backbone.image_feature_dim,), name="image_features"
        )
        text_inputs = {
            name: keras.Input(
                shape=tuple(backbone.input[name].shape[1:]),
                dtype="int32",
                name=name,
            )
            for name in backbone.text_input_names
        }
        text_features = backbone.text_tower(backbone._text_args(text_inputs))
        outputs = {
            "image_embeddings": backbone.embed_image_features(features),
            "text_embeddings": backbone._embed_text_features(text_features),
        }
        super().__init__(
            inputs={"image_features": features, **text_inputs},
            outputs=outputs,
            name=f"{lit.name}_cached_features",
        )
        # Shared with the LiT model: training here trains it.
        self.log_temperature = lit.log_temperature
        self.logit_bias = lit.logit_bias
        self.loss_type = lit.loss_type
        self.max_logit_scale = lit.max_logit_scale
        self.loss_exchange = lit.loss_exchange
        self.image_to_text_accuracy = keras.metrics.Mean(name="i2t_accuracy")
        self.text_to_image_accuracy = keras.metrics.Mean(name="t2i_accuracy")


def check_preprocessor(backbone: LiTBackbone, preprocessor) -> None:
    """Raises a `ValueError` if `preprocessor` cannot feed `backbone`:
    token length or vocabulary beyond the text tower's, missing BERT
    inputs, or a different image size."""
    if not isinstance(preprocessor, LiTPreprocessor):
        return
    length = preprocessor.sequence_length
    exact, longest = backbone.text_sequence_length, backbone.max_text_length
    if longest is not None and length > longest:
        raise ValueError(
            f"The preprocessor's `sequence_length` ({length}) is longer than "
            f"the text tower's position embedding ({longest} positions)."
        )
    if exact is not None and length != exact:
        raise ValueError(
            f"The preprocessor's `sequence_length` ({length}) must equal the "
            f"text tower's input length ({exact})."
        )
    if (
        "padding_mask" in backbone.text_input_names
        and not preprocessor.padding_mask
    ):
        raise ValueError(
            "The text tower takes a `padding_mask` (and `segment_ids`): "
            "create the LiTPreprocessor with `padding_mask=True`."
        )
    expected, size = backbone.image_size, preprocessor.image_size
    if expected is not None and size is not None and tuple(size) != expected:
        raise ValueError(
            f"The preprocessor's `image_size` {tuple(size)} differs from the "
            f"image tower's input size {expected}."
        )
    tokenizer = preprocessor.tokenizer
    vocabulary = backbone.text_vocabulary_size
    if tokenizer is None or vocabulary is None:
        return
    try:
        size = tokenizer.vocabulary_size()
    except (ValueError, RuntimeError):  # Vocabulary not loaded yet.
        return
    if size > vocabulary:
        raise ValueError(
            f"The tokenizer's vocabulary ({size} tokens) is larger than the "
            f"text tower's `vocab_size` ({vocabulary}): some token ids would "
            "have no embedding."
        )
