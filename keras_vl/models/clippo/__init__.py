"""The CLIPPO family: `Clippo`, its backbone, preprocessor and presets.

The released checkpoints are registered twice: with keras-hub, so that
`Clippo.presets` and `ClippoBackbone.presets` list them, and with
`keras_vl.utils.converted_presets`, so that `from_preset(name)` downloads
and converts them on first use.
"""

from keras_hub.src.utils.preset_utils import register_presets

from keras_vl.models.clippo.clippo_backbone import ClippoBackbone
from keras_vl.models.clippo.clippo_convert import convert_clippo_preset
from keras_vl.models.clippo.clippo_presets import backbone_presets
from keras_vl.utils.converted_presets import register_converted_presets

register_presets(backbone_presets, ClippoBackbone)
register_converted_presets(backbone_presets, convert_clippo_preset)
