"""`keras-vl zero-shot`: classify image files with a contrastive preset.

The command line itself (options, label parsing) is in `keras_vl.cli`;
this module loads the preset, scores the images and formats the answer.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import keras
import numpy as np
from PIL import Image, UnidentifiedImageError

from keras_vl.evaluation.zero_shot import ZeroShotClassifier
from keras_vl.models import ContrastiveModel
from keras_vl.utils.converted_presets import converted_preset_dir


def load_contrastive_model(preset: str) -> ContrastiveModel:
    """Loads the CLIPPO, LiT or LIMoE task that `preset` holds.

    The task class comes from the preset's config (keras-hub picks the
    `ContrastiveModel` subclass that fits the saved backbone class).

    Args:
        preset: a registered preset name or a local preset directory.

    Raises:
        FileNotFoundError: if `preset` looks like a path but is none.
        ValueError: if `preset` is an unknown name, or holds another kind
            of model.

    Example:

    >>> model = load_contrastive_model("./clippo_preset")  # doctest: +SKIP
    """
    if not os.path.isdir(preset) and "://" not in preset:
        if os.sep in preset or preset.startswith("."):
            raise FileNotFoundError(
                f"Preset directory {preset!r} does not exist."
            )
        # A registered name: downloaded and converted on first use; an
        # unknown one raises a ValueError listing the known names.
        preset = converted_preset_dir(preset)
    try:
        return ContrastiveModel.from_preset(preset)
    except ValueError as error:
        # keras-hub's message for a preset of another model family.
        if "Unable to find a subclass" not in str(error):
            raise
        raise ValueError(
            f"Preset {preset!r} holds no contrastive image-text model "
            "(CLIPPO, LiT, SigLIP or LIMoE), so it cannot classify zero-shot."
        ) from error


def read_image(path: str) -> np.ndarray:
    """The RGB pixels of an image file, uint8 `[H, W, 3]`.

    Example:

    >>> read_image("cat.png").shape  # doctest: +SKIP
    (480, 640, 3)
    """
    try:
        with Image.open(path) as image:
            return np.asarray(image.convert("RGB"))
    except UnidentifiedImageError as error:
        raise ValueError(
            f"{path!r} is not an image file Pillow can read."
        ) from error


def classify_image_files(
    preset: str,
    labels: Sequence[str],
    image_paths: Sequence[str],
    template: str = "a photo of a {}.",
    top_k: int = 5,
) -> dict[str, Any]:
    """Ranks `labels` for each image file by the preset's model.

    Each label becomes the prompt `template.format(label)`. The model's
    scaled logits `exp(t) * cos + b` turn into probabilities as the model
    was trained: a softmax over the labels for softmax-loss models (CLIPPO,
    LiT, CLIP), so they sum to 1; an independent sigmoid per label for
    sigmoid-loss models (SigLIP), as SigLIP's own demo shows them.

    Args:
        preset: a registered preset name or a local preset directory.
        labels: the candidate labels.
        image_paths: image files (any format and size Pillow reads).
        template: prompt format string with one `{}` for the label.
        top_k: how many labels to keep per image (at most all of them).

    Returns:
        A JSON-ready dict: `preset`, `model` (the task class), `probability`
        (`"softmax"` or `"sigmoid"`), `template`, `labels`, and `results`,
        one `{"image": path, "predictions": [{"label", "probability"}]}` per
        image with the predictions ranked best first.

    Example:

    >>> report = classify_image_files(  # doctest: +SKIP
    ...     "./clippo_preset", ["cat", "dog"], ["cat.png"]
    ... )
    >>> report["results"][0]["predictions"][0]["label"]  # doctest: +SKIP
    'cat'
    """
    if not isinstance(top_k, int) or top_k < 1:
        raise ValueError(f"`top_k` must be an int >= 1, got {top_k!r}.")
    images = [read_image(path) for path in image_paths]
    model = load_contrastive_model(preset)
    classifier = ZeroShotClassifier(model, labels, templates=[template])
    scale = _scalar(model.logit_scale)
    bias = 0.0 if model.logit_bias is None else _scalar(model.logit_bias)
    sigmoid = model.loss_type == "sigmoid"
    results = []
    for path, image in zip(image_paths, images, strict=True):
        # One image at a time: files differ in size, the model resizes.
        logits = scale * classifier.logits(image[None])[0] + bias
        probabilities = _sigmoid(logits) if sigmoid else _softmax(logits)
        ranked = np.argsort(-probabilities, kind="stable")[:top_k]
        predictions = [
            {"label": labels[i], "probability": float(probabilities[i])}
            for i in ranked
        ]
        results.append({"image": path, "predictions": predictions})
    return {
        "preset": preset,
        "model": type(model).__name__,
        "probability": "sigmoid" if sigmoid else "softmax",
        "template": template,
        "labels": list(labels),
        "results": results,
    }


def format_report(report: dict[str, Any], as_json: bool = False) -> str:
    """The text `keras-vl zero-shot` prints for `classify_image_files`'s
    report: one JSON object, or a header and a ranked list per image.

    Example:

    >>> print(format_report(report))  # doctest: +SKIP
    Clippo preset './clippo_preset': softmax over 2 labels (sums to 1)
    cat.png
      0.9731  cat
      0.0269  dog
    """
    if as_json:
        return json.dumps(report, indent=2, ensure_ascii=False)
    how = (
        "sigmoid per label (SigLIP; independent, need not sum to 1)"
        if report["probability"] == "sigmoid"
        else "softmax over the labels (sums to 1)"
    )
    lines = [
        f"{report['model']} preset {report['preset']!r}, "
        f"{len(report['labels'])} labels, prompt {report['template']!r}: "
        f"{how}"
    ]
    for result in report["results"]:
        lines.append(result["image"])
        lines += [
            f"  {p['probability']:.4f}  {p['label']}"
            for p in result["predictions"]
        ]
    return "\n".join(lines)


def _scalar(x: Any) -> float:
    # The temperature and bias variables have shape (1,).
    return float(np.reshape(keras.ops.convert_to_numpy(x), ()))


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max())
    return shifted / shifted.sum()


def _sigmoid(logits: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-logits))
