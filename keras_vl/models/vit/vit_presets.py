"""Named ViT presets.

None yet: plain big_vision ViT checkpoints are converted with
`tools/convert_big_vision.py --model vit` and loaded from the preset
directory it writes.
"""

backbone_presets: dict[str, dict] = {}
