"""The `make demo` job: render captions, encode them with a ViT, save a PNG.

The demo runs on the embedded default data and needs no download.
"""

import os

import numpy as np

CAPTIONS = (
    "a red circle on a plain background",
    "Two dogs playing in the SNOW!",
    "café 東京 ☺ — Ελληνικά, русский, עברית",
    "keras_vl renders text with GNU Unifont, pixel for pixel.",
)


def run_demo(output_dir: str = "demo_output", quick: bool = False, seed=0):
    """Renders `CAPTIONS`, runs a ViT-mu/16 on them and writes a PNG.

    Args:
        output_dir: Folder for `rendered_captions.png`.
        quick: Unused here; kept so `keras-vl demo --quick` always works.
        seed: Seed of the randomly initialised ViT.
    """
    import keras
    from PIL import Image

    from keras_vl.models import ViTBackbone
    from keras_vl.utils import render_text

    del quick
    os.makedirs(output_dir, exist_ok=True)
    rendered = render_text(list(CAPTIONS), image_size=224)
    print(f"Rendered {len(CAPTIONS)} captions -> {rendered.shape} uint8")

    keras.utils.set_random_seed(seed)
    vit = ViTBackbone.from_variant(
        "mu/16",
        image_size=224,
        pool_type="map",
        num_classes=32,
        head_zeroinit=False,
    )
    pixels = rendered.astype("float32") / 127.5 - 1.0
    embeddings = keras.ops.convert_to_numpy(vit(pixels))
    embeddings /= np.linalg.norm(embeddings, axis=-1, keepdims=True) + 1e-8
    print(
        f"ViT-mu/16 ({vit.count_params():,} params) embeddings:",
        embeddings.shape,
    )
    print("cosine similarities (random weights):")
    print(np.array2string(embeddings @ embeddings.T, precision=3))

    sheet = np.concatenate(list(rendered), axis=1)
    path = os.path.join(output_dir, "rendered_captions.png")
    Image.fromarray(sheet).save(path)
    print(f"Wrote {path}")
