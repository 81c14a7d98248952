"""The released big_vision CLIPPO checkpoints.

Each entry names a flat npz in the `gs://big_vision/clippo/` bucket and the
big_vision config that converts it; `Clippo.from_preset(name)` downloads
the checkpoint, converts it once into a keras_vl preset and loads that
cached preset from then on.
"""

# Every released model is a B/16 at 224 px with a 768-wide embedding,
# trained with big_vision's `configs/proj/clippo/train_clippo.py`.
CLIPPO_B16_CONFIG = {
    "image_model": "vit",
    "image": {"variant": "B/16", "pool_type": "map", "head_zeroinit": False},
    "out_dim": 768,
    "temperature_init": 10.0,
    "image_size": 224,
}

# `ClippoBackbone.count_params()` of that config.
_B16_PARAMS = 93_474_816

_BUCKET = "gs://big_vision/clippo/"


def _entry(name: str, description: str) -> dict:
    return {
        "metadata": {
            "description": description,
            "params": _B16_PARAMS,
            "path": "clippo",
        },
        "url": f"{_BUCKET}{name}.npz",
        "config": CLIPPO_B16_CONFIG,
    }


backbone_presets = {
    "clippo_b16_yfcc100m": _entry(
        "clippo_b16_yfcc100m",
        "CLIPPO B/16 trained on YFCC-100M.",
    ),
    "clippo_b16_yfcc100m_i21k_init": _entry(
        "clippo_b16_yfcc100m_i21k_init",
        "CLIPPO B/16 on YFCC-100M, initialised from ImageNet-21k.",
    ),
    "clippo_b16_yfcc100m_i21k_init_25c4": _entry(
        "clippo_b16_yfcc100m_i21k_init_25c4",
        "As `clippo_b16_yfcc100m_i21k_init`, with 25% of the batches "
        "next-sentence pairs from C4.",
    ),
    "clippo_b16_yfcc100m_i21k_init_50c4": _entry(
        "clippo_b16_yfcc100m_i21k_init_50c4",
        "As `clippo_b16_yfcc100m_i21k_init`, with 50% C4 next-sentence pairs.",
    ),
    "clippo_b16_yfcc100m_i21k_init_75c4": _entry(
        "clippo_b16_yfcc100m_i21k_init_75c4",
        "As `clippo_b16_yfcc100m_i21k_init`, with 75% C4 next-sentence pairs.",
    ),
    "clippo_b16_100c4": _entry(
        "clippo_b16_100c4",
        "CLIPPO B/16 trained on C4 next-sentence pairs only.",
    ),
}
