"""The PaLI family: `PaLI`, its backbone, language model, preprocessor and
(an empty registry of) presets."""

from keras_hub.src.utils.preset_utils import register_presets

from keras_vl.models.pali.pali_backbone import PaLIBackbone
from keras_vl.models.pali.pali_presets import backbone_presets

register_presets(backbone_presets, PaLIBackbone)
