"""LIMoE presets.

No LIMoE checkpoint was ever released, so the registry is empty; models
trained with keras_vl are shared as preset directories (or `kaggle://`,
`hf://` handles) through `save_to_preset` / `from_preset`.
"""

backbone_presets: dict = {}
