"""The LIMoE family: `LIMoE`, its backbone, sparse MLP, preprocessor and
(an empty registry of) presets."""

from keras_hub.src.utils.preset_utils import register_presets

from keras_vl.models.limoe.limoe_backbone import LIMoEBackbone
from keras_vl.models.limoe.limoe_presets import backbone_presets

register_presets(backbone_presets, LIMoEBackbone)
