"""The LiT family: `LiT`, its backbone, preprocessor and presets."""

from keras_hub.src.utils.preset_utils import register_presets

from keras_vl.models.lit.lit_backbone import LiTBackbone
from keras_vl.models.lit.lit_presets import backbone_presets

register_presets(backbone_presets, LiTBackbone)
