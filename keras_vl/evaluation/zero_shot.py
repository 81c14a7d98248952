"""Zero-shot image classification with any contrastive image-text model."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import keras
import numpy as np


class ZeroShotClassifier:
    """Classifies images by similarity to embedded class descriptions.

    Works with any model of the library that offers
    `encode_images(images) -> [N, D]` and `encode_texts(texts) -> [N, D]`
    returning L2-normalised embeddings (CLIPPO, LiT, LIMoE), on every backend.
    As in CLIP, each class is embedded once from every prompt template
    (``template.format(class_name)``); a class's embeddings are averaged over
    the templates and re-normalised, and an image is scored by its cosine
    similarity (dot product) to each class embedding. Images can be given
    as pixels or as the embeddings `encode_images` already returned
    (`image_embeddings=`, `logits_from_embeddings`), so an evaluation loop
    encodes each image once.

    A class can instead be described by its own prompts (`class_prompts`),
    e.g. one per attribute: "a red shape" and "a circle" for a red circle.
    Their average points at images having every attribute, even when no
    caption ever named the combination, which makes zero-shot
    classification of unseen attribute combinations far more reliable.

    Args:
        model: the contrastive model, with `encode_images` and `encode_texts`.
        class_names: the names of the classes, in label order (label `i` is
            `class_names[i]`).
        templates: prompt format strings, each with one ``{}`` for the class
            name, e.g. ``("a photo of a {}.", "a {}.")``.
        class_prompts: optional prompts of each class, in label order (a
            list of non-empty lists of strings), used instead of
            `templates`; classes may have different numbers of prompts.
        batch_size: int. Images and prompts are encoded this many at a time.

    Example:

    ```python
    from keras_vl.data import ShapesDataset
    from keras_vl.evaluation import ZeroShotClassifier

    ds = ShapesDataset()
    classifier = ZeroShotClassifier(
        model, ds.class_names, templates=ds.prompt_templates
    )
    test = ds.sample(1000, split="held_out", seed=1)
    classifier.evaluate(test["images"], test["labels"])
    # {"top1": 0.93, "top5": 1.0}

    # Images encoded once, scored by several classifiers.
    z = model.encode_images(test["images"])
    classifier.evaluate(labels=test["labels"], image_embeddings=z)

    # One prompt per attribute, for combinations never captioned.
    prompts = [[f"a {c} shape", f"a {s}"] for c, s in ds.classes]
    classifier = ZeroShotClassifier(
        model, ds.class_names, class_prompts=prompts
    )
    ```
    """

    def __init__(
        self,
        model: Any,
        class_names: Sequence[str],
        templates: Sequence[str] = ("{}",),
        class_prompts: Sequence[Sequence[str]] | None = None,
        batch_size: int = 256,
    ):
        for method in ("encode_images", "encode_texts"):
            if not callable(getattr(model, method, None)):
                raise TypeError(
                    f"`model` must have an `{method}` method, got "
                    f"{type(model).__name__}."
                )
        class_names = _check_strings(class_names, "class_names")
        templates = _check_strings(templates, "templates")
        for template in templates:
            try:
                filled = template.format("\0")
            except (IndexError, KeyError, ValueError):
                filled = ""
            if filled.count("\0") != 1:
                raise ValueError(
                    "`templates` must be format strings with exactly one "
                    f"'{{}}' for the class name, got {template!r}."
                )
        if class_prompts is None:
            class_prompts = [
                [t.format(n) for t in templates] for n in class_names
            ]
        elif isinstance(class_prompts, str) or len(class_prompts) != len(
            class_names
        ):
            raise ValueError(
                "`class_prompts` must hold one list of prompts per class "
                f"({len(class_names)} classes)."
            )
        class_prompts = [
            _check_strings(prompts, f"class_prompts[{i}]")
            for i, prompts in enumerate(class_prompts)
        ]
        _check_batch_size(batch_size)
        self.model = model
        self.class_names = class_names
        self.templates = templates
        self.class_prompts = class_prompts
        self.batch_size = int(batch_size)
        self.class_embeddings = self._embed_classes()

    @property
    def num_classes(self) -> int:
        """Number of classes."""
        return len(self.class_names)

    def logits(
        self, images: Any = None, *, image_embeddings: Any = None
    ) -> np.ndarray:
        """Cosine similarities of images to classes, float32 ``[N, C]``.

        Args:
            images: a batch of images in whatever form the model's
                `encode_images` takes (e.g. uint8 or float ``[N, H, W, 3]``);
                encoded `batch_size` at a time.
            image_embeddings: instead of `images`, their embeddings, as
                `model.encode_images` returned them (see
                `logits_from_embeddings`).

        Example:

        ```python
        scores = classifier.logits(images)  # [N, num_classes]
        ```
        """
        if (images is None) == (image_embeddings is None):
            raise ValueError(
                "Pass exactly one of `images` and `image_embeddings`."
            )
        if image_embeddings is not None:
            return self.logits_from_embeddings(image_embeddings)
        embeddings = _encode_batched(
            self.model.encode_images, images, self.batch_size, "images"
        )
        if len(embeddings) == 0:
            return np.zeros((0, self.num_classes), np.float32)
        return self.logits_from_embeddings(embeddings, "model.encode_images")

    def logits_from_embeddings(
        self, image_embeddings: Any, name: str = "image_embeddings"
    ) -> np.ndarray:
        """Cosine similarities of image embeddings to classes, ``[N, C]``.

        For image embeddings the caller already has (e.g. computed once for
        several evaluations): the same numbers as `logits(images)`, with
        no image encoded again.

        Args:
            image_embeddings: float ``[N, D]``, the L2-normalised output of
                the model's `encode_images` (numpy or a backend tensor).
            name: how the embeddings are named in error messages.

        Returns:
            float32 ``[N, C]``.

        Raises:
            TypeError: if the embeddings are not floats.
            ValueError: if they are not ``[N, D]`` with the class
                embeddings' `D`, or not finite.

        Example:

        ```python
        z = model.encode_images(images)  # once
        scores = classifier.logits_from_embeddings(z)
        classifier.evaluate(labels=labels, image_embeddings=z)
        ```
        """
        embeddings = np.asarray(keras.ops.convert_to_numpy(image_embeddings))
        dim = self.class_embeddings.shape[1]
        if embeddings.dtype.kind != "f":
            raise TypeError(
                f"`{name}` must be float embeddings, got dtype "
                f"{embeddings.dtype}."
            )
        if embeddings.ndim != 2 or embeddings.shape[1] != dim:
            raise ValueError(
                f"`{name}` must be [num_images, {dim}] (the dimension "
                "`model.encode_texts` returned), got shape "
                f"{embeddings.shape}."
            )
        if not np.all(np.isfinite(embeddings)):
            raise ValueError(f"`{name}` holds NaN or infinite values.")
        return embeddings.astype(np.float32) @ self.class_embeddings.T

    def predict(
        self, images: Any = None, *, image_embeddings: Any = None
    ) -> np.ndarray:
        """Predicted class ids, int64 ``[N]``.

        Args:
            images: images, as for `logits`.
            image_embeddings: instead of `images`, their embeddings (see
                `logits_from_embeddings`).

        Example:

        ```python
        labels = classifier.predict(images)
        labels = classifier.predict(image_embeddings=z)
        ```
        """
        logits = self.logits(images, image_embeddings=image_embeddings)
        return np.argmax(logits, axis=-1)

    def evaluate(
        self,
        images: Any = None,
        labels: Any = None,
        ks: Sequence[int] = (1, 5),
        *,
        image_embeddings: Any = None,
    ) -> dict[str, float]:
        """Top-k accuracies on labelled images.

        Args:
            images: images, as for `logits`.
            labels: int class ids ``[N]``, indices into `class_names`.
            ks: the k of the top-k accuracies. A k is reported only when it
                is smaller than the number of classes (at k >= C every
                prediction is right).
            image_embeddings: instead of `images`, their embeddings (see
                `logits_from_embeddings`), so that an evaluation loop
                encodes each image once.

        Returns:
            A dict ``{"top1": float, "top5": float, ...}``. Ties count
            against the true class: it must score strictly higher than all
            but k - 1 others.

        Example:

        ```python
        classifier.evaluate(images, labels)  # {"top1": ..., "top5": ...}
        classifier.evaluate(labels=labels, image_embeddings=z)
        ```
        """
        if labels is None:
            raise ValueError("`labels` is required.")
        labels = np.asarray(keras.ops.convert_to_numpy(labels))
        if labels.size == 0:
            raise ValueError("`images` and `labels` must not be empty.")
        if labels.ndim != 1 or not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(
                f"`labels` must be a 1-D array of int class ids, got shape "
                f"{labels.shape} and dtype {labels.dtype}."
            )
        if labels.size and (
            labels.min() < 0 or labels.max() >= self.num_classes
        ):
            raise ValueError(
                f"`labels` must be class ids in [0, {self.num_classes}), got "
                f"values in [{labels.min()}, {labels.max()}]."
            )
        ks = [int(k) for k in ks]
        if any(k < 1 for k in ks):
            raise ValueError(f"`ks` must be positive ints, got {ks}.")
        inputs = "images" if image_embeddings is None else "image_embeddings"
        num_images = _length(
            images if image_embeddings is None else image_embeddings, inputs
        )
        if len(labels) != num_images:
            raise ValueError(
                f"`labels` has {len(labels)} entries but `{inputs}` has "
                f"{num_images}; they must match."
            )
        logits = self.logits(images, image_embeddings=image_embeddings)
        true = logits[np.arange(len(labels)), labels]
        # Rank of the true class: how many classes score at least as high,
        # itself excluded.
        rank = np.sum(logits >= true[:, None], axis=-1) - 1
        return {
            f"top{k}": float(np.mean(rank < k))
            for k in ks
            if k < self.num_classes
        }

    def _embed_classes(self) -> np.ndarray:
        texts = [t for prompts in self.class_prompts for t in prompts]
        embeddings = _encode_batched(
            self.model.encode_texts, texts, self.batch_size, "texts"
        )
        ends = np.cumsum([len(prompts) for prompts in self.class_prompts])
        embeddings = np.stack(
            [part.mean(axis=0) for part in np.split(embeddings, ends[:-1])]
        )
        norm = np.linalg.norm(embeddings, axis=-1, keepdims=True)
        # Averaging shrinks the norm; re-normalise so scores are cosines.
        return embeddings / np.maximum(norm, 1e-12)


def _encode_batched(
    encode: Callable[[Any], Any], inputs: Any, batch_size: int, name: str
) -> np.ndarray:
    """Calls `encode` on slices of `inputs`, concatenated as float32 numpy."""
    count = _length(inputs, name)
    outputs = []
    for start in range(0, count, batch_size):
        part = inputs[start : start + batch_size]
        out = np.asarray(keras.ops.convert_to_numpy(encode(part)), np.float32)
        expected = min(batch_size, count - start)
        if out.ndim != 2 or out.shape[0] != expected:
            raise ValueError(
                f"the model's encoder returned shape {out.shape} for "
                f"{expected} {name}; expected [{expected}, dim]."
            )
        outputs.append(out)
    if not outputs:
        return np.zeros((0, 0), np.float32)
    return np.concatenate(outputs, axis=0)


def _length(inputs: Any, name: str) -> int:
    try:
        return len(inputs)
    except TypeError as error:
        raise TypeError(
            f"`{name}` must be a sized batch (array or list), got "
            f"{type(inputs).__name__}."
        ) from error


def _check_strings(values: Any, name: str) -> list[str]:
    if isinstance(values, str):
        raise ValueError(
            f"`{name}` must be a list of strings, not a single string "
            f"({values!r})."
        )
    values = list(values)
    if not values:
        raise ValueError(f"`{name}` must not be empty.")
    bad = [v for v in values if not isinstance(v, str)]
    if bad:
        raise ValueError(f"`{name}` must contain only strings, got {bad[0]!r}.")
    return values


def _check_batch_size(batch_size: Any) -> None:
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be an int >= 1, got {batch_size!r}."
        )
