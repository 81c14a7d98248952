"""The released big_vision CLIPPO checkpoints, converted on first use.

`Clippo.from_preset("clippo_b16_yfcc100m")` downloads the checkpoint (about
370 MB) over HTTPS into the keras_vl cache, converts it once into a keras_vl
preset next to it, and loads that preset from then on.
"""

import os
import shutil
import tempfile
from pathlib import Path

from keras_vl.utils.download import default_cache_dir, download_file

# Every released model is a B/16 at 224 px with a 768-wide embedding,
# trained with big_vision's `configs/proj/clippo/train_clippo.py`.
CLIPPO_B16_CONFIG = {
    "image_model": "vit",
    "image": {"variant": "B/16", "pool_type": "map", "head_zeroinit": False},
    "out_dim": 768,
    "temperature_init": 10.0,
    "image_size": 224,
}

_BUCKET = "gs://big_vision/clippo/"

CLIPPO_PRESETS = {
    "clippo_b16_yfcc100m": {
        "description": "CLIPPO B/16 trained on YFCC-100M.",
        "url": _BUCKET + "clippo_b16_yfcc100m.npz",
    },
    "clippo_b16_yfcc100m_i21k_init": {
        "description": "CLIPPO B/16 on YFCC-100M, initialised from "
        "ImageNet-21k.",
        "url": _BUCKET + "clippo_b16_yfcc100m_i21k_init.npz",
    },
    "clippo_b16_yfcc100m_i21k_init_25c4": {
        "description": "As `clippo_b16_yfcc100m_i21k_init`, with 25% of the "
        "batches next-sentence pairs from C4.",
        "url": _BUCKET + "clippo_b16_yfcc100m_i21k_init_25c4.npz",
    },
    "clippo_b16_yfcc100m_i21k_init_50c4": {
        "description": "As `clippo_b16_yfcc100m_i21k_init`, with 50% C4 "
        "next-sentence pairs.",
        "url": _BUCKET + "clippo_b16_yfcc100m_i21k_init_50c4.npz",
    },
    "clippo_b16_yfcc100m_i21k_init_75c4": {
        "description": "As `clippo_b16_yfcc100m_i21k_init`, with 75% C4 "
        "next-sentence pairs.",
        "url": _BUCKET + "clippo_b16_yfcc100m_i21k_init_75c4.npz",
    },
    "clippo_b16_100c4": {
        "description": "CLIPPO B/16 trained on C4 next-sentence pairs only.",
        "url": _BUCKET + "clippo_b16_100c4.npz",
    },
}


def converted_preset_dir(name: str, cache_dir=None) -> str:
    """Returns a local keras_vl preset for a released checkpoint `name`.

    The first call downloads and converts; later calls only look up the
    cache. A failed download or conversion leaves no cache entry behind.

    Args:
        name: A key of `CLIPPO_PRESETS`.
        cache_dir: Cache root; defaults to `$KERAS_VL_CACHE` or
            `~/.cache/keras_vl`.
    """
    from keras_vl.convert.big_vision import convert_clippo

    if name not in CLIPPO_PRESETS:
        raise ValueError(
            f"Unknown CLIPPO preset {name!r}. Known: {sorted(CLIPPO_PRESETS)}"
        )
    entry = CLIPPO_PRESETS[name]
    root = Path(cache_dir) if cache_dir else default_cache_dir()
    preset_dir = root / "presets" / name
    if (preset_dir / "config.json").exists():
        return str(preset_dir)
    checkpoint = download_file(entry["url"], cache_dir=root / "checkpoints")
    model = convert_clippo(checkpoint, entry.get("config", CLIPPO_B16_CONFIG))
    preset_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{name}-", dir=preset_dir.parent)
    try:
        model.save_to_preset(staging)
        os.replace(staging, preset_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return str(preset_dir)
