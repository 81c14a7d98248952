"""The ViT family: `ViTBackbone`, its registered presets and converters."""

from keras_hub.src.utils.preset_utils import register_presets

from keras_vl.models.vit.vit_backbone import ViTBackbone
from keras_vl.models.vit.vit_presets import backbone_presets

register_presets(backbone_presets, ViTBackbone)
