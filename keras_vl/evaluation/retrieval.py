"""Image-text retrieval recall@k from paired embeddings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import keras
import numpy as np


def retrieval_recall(
    image_embeddings: Any,
    text_embeddings: Any,
    ks: Sequence[int] = (1, 5, 10),
    text_to_image_index: Any = None,
    batch_size: int = 1024,
) -> dict[str, float]:
    """Recall@k of image-to-text and text-to-image retrieval.

    Scores are dot products, so pass L2-normalised embeddings (what the
    models' `encode_images` / `encode_texts` return) to rank by cosine
    similarity. For each image query, a hit at k means one of its texts is
    among the k best-scoring texts; for each text query, its image is among
    the k best-scoring images. Ties count against the query: a match ranks
    behind every non-matching candidate that scores at least as high, so a
    degenerate model (all scores equal) gets recall 0, not 1.

    Args:
        image_embeddings: float ``[N_images, D]`` (numpy or any backend's
            tensor).
        text_embeddings: float ``[N_texts, D]``.
        ks: the k of the recalls, positive ints. A k at or above the number
            of candidates gives recall 1.
        text_to_image_index: optional int ``[N_texts]``, the image each text
            describes (several captions per image, as in COCO and Flickr30k).
            By default text `i` matches image `i` (requires
            ``N_texts == N_images``). Every image needs at least one text.
        batch_size: int. Queries scored at a time, bounding memory to
            ``batch_size * max(N_images, N_texts)`` floats.

    Returns:
        A dict with ``"image_to_text/recall@{k}"`` and
        ``"text_to_image/recall@{k}"`` for each k, floats in [0, 1].

    Example:

    ```python
    images = model.encode_images(batch["images"])
    texts = model.encode_texts(batch["texts"])
    retrieval_recall(images, texts, ks=(1, 5))
    # {"image_to_text/recall@1": 0.61, "image_to_text/recall@5": 0.9,
    #  "text_to_image/recall@1": 0.58, "text_to_image/recall@5": 0.88}
    ```
    """
    images = _as_matrix(image_embeddings, "image_embeddings")
    texts = _as_matrix(text_embeddings, "text_embeddings")
    if images.shape[1] != texts.shape[1]:
        raise ValueError(
            f"`image_embeddings` ({images.shape[1]}-dim) and "
            f"`text_embeddings` ({texts.shape[1]}-dim) must have the same "
            "embedding size."
        )
    num_images, num_texts = len(images), len(texts)
    if text_to_image_index is None:
        if num_images != num_texts:
            raise ValueError(
                f"`image_embeddings` has {num_images} rows but "
                f"`text_embeddings` has {num_texts}; pairs must match one "
                "to one unless `text_to_image_index` is given."
            )
        index = np.arange(num_texts)
    else:
        index = _check_index(text_to_image_index, num_images, num_texts)
    if isinstance(ks, int | np.integer):
        ks = (ks,)
    ks = list(ks)
    if not ks or any(not isinstance(k, int | np.integer) or k < 1 for k in ks):
        raise ValueError(
            f"`ks` must be a non-empty list of positive ints, got {ks!r}."
        )
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be an int >= 1, got {batch_size!r}."
        )

    image_ranks = np.empty(num_images, np.int64)
    for lo in range(0, num_images, batch_size):
        hi = min(lo + batch_size, num_images)
        scores = images[lo:hi] @ texts.T  # [b, N_texts]
        positive = index[None, :] == np.arange(lo, hi)[:, None]
        best = np.max(np.where(positive, scores, -np.inf), axis=1)
        image_ranks[lo:hi] = np.sum(
            (scores >= best[:, None]) & ~positive, axis=1
        )

    text_ranks = np.empty(num_texts, np.int64)
    for lo in range(0, num_texts, batch_size):
        hi = min(lo + batch_size, num_texts)
        scores = texts[lo:hi] @ images.T  # [b, N_images]
        true = scores[np.arange(hi - lo), index[lo:hi]]
        # Minus one: the matching image itself is counted by `>=`.
        text_ranks[lo:hi] = np.sum(scores >= true[:, None], axis=1) - 1

    results = {}
    for k in ks:
        results[f"image_to_text/recall@{k}"] = float(np.mean(image_ranks < k))
    for k in ks:
        results[f"text_to_image/recall@{k}"] = float(np.mean(text_ranks < k))
    return results


def _as_matrix(x: Any, name: str) -> np.ndarray:
    array = np.asarray(keras.ops.convert_to_numpy(x))
    if array.ndim != 2 or array.shape[0] == 0:
        raise ValueError(
            f"`{name}` must be a non-empty 2-D array [N, D], got shape "
            f"{array.shape}."
        )
    # float64 stays exact; everything else (ints, float16, bfloat16 from
    # mixed precision) is scored in float32.
    if array.dtype != np.float64:
        array = array.astype(np.float32)
    if not np.all(np.isfinite(array)):
        raise ValueError(f"`{name}` contains NaN or infinite values.")
    return array


def _check_index(index: Any, num_images: int, num_texts: int) -> np.ndarray:
    index = np.asarray(keras.ops.convert_to_numpy(index))
    if index.shape != (num_texts,) or not np.issubdtype(
        index.dtype, np.integer
    ):
        raise ValueError(
            "`text_to_image_index` must be an int array with one image index "
            f"per text, shape ({num_texts},); got shape {index.shape} and "
            f"dtype {index.dtype}."
        )
    if index.min() < 0 or index.max() >= num_images:
        raise ValueError(
            f"`text_to_image_index` must hold image indices in [0, "
            f"{num_images}), got values in [{index.min()}, {index.max()}]."
        )
    missing = np.setdiff1d(np.arange(num_images), index)
    if len(missing):
        raise ValueError(
            f"`text_to_image_index` gives no text to image(s) "
            f"{missing[:10].tolist()}; every image needs at least one text."
        )
    return index.astype(np.int64)
