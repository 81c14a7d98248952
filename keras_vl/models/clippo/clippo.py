"""CLIPPO: image-and-language understanding from pixels only.

Tschannen, Mustafa, Houlsby, CVPR 2023. One ViT reads images and text
rendered as images; trained with the contrastive loss alone.
"""

import keras
import numpy as np

from keras_vl.models.clippo.clippo_backbone import ClippoBackbone
from keras_vl.models.clippo.clippo_preprocessor import ClippoPreprocessor
from keras_vl.models.contrastive import ContrastiveModel
from keras_vl.models.preprocessing import text_batch
from keras_vl.utils.converted_presets import (
    converted_preset_dir,
    is_converted_preset,
)


@keras.saving.register_keras_serializable(package="keras_vl")
class Clippo(ContrastiveModel):
    """CLIPPO task: contrastive training and the user API around it.

    `fit` takes dicts of raw pixels and strings (see `ClippoPreprocessor`):
    image-text pairs, text-text pairs (`image_texts`, the paper's
    next-sentence recipe), or batches mixing both.

    Args:
        backbone: A `ClippoBackbone`.
        preprocessor: A `ClippoPreprocessor`; defaults to one matching the
            backbone's image size.
        loss: `"softmax"` (CLIPPO's) or `"sigmoid"`.
        temperature_init: Initial logit scale (10 in big_vision).
        **kwargs: See `ContrastiveModel`.

    Example:

    ```python
    backbone = keras_vl.models.ClippoBackbone.from_variant(
        "mu/16", image_size=64, out_dim=32
    )
    model = keras_vl.models.Clippo(backbone)
    model.compile()
    model.fit({"images": images, "texts": captions}, batch_size=64)
    z_img = model.encode_images(images)  # L2-normalised
    z_txt = model.encode_texts(["a red circle", "un cercle rouge"])
    logits = model.similarity(images, ["a red circle", "a blue square"])
    ```
    """

    backbone_cls = ClippoBackbone
    preprocessor_cls = ClippoPreprocessor

    def __init__(
        self,
        backbone: ClippoBackbone,
        preprocessor: ClippoPreprocessor | None = None,
        loss: str = "softmax",
        temperature_init: float = 10.0,
        **kwargs,
    ):
        self.check_backbone(backbone)
        if preprocessor is None:
            preprocessor = ClippoPreprocessor(image_size=backbone.image_size)
        super().__init__(
            backbone,
            preprocessor=preprocessor,
            loss=loss,
            temperature_init=temperature_init,
            **kwargs,
        )

    @classmethod
    def from_preset(cls, preset: str, **kwargs):
        """Loads a preset: a local directory, a `kaggle://` or `hf://`
        handle, or the name of a released big_vision checkpoint (see
        `Clippo.presets`), which is downloaded and converted on first use.
        `image_size=` loads it at another resolution (see
        `FinitePresets.from_preset`).
        """
        if is_converted_preset(preset):
            preset = converted_preset_dir(preset)
        model = super().from_preset(preset, **kwargs)
        model.backbone.load_glyph_table(preset)
        return model

    def encode_images(self, images, preprocessed: bool = False, batch_size=64):
        """Embeds images.

        Args:
            images: `[B, H, W, 3]` raw pixels (uint8 or float in `[0, 255]`),
                resized and normalised by the preprocessor; or, with
                `preprocessed=True`, model-ready `[B, S, S, 3]` in `[-1, 1]`.
            preprocessed: Whether `images` are already model-ready.
            batch_size: Images per forward pass.

        Returns:
            numpy float32 `[B, out_dim]`, L2-normalised.
        """
        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(
                "`images` must be a batch of RGB images [B, H, W, 3]. "
                f"Received shape {images.shape}"
            )
        if images.shape[0] == 0:
            raise ValueError("`images` is empty.")
        if preprocessed:
            images = images.astype("float32")
        else:
            images = self._preprocess_images(images)
        return self._encode_in_batches(
            self.backbone.embed_images, images, batch_size
        )

    def encode_rendered_texts(self, text_images, batch_size=64):
        """Embeds texts that are already rendered, `[B, S, S, 3]` in
        `[-1, 1]` (the same path as `encode_images(..., preprocessed=True)`).
        """
        return self.encode_images(text_images, True, batch_size)

    def encode_texts(self, texts, batch_size=64):
        """Embeds strings, rendering them with the model's own renderer.

        Args:
            texts: A string or a list of strings (any script).
            batch_size: Texts per forward pass.

        Returns:
            numpy float32 `[B, out_dim]`, L2-normalised.
        """
        return self._encode_in_batches(
            self.backbone.embed_codepoints,
            self.text_codepoints(texts),
            batch_size,
        )

    def text_codepoints(self, texts) -> np.ndarray:
        """The code points `encode_texts` renders: int32
        `[B, sequence_length]`, cut to the preprocessor's length as in
        training and padded with -1 (which renders nothing), so every call
        has one shape.

        Args:
            texts: A string or a list of strings.
        """
        texts = list(text_batch(texts))
        if not texts:
            raise ValueError("`texts` is empty.")
        if not all(isinstance(t, str | bytes) for t in texts):
            raise TypeError("`texts` must be strings.")
        length = self.preprocessor.sequence_length
        raw = self.backbone.text_renderer.codepoints(texts)[:, :length]
        codepoints = np.full((len(raw), length), -1, np.int32)
        codepoints[:, : raw.shape[1]] = raw
        return codepoints

    def _preprocess_images(self, images):
        dummy_texts = [""] * len(images)
        inputs = self.preprocessor({"images": images, "texts": dummy_texts})
        return keras.ops.convert_to_numpy(inputs["images"])
