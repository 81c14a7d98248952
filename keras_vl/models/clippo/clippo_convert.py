"""big_vision CLIPPO checkpoints -> `Clippo`.

The checkpoints of `big_vision/models/proj/clippo/one_tower.py` are flat
npz files holding one ViT under `params/img/` and the log-temperature
`params/t`. The ViT itself is filled by the vit family's converter.
"""

import os
from typing import Any

from keras_vl.convert import big_vision
from keras_vl.layers.text_renderer import TextRenderer
from keras_vl.models.clippo.clippo import Clippo
from keras_vl.models.clippo.clippo_backbone import ClippoBackbone
from keras_vl.models.clippo.clippo_preprocessor import ClippoPreprocessor
from keras_vl.models.vit.vit_backbone import ViTBackbone
from keras_vl.models.vit.vit_convert import (
    assign_vit,
    checkpoint_image_size,
    vit_kwargs_from_big_vision,
)


def convert_clippo(
    checkpoint: str | os.PathLike,
    config: dict[str, Any],
    image_size: int | None = None,
    sequence_length: int = 768,
) -> Clippo:
    """Builds a `Clippo` task from a big_vision CLIPPO npz checkpoint.

    Args:
        checkpoint: Flat npz with `params/img/...` and `params/t` (extra
            `opt/` and `chrono/` entries of training checkpoints are
            skipped).
        config: big_vision `one_tower.Model` keyword arguments (`image`,
            `out_dim`, ...), optionally under `model_kwargs`.
        image_size: Resolution of images and rendered texts. Defaults to
            the config's `image_size`, else the size the checkpoint's
            position embedding implies (224 for the released models). Any
            other size resamples the position embedding (big_vision's
            high-res fine-tuning).
        sequence_length: Code points per text kept by the preprocessor.

    Returns:
        The `Clippo` task with every checkpoint parameter loaded.

    Example:

    >>> model = convert_clippo(  # doctest: +SKIP
    ...     "clippo_b16_yfcc100m.npz",
    ...     {"image": {"variant": "B/16"}, "out_dim": 768},
    ... )
    >>> model.save_to_preset("./clippo_b16")  # doctest: +SKIP
    """
    model_kwargs = big_vision.model_kwargs_of(config)
    if model_kwargs.get("image_model", "vit") != "vit":
        raise ValueError(
            "Only ViT CLIPPO models are supported. Received: "
            f"image_model={model_kwargs['image_model']!r}"
        )
    vit_config = {
        **model_kwargs.get("image", {}),
        "num_classes": model_kwargs.get("out_dim"),
    }
    vit_config.setdefault("pool_type", "map")
    vit_config["head_zeroinit"] = False
    vit_kwargs = vit_kwargs_from_big_vision(vit_config, None)
    reader = big_vision.open_checkpoint(checkpoint)
    image_size = checkpoint_image_size(
        reader,
        "params/img/pos_embedding",
        vit_kwargs.get("patch_size", 16),
        image_size or config.get("image_size"),
    )
    if not isinstance(image_size, int):
        raise ValueError(
            "CLIPPO renders square text images, so `image_size` must be "
            f"one int. Received: image_size={image_size!r}"
        )
    vit = ViTBackbone(**{**vit_kwargs, "image_size": image_size})
    backbone = ClippoBackbone(vit, TextRenderer(image_size=image_size))
    model = Clippo(
        backbone,
        # The released models saw images resized by big_vision's op.
        ClippoPreprocessor(
            image_size, sequence_length=sequence_length, resize="big_vision"
        ),
        temperature_init=float(model_kwargs.get("temperature_init", 10.0)),
    )
    assign_vit(reader, vit, "params/img/")
    reader.assign(model.log_temperature, "params/t")
    reader.finish()
    return model


def convert_clippo_preset(checkpoint: str, entry: dict[str, Any]) -> Clippo:
    """Converts a downloaded checkpoint of a registered CLIPPO preset.

    Args:
        checkpoint: Path of the downloaded npz.
        entry: The preset's entry in `clippo_presets.backbone_presets`;
            its `config` holds the big_vision keyword arguments.

    Returns:
        The converted task, ready for `save_to_preset`.
    """
    return convert_clippo(checkpoint, entry["config"])
