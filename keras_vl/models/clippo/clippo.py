"""CLIPPO: image-and-language understanding from pixels only.

Tschannen, Mustafa, Houlsby, CVPR 2023. One ViT reads images and text
rendered as images; trained with the contrastive loss alone.
"""

import keras
import numpy as np

from keras_vl.models.clippo.clippo_backbone import (
    ClippoBackbone,
    pixels_to_unit_range,
)
from keras_vl.models.clippo.clippo_preprocessor import ClippoPreprocessor
from keras_vl.models.contrastive import ContrastiveModel
from keras_vl.models.preprocessing import text_batch
from keras_vl.utils.converted_presets import (
    converted_preset_dir,
    is_converted_preset,
)

#: Batches of at most this many texts are rendered on the host by
#: `Clippo.encode_texts`: quicker than compiling a render program for them,
#: and not much slower than one once compiled (about 1 ms at 8 texts).
HOST_RENDER_ROWS = 16


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

    # `encode_images`, `encode_texts` and `similarity` come from
    # `ContrastiveModel`. Texts are rendered, then embedded by the same
    # compiled program as images. A few texts render on the host in numpy
    # (the same pixels, nothing to compile), so a first call compiles the
    # image program alone; larger batches render with the renderer's own
    # compiled program, which every CLIPPO with the same renderer settings
    # shares and which is faster once compiled.

    def _embed_text_batch(self, codepoints: np.ndarray) -> np.ndarray:
        renderer = self.backbone.text_renderer
        if len(codepoints) <= HOST_RENDER_ROWS:
            rendered = renderer.render_numpy(codepoints)
        else:
            rendered = keras.ops.convert_to_numpy(renderer(codepoints))
        return self._embed_image_batch(pixels_to_unit_range(rendered))

    def encode_rendered_texts(
        self, images, preprocessed: bool = False, batch_size: int = 64
    ) -> np.ndarray:
        """Embeds texts that are already rendered as images.

        Rendered text is an image to CLIPPO: this is `encode_images`, and
        takes the same inputs (raw pixels by default, e.g. the uint8
        output of the model's `TextRenderer`).

        Args:
            images: Rendered texts as `encode_images` takes them.
            preprocessed: Whether `images` are already model-ready, in
                `[-1, 1]`.
            batch_size: Images per forward pass.

        Returns:
            numpy float32 `[B, out_dim]`, L2-normalised.

        Example:

        ```python
        renderer = model.backbone.text_renderer
        rendered = renderer(renderer.codepoints(["a red circle"]))  # uint8
        z = model.encode_rendered_texts(rendered)
        # == model.encode_texts(["a red circle"])
        ```
        """
        return self.encode_images(images, preprocessed, batch_size)

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

    def _model_texts(self, texts) -> np.ndarray:
        return self.text_codepoints(texts)

    def _preprocess_pixels(self, pixels: np.ndarray) -> np.ndarray:
        # The preprocessor pairs images with texts; these ones are unused.
        dummy_texts = [""] * len(pixels)
        inputs = self.preprocessor({"images": pixels, "texts": dummy_texts})
        return keras.ops.convert_to_numpy(inputs["images"])
