"""Named LiT presets.

None yet: LiT and SigLIP checkpoints are converted with
`tools/convert_big_vision.py` or `tools/convert_transformers.py` and loaded
from the preset directory those write.
"""

backbone_presets: dict[str, dict] = {}
