"""The LiT family: `LiT`, its backbone, preprocessor and presets.

The released LiT and SigLIP checkpoints are registered with keras-hub, so
`LiT.presets` and `LiTBackbone.presets` list them, and with
`keras_vl.utils.converted_presets`, so that `from_preset(name)` downloads
and converts them on first use.
"""

from keras_hub.src.utils.preset_utils import register_presets

from keras_vl.models.lit.lit_backbone import LiTBackbone
from keras_vl.models.lit.lit_presets import backbone_presets
from keras_vl.models.lit.lit_vision_transformer_convert import (
    convert_lit_preset,
)
from keras_vl.utils.converted_presets import register_converted_presets

register_presets(backbone_presets, LiTBackbone)
register_converted_presets(backbone_presets, convert_lit_preset)
