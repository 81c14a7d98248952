"""Named PaLI presets.

None: PaLI's weights were never released. Build a model with
`PaLI.from_parts` from a keras_vl vision preset and an mT5 converted with
`tools/convert_transformers.py --model mt5`.
"""

backbone_presets: dict[str, dict] = {}
