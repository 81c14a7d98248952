"""Input checks shared by the image-text preprocessors (tf.data side)."""

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
