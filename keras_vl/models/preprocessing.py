"""Image and batch handling shared by the image-text preprocessors.

These run inside `tf.data` pipelines (and eagerly), so they use TensorFlow
whatever the Keras backend.
"""

import keras
import numpy as np

try:
    import tensorflow as tf
except ImportError:  # pragma: no cover - tensorflow comes with keras-hub
    tf = None


def check_same_batch_size(images, texts) -> None:
    """Checks that preprocessed images and texts pair up row by row.

    Both are either batches (`[B, H, W, C]` and `[B, L]`) or one example
    (`[H, W, C]` and `[L]`). Batch sizes known when tracing are compared
    at once; inside `tf.data` they may only be known at run time, where a
    `tf.debugging` assertion compares them.

    Args:
        images: Preprocessed images, a `tf.Tensor`.
        texts: Preprocessed texts with one axis per example (code points or
            token ids), a `tf.Tensor`.

    Raises:
        ValueError: if one is a batch and the other is not, or the batch
            sizes differ.

    Example:

    ```python
    check_same_batch_size(tf.zeros((2, 32, 32, 3)), tf.zeros((2, 8)))
    ```
    """
    message = "'images' and 'texts' must have the same batch size"
    if images.shape.rank != texts.shape.rank + 2:
        raise ValueError(
            f"{message}: pass a batch of both or one example of both."
        )
    if images.shape.rank == 3:
        return
    n_images, n_texts = images.shape[0], texts.shape[0]
    if n_images is not None and n_texts is not None:
        if n_images != n_texts:
            raise ValueError(
                f"{message}. Received {n_images} images and {n_texts} texts."
            )
    else:
        tf.debugging.assert_equal(
            tf.shape(images)[0], tf.shape(texts)[0], message=message
        )


# How images are resized: "antialiased" bilinear (keras_vl's default), or
# "big_vision": its `resize` op's default, bilinear without antialiasing,
# with integer pixels rounded down back to their dtype, as the released
# LiT, SigLIP and CLIPPO models saw them.
RESIZE_MODES = ("antialiased", "big_vision")


def check_resize_mode(resize: str) -> str:
    """Returns `resize` if it is one of `RESIZE_MODES`, else raises."""
    if resize not in RESIZE_MODES:
        raise ValueError(
            f"`resize` must be one of {RESIZE_MODES}. Received: "
            f"resize={resize!r}"
        )
    return resize


def resized_pixels(
    images,
    image_size,
    channels: int | None = None,
    resize: str = "antialiased",
):
    """Checks raw pixels and resizes them, as float32 in `[0, 255]`.

    Args:
        images: `[B, H, W, C]` or one image `[H, W, C]`, uint8 or float in
            `[0, 255]`.
        image_size: `(height, width)` to resize to (skipped when the size
            already matches), or None to keep it.
        channels: The required number of channels, or None for any.
        resize: One of `RESIZE_MODES`: `"antialiased"` bilinear, or
            `"big_vision"` (bilinear without antialiasing; integer pixels
            rounded down to integers again, as big_vision's `resize` op
            does).

    Returns:
        A float32 `tf.Tensor` of the input's rank.

    Raises:
        ValueError: if `images` has another rank or channel count.
        TypeError: if `images` is not numeric.

    Example:

    ```python
    resized_pixels(np.zeros((2, 20, 20, 3), "uint8"), (16, 16), channels=3)
    ```
    """
    images = tf.convert_to_tensor(images)
    channel_name = "C" if channels is None else str(channels)
    kind = "RGB images" if channels == 3 else "images"
    if images.shape.rank not in (3, 4) or (
        channels is not None and images.shape[-1] != channels
    ):
        raise ValueError(
            f"'images' must be a batch of {kind} [B, H, W, {channel_name}] "
            f"or one image [H, W, {channel_name}]. Received shape "
            f"{images.shape}"
        )
    if not (images.dtype.is_floating or images.dtype.is_integer):
        raise TypeError(
            f"'images' must be numeric. Received dtype {images.dtype.name}"
        )
    integer = images.dtype.is_integer
    images = tf.cast(images, "float32")
    if image_size is not None and tuple(images.shape[-3:-1]) != image_size:
        big_vision = check_resize_mode(resize) == "big_vision"
        images = tf.image.resize(images, image_size, antialias=not big_vision)
        if big_vision and integer:
            images = tf.floor(tf.clip_by_value(images, 0.0, 255.0))
    return images


