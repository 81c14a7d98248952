"""CLIPPO: one ViT for images and for text rendered as images."""

import os

import keras
import numpy as np
from keras import ops
from keras_hub.models import Backbone
from keras_hub.src.utils.preset_utils import check_file_exists, get_file

from keras_vl.layers.text_renderer import TextRenderer
from keras_vl.models.finite_presets import FinitePresets, saving_preset
from keras_vl.models.parallel_layouts import ParallelLayouts
from keras_vl.models.vit.vit_backbone import ViTBackbone
from keras_vl.ops import l2_normalize
from keras_vl.utils.converted_presets import (
    converted_preset_dir,
    is_converted_preset,
)


def pixels_to_unit_range(images):
    """uint8-range values `v` -> `v / 255 * 2 - 1` (big_vision value_range).

    numpy arrays stay numpy: no backend op (and no compilation) on the host.
    """
    if isinstance(images, np.ndarray):
        return images.astype("float32") * np.float32(2.0 / 255.0) - 1.0
    return ops.cast(images, "float32") * (2.0 / 255.0) - 1.0


# Where a preset keeps the font its model was trained with.
GLYPH_TABLE_ASSET = "assets/text_renderer/glyph_table.npz"


@keras.saving.register_keras_serializable(package="keras_vl")
class ClippoBackbone(FinitePresets, ParallelLayouts, Backbone):
    """CLIPPO's one-tower model (big_vision `proj/clippo/one_tower.py`).

    A single ViT with a MAP head and an `out_dim` linear head embeds both
    images and texts; texts are first rendered as images by a
    `TextRenderer` *inside the model*, so rendering runs on the accelerator
    and is compiled with the rest. Embeddings are L2-normalised as
    `z / (||z|| + 1e-8)`.

    Inputs (a dict):
        images: float `[B, S, S, 3]` in `[-1, 1]`.
        texts: int32 code points `[B, L]`, `-1`-padded (from a
            `ClippoPreprocessor` or `TextRenderer.codepoints`).
        image_texts: int32 code points `[B, L']`; rows holding any code
            point replace that example's image by the rendered text, which
            is how text-text pairs (next-sentence prediction) and mixed
            batches train. All `-1` for ordinary image-text pairs.

    Outputs (a dict): `image_embeddings`, `text_embeddings`, `[B, out_dim]`
    in the compute dtype (float32 unless a mixed-precision `dtype` is set).

    Args:
        vision_encoder: The `ViTBackbone` shared by both modalities (or its
            config dict). CLIPPO uses `pool_type="map"`, `num_classes =
            out_dim` and `head_zeroinit=False`.
        text_renderer: The `TextRenderer` (or its config dict); its
            `image_size` must equal the ViT's.
        dtype: Dtype policy of the layers, e.g. `"mixed_bfloat16"`.
        **kwargs: Standard `keras_hub.models.Backbone` arguments.

    Example:

    ```python
    backbone = keras_vl.models.ClippoBackbone.from_variant(
        "B/16", image_size=224, out_dim=768
    )
    ```
    """

    # Weight layouts of `get_layout_map` (see `parallel_layouts`): its ViT's.
    layout_rules = ViTBackbone.layout_rules

    def __init__(
        self,
        vision_encoder: ViTBackbone,
        text_renderer: TextRenderer | None = None,
        dtype=None,
        **kwargs,
    ):
        if isinstance(vision_encoder, dict):
            vision_encoder = keras.layers.deserialize(vision_encoder)
        if not isinstance(vision_encoder, ViTBackbone):
            raise TypeError(
                "`vision_encoder` must be a keras_vl ViTBackbone. Received: "
                f"{type(vision_encoder).__name__}"
            )
        if vision_encoder.pool_type == "none":
            raise ValueError(
                "`vision_encoder` must pool its tokens (CLIPPO uses "
                "pool_type='map'). Received: pool_type='none'"
            )
        height, width = vision_encoder.image_size
        if height != width:
            raise ValueError(
                "CLIPPO renders square text images, so the ViT input must be "
                f"square. Received: image_size={vision_encoder.image_size}"
            )
        if text_renderer is None:
            text_renderer = TextRenderer(image_size=height)
        elif isinstance(text_renderer, dict):
            text_renderer = keras.layers.deserialize(text_renderer)
        if text_renderer.image_size != height:
            raise ValueError(
                f"`text_renderer.image_size` ({text_renderer.image_size}) "
                f"must equal the ViT's image size ({height})."
            )

        # === Layers ===
        self.vision_encoder = vision_encoder
        self.text_renderer = text_renderer

        # === Functional Model ===
        channels = vision_encoder.num_channels
        inputs = {
            "images": keras.Input(
                shape=(height, height, channels), name="images"
            ),
            "texts": keras.Input(shape=(None,), dtype="int32", name="texts"),
            "image_texts": keras.Input(
                shape=(None,), dtype="int32", name="image_texts"
            ),
        }
        images = self._images_or_rendered(
            inputs["images"], inputs["image_texts"]
        )
        texts = self.render(inputs["texts"])
        # The same ViT weights embed both modalities.
        outputs = {
            "image_embeddings": l2_normalize(vision_encoder(images)),
            "text_embeddings": l2_normalize(vision_encoder(texts)),
        }
        super().__init__(inputs=inputs, outputs=outputs, dtype=dtype, **kwargs)

    def render(self, codepoints):
        """Code points `[B, L]` -> model-ready text images in `[-1, 1]`."""
        return pixels_to_unit_range(self.text_renderer(codepoints))

    def _images_or_rendered(self, images, image_texts):
        has_text = ops.any(ops.greater_equal(image_texts, 0), axis=1)
        rendered = self.render(image_texts)
        images = ops.cast(images, rendered.dtype)
        return ops.where(has_text[:, None, None, None], rendered, images)

    def embed_images(self, images):
        """Model-ready images `[B, S, S, 3]` in `[-1, 1]` -> embeddings."""
        return l2_normalize(self.vision_encoder(images))

    def embed_codepoints(self, codepoints):
        """Text code points `[B, L]` -> embeddings."""
        return l2_normalize(self.vision_encoder(self.render(codepoints)))

    @property
    def image_size(self) -> int:
        return self.vision_encoder.image_size[0]

    @property
    def out_dim(self) -> int:
        return self.vision_encoder.output_dim

    def save_to_preset(
        self, preset_dir, max_shard_size=10, allow_non_finite: bool = False
    ):
        """Saves config and weights, plus the renderer's glyph table as an
        asset, so the preset renders text exactly as it was trained.
        Non-finite weights raise a ValueError unless `allow_non_finite`."""
        super().save_to_preset(
            preset_dir,
            max_shard_size=max_shard_size,
            allow_non_finite=allow_non_finite,
        )
        asset_dir = os.path.join(preset_dir, os.path.dirname(GLYPH_TABLE_ASSET))
        os.makedirs(asset_dir, exist_ok=True)
        self.text_renderer.save_assets(asset_dir)

    @classmethod
    def from_preset(cls, preset, load_weights=True, **kwargs):
        """Loads a preset: a local directory, a `kaggle://` or `hf://`
        handle, or a name in `ClippoBackbone.presets`, which is downloaded
        and converted on first use. `image_size=` loads it at another
        resolution (see `FinitePresets.from_preset`)."""
        if is_converted_preset(preset):
            preset = converted_preset_dir(preset)
        backbone = super().from_preset(preset, load_weights, **kwargs)
        backbone.load_glyph_table(preset)
        return backbone

    def load_glyph_table(self, preset) -> None:
        """Loads the glyph table stored in `preset`, if it has one."""
        if check_file_exists(preset, GLYPH_TABLE_ASSET):
            path = get_file(preset, GLYPH_TABLE_ASSET)
            self.text_renderer.load_assets(os.path.dirname(path))

    @classmethod
    def from_variant(
        cls,
        variant: str = "B/16",
        image_size: int = 224,
        out_dim: int = 768,
        renderer_config: dict | None = None,
        dtype=None,
        **vit_kwargs,
    ) -> "ClippoBackbone":
        """Builds CLIPPO on a named ViT size (big_vision's recipe).

        Args:
            variant: ViT size, e.g. `"B/16"` (the released models).
            image_size: Resolution of images and rendered texts.
            out_dim: Embedding width (the ViT head).
            renderer_config: Extra `TextRenderer` arguments.
            dtype: Dtype policy.
            **vit_kwargs: Extra `ViTBackbone` arguments.
        """
        vit = ViTBackbone.from_variant(
            variant,
            image_size=image_size,
            **{
                "pool_type": "map",
                "num_classes": out_dim,
                "head_zeroinit": False,
                **vit_kwargs,
            },
            dtype=dtype,
        )
        renderer = TextRenderer(
            image_size=image_size, **(renderer_config or {})
        )
        return cls(vit, renderer, dtype=dtype)

    def get_config(self):
        config = super().get_config()
        renderer = keras.layers.serialize(self.text_renderer)
        if saving_preset():
            # The table travels as the preset's asset; a path on this
            # machine would only be refused when the preset is loaded.
            renderer["config"]["glyph_table"] = None
        config.update(
            {
                "vision_encoder": keras.layers.serialize(self.vision_encoder),
                "text_renderer": renderer,
            }
        )
        return config
