"""The demo's figure: test images against their rendered captions."""

from __future__ import annotations

from typing import Any

import keras
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from keras_vl.data import ShapesDataset
from keras_vl.models import Clippo

# Viridis-like anchors for the similarity heat map, dark to bright.
_COLORMAP = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
    np.float32,
)


def save_similarity_figure(
    model: Clippo,
    dataset: ShapesDataset,
    path: str,
    count: int = 6,
    seed: int = 0,
) -> np.ndarray:
    """Draws test images, their rendered captions and the similarities.

    Row `i` is image `i`; column `j` is caption `j`, shown as the model sees
    it (rendered by `backbone.text_renderer`). Cells hold the cosine
    similarity; a correct model has the brightest cell of each row on the
    diagonal. Held-out combinations are framed in red.

    Args:
        model: A trained `Clippo`.
        dataset: The `ShapesDataset`.
        path: Where to write the PNG.
        count: Number of image-caption pairs.
        seed: Seed of the test images.

    Returns:
        The cosine similarities `[count, count]`.

    Example:

    ```python
    similarity = save_similarity_figure(model, dataset, "similarity.png")
    ```
    """
    examples = _pick_examples(dataset, count, seed)
    similarity = (
        model.encode_images(examples["images"])
        @ model.encode_texts(examples["captions"]).T
    )
    # Cut as in training, so the figure shows exactly what the model reads.
    rendered = keras.ops.convert_to_numpy(
        model.backbone.text_renderer(
            model.text_codepoints(examples["captions"])
        )
    )
    count = len(examples["captions"])
    cell, scale, margin, title = 128, 2, 8, 28
    side = cell * (count + 1)
    canvas = Image.new("RGB", (side + margin, side + title), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=14)
    draw.text(
        (margin, 6),
        "rows: test images, columns: their captions rendered as images; "
        "cells: cosine similarity (red frame: held-out combination)",
        fill=(0, 0, 0),
        font=font,
    )

    def paste(array: np.ndarray, x: int, y: int, framed: bool) -> None:
        tile = Image.fromarray(array).resize(
            (array.shape[1] * scale, array.shape[0] * scale), Image.NEAREST
        )
        canvas.paste(tile, (x, y))
        if framed:
            draw.rectangle(
                (x, y, x + tile.width - 1, y + tile.height - 1),
                outline=(220, 0, 0),
                width=3,
            )

    low, high = float(similarity.min()), float(similarity.max())
    colors = _colormap((similarity - low) / max(high - low, 1e-6))
    for i in range(count):
        framed = examples["held_out"][i]
        paste(examples["images"][i], 0, title + cell * (i + 1), framed)
        paste(rendered[i], cell * (i + 1), title, framed)
        for j in range(count):
            x, y = cell * (j + 1), title + cell * (i + 1)
            color = tuple(int(c) for c in colors[i, j])
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=color)
            bright = sum(color) > 380
            draw.text(
                (x + cell // 2, y + cell // 2),
                f"{similarity[i, j]:.2f}",
                fill=(0, 0, 0) if bright else (255, 255, 255),
                font=font,
                anchor="mm",
            )
    canvas.save(path)
    return similarity


def _colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB, by linear interpolation."""
    position = np.clip(values, 0.0, 1.0) * (len(_COLORMAP) - 1)
    low = np.minimum(np.floor(position).astype(int), len(_COLORMAP) - 2)
    frac = (position - low)[..., None]
    rgb = _COLORMAP[low] * (1.0 - frac) + _COLORMAP[low + 1] * frac
    return rgb.astype(np.uint8)


def _pick_examples(
    dataset: ShapesDataset, count: int, seed: int
) -> dict[str, Any]:
    """Fresh test images of `count` different classes, half held out."""
    pool = dataset.sample(64 * count, split="all", seed=40_000 + seed)
    held = [dataset.classes.index(pair) for pair in dataset.held_out_classes]
    seen = [i for i in range(len(dataset.classes)) if i not in held]
    held = held[: count // 2]
    # Seen classes spread over the class list, so colours vary.
    stride = max(len(seen) // max(count - len(held), 1), 1)
    labels = held + seen[::stride][: count - len(held)]
    picked = []
    for label in labels:
        matches = np.flatnonzero(pool["labels"] == label)
        if len(matches):
            picked.append(int(matches[0]))
    return {
        "images": pool["images"][picked],
        "captions": [pool["captions"][i] for i in picked],
        "held_out": [int(pool["labels"][i]) in held for i in picked],
    }