def special_token_id(tokenizer, attributes, tokens) -> int | None:
    """A special token's id from a keras-hub tokenizer, or None.

    Tries the tokenizer's id attributes first (e.g. `end_token_id`), then
    looks the token strings up; a lookup counts only if it maps back to the
    same string (SentencePiece maps unknown pieces to `<unk>`).

    Args:
        tokenizer: A keras-hub tokenizer.
        attributes: Attribute names that may hold the id, in order.
        tokens: Token strings that may name it, in order.

    Example:

    ```python
    special_token_id(tokenizer, ("pad_token_id",), ("<pad>", "[PAD]"))
    ```
    """
    for attribute in attributes:
        value = getattr(tokenizer, attribute, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    for token in tokens:
        try:
            index = int(tokenizer.token_to_id(token))
            if tokenizer.id_to_token(index) == token:
                return index
        except (KeyError, ValueError, TypeError):
            continue
    return None


def check_same_rows(columns: dict, name: str) -> int:
    """Checks that the columns of one input pair up row by row.

    Args:
        columns: Arrays (or lists) by key, each with one row per example.
        name: The argument that holds them, for the error message.

    Returns:
        The number of rows.

    Raises:
        ValueError: if the columns hold different numbers of rows.

    Example:

    ```python
    check_same_rows({"images": images, "texts": captions}, "x")
    ```
    """
    rows = {key: len(column) for key, column in columns.items()}
    if len(set(rows.values())) > 1:
        counts = ", ".join(f"{n} {key!r}" for key, n in rows.items())
        raise ValueError(
            f"The entries of `{name}` must have the same number of rows "
            f"(one per example). Received {counts}."
        )
    return next(iter(rows.values()), 0)


def check_token_ids(token_ids, vocabulary_size: int, name: str) -> None:
    """Checks eagerly that token ids index a vocabulary of the given size.

    An id outside `[0, vocabulary_size)` is silently clamped by JAX's
    gather, an IndexError on torch and an InvalidArgumentError on
    TensorFlow; this raises the same error on every backend. Symbolic
    tensors (inside `tf.data` or a traced function) are not checked.

    Args:
        token_ids: Integer ids: an array, a tensor, or (ragged) lists.
        vocabulary_size: Ids the text tower embeds.
        name: The argument that holds them, for the error message.

    Raises:
        ValueError: if an id is negative or `>= vocabulary_size`.

    Example:

    ```python
    check_token_ids([[5, 2], [7]], vocabulary_size=8, name="texts")
    ```
    """
    values = _eager_values(token_ids)
    if values is None or values.size == 0 or values.dtype.kind not in "iu":
        return
    low, high = int(values.min()), int(values.max())
    if low < 0 or high >= vocabulary_size:
        bad = low if low < 0 else high
        raise ValueError(
            f"`{name}` holds token id {bad}, outside the vocabulary "
            f"[0, {vocabulary_size})."
        )


def _eager_values(x):
    """`x`'s values as a flat numpy array, or None if they are symbolic."""
    if isinstance(x, np.ndarray):
        return x.ravel()
    if tf is not None and isinstance(x, tf.RaggedTensor):
        x = x.flat_values
    if tf is not None and tf.is_tensor(x):
        try:
            return x.numpy().ravel()
        except (AttributeError, NotImplementedError):  # Symbolic.
            return None
    if isinstance(x, list | tuple) and any(
        isinstance(row, list | tuple | np.ndarray) for row in x
    ):  # Ragged rows.
        parts = [_eager_values(row) for row in x]
        if any(part is None for part in parts):
            return None
        return np.concatenate(parts) if parts else np.zeros(0, "int64")
    if isinstance(x, list | tuple):
        return np.asarray(x).ravel()
    try:
        return np.asarray(keras.ops.convert_to_numpy(x)).ravel()
    except Exception:  # A symbolic tensor of another backend.
        return None


def text_batch(texts, name: str = "texts"):
    """A task's `texts` argument as a batch: one string becomes a list of
    one, an array stays as it is, any other iterable becomes a list.

    Raises:
        TypeError: if `texts` is not a string or an iterable (e.g. None).
    """
    if isinstance(texts, str | bytes):
        return [texts]
    if isinstance(texts, np.ndarray):
        return texts
    try:
        return list(texts)
    except TypeError:
        raise TypeError(
            f"`{name}` must be a string or a list of strings. Received: "
            f"{type(texts).__name__}"
        ) from None
