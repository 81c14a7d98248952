"""Contrastive image-text losses over the global batch.

Two losses from the papers this library implements:

* `softmax_contrastive_loss`: CLIP's symmetric cross-entropy (used by
  CLIPPO, LiT and LIMoE). With logits `L = s * Z_img @ Z_txt^T` over the
  global batch of `B` pairs,
  `loss = 1/2 * (CE(L, diag) + CE(L^T, diag))`, averaged over the pairs.
* `sigmoid_contrastive_loss`: SigLIP's pairwise sigmoid loss. With logits
  `L = s * Z_img @ Z_txt^T + b` and `y = +1` on the diagonal, `-1` elsewhere,
  `loss = -1/B * sum_ij log sigmoid(y_ij * L_ij)` (summed over texts,
  averaged over images).

Both compute in float32 whatever the input dtype (mixed precision), take
L2-normalised embeddings and an already exponentiated scale (see
`logit_scale_from_log`), and return a scalar.

Positives. By default pair `i` is image `i`'s only match. When a batch
holds several pairs of one kind (few classes, or captions that describe
many images, like "a red shape"), the other matches are false negatives.
An optional `positives` matrix `P` (`[B, B]`, rows images, columns texts,
the diagonal always included) marks them: the sigmoid loss labels every
`P_ij` pair `+1`, and the softmax loss spreads each row's (column's)
target evenly over its positives, `-sum_j P_ij / sum_k P_ik log p_ij`.

Global batch. On JAX (`keras.distribution.DataParallel` included), PyTorch
and single-replica TensorFlow the embeddings passed in already are the
global batch. Under a multi-replica `tf.distribute` strategy each replica
holds only its local rows, so the losses gather every replica's embeddings
(`keras_vl.distribute.all_gather`, differentiable), score the local rows
against all columns with labels offset to the replica's position, and
divide by the *global* batch size. Each replica then returns its share of
the global loss: the shares sum to the single-device loss on the whole batch
and their gradients, summed across replicas by the optimizer, equal its
gradient. This is the scaling Keras' TF trainer expects from
`compute_loss`: its own `keras.losses.Loss` objects are multiplied by
`1 / num_replicas` for the same reason, and the trainer multiplies the
reported loss back by `num_replicas` before averaging it for the logs.

Ring exchange. Under a JAX distribution, the plain sigmoid loss has XLA
all-gather every text embedding onto every device and hold `[B / n, B]`
logits there. `exchange="ring"` passes text chunks from device to device
instead (SigLIP's chunked variant, `keras_vl.distribute.ring`): the same
loss and gradient, with `[B / n, B / n]` logits per device.
"""

import math
from typing import Any

import keras
import numpy as np
from keras import ops

from keras_vl import distribute
from keras_vl.distribute import ring


def logit_scale_from_log(log_scale: Any, max_scale: float = 100.0) -> Any:
    """Turns a learnable log-temperature into the logit scale.

    Returns `exp(min(log_scale, log(max_scale)))`. CLIP's temperature
    diverges without a ceiling; clamping in the forward pass keeps the scale
    at `max_scale` (and stops the gradient pushing it further) once the
    parameter crosses it.

    Args:
        log_scale: Scalar tensor or variable `t` (shape `()` or `(1,)`),
            e.g. initialised to `log(10)`.
        max_scale: Upper bound on the returned scale. Defaults to 100.

    Returns:
        A float32 scalar tensor `s`.

    Example:

    ```python
    import math
    from keras_vl.losses import logit_scale_from_log

    logit_scale_from_log(math.log(10.0))  # 10.0
    logit_scale_from_log(10.0)  # clamped to 100.0
    ```
    """
    if max_scale <= 0:
        raise ValueError(
            f"`max_scale` must be positive. Received: max_scale={max_scale}"
        )
    log_scale = _as_scalar(log_scale, "log_scale")
    return ops.exp(ops.minimum(log_scale, math.log(max_scale)))


def contrastive_logits(
    image_embeddings: Any,
    text_embeddings: Any,
    logit_scale: Any,
    logit_bias: Any | None = None,
) -> Any:
    """Pairwise image-text logits `s * Z_img @ Z_txt^T (+ b)` in float32.

    No cross-replica gathering: the logits cover exactly the rows given.
    Useful for metrics, zero-shot classification (texts = class prompts)
    and retrieval.

    Args:
        image_embeddings: `[N, D]` tensor (L2-normalised).
        text_embeddings: `[M, D]` tensor (L2-normalised).
        logit_scale: Scalar scale `s`, already exponentiated.
        logit_bias: Optional scalar bias `b` (SigLIP).

    Returns:
        A float32 `[N, M]` tensor.

    Example:

    ```python
    import numpy as np
    from keras_vl.losses import contrastive_logits

    z = np.eye(3, 8, dtype="float32")
    contrastive_logits(z, z, 10.0)  # 10 * identity
    ```
    """
    image_embeddings = _as_embeddings(image_embeddings, "image_embeddings")
    text_embeddings = _as_embeddings(text_embeddings, "text_embeddings")
    _check_same_dim(image_embeddings, text_embeddings)
    logits = _scaled_similarity(
        image_embeddings,
        text_embeddings,
        _as_scalar(logit_scale, "logit_scale"),
    )
    if logit_bias is not None:
        logits = logits + _as_scalar(logit_bias, "logit_bias")
    return logits


def softmax_contrastive_loss(
    image_embeddings: Any,
    text_embeddings: Any,
    logit_scale: Any,
    positives: Any | None = None,
) -> Any:
    """CLIP's symmetric softmax contrastive loss over the global batch.

    `L = s * Z_img @ Z_txt^T`; the loss averages, over the `B` pairs of the
    global batch, half the cross-entropy of picking the paired text among
    all texts (rows of `L`) plus half that of picking the paired image among
    all images (columns of `L`). See the module docstring for what "global"
    means under `tf.distribute`.

    Args:
        image_embeddings: `[B, D]` L2-normalised image embeddings. Any float
            dtype; computation is float32.
        text_embeddings: `[B, D]` L2-normalised text embeddings; row `i`
            pairs with image `i`.
        logit_scale: Scalar scale `s` (shape `()` or `(1,)`), already
            exponentiated, e.g. `logit_scale_from_log(t)`.
        positives: Optional `[B, B]` matrix (bool, or numbers where nonzero
            is true) marking which texts (columns) describe which images
            (rows), for batches that hold several pairs of one kind. Each
            image's target is then spread evenly over its positive texts,
            and each text's over its positive images. The diagonal always
            counts as positive. Defaults to the diagonal alone. Under
            `tf.distribute`, pass this replica's rows (`[B_local, B]`), as
            a distributed dataset splits a `[B, B]` target.

    Returns:
        A float32 scalar: the mean loss over the global batch (under a
        multi-replica `tf.distribute` strategy, this replica's share of it).

    Example:

    ```python
    import numpy as np
    from keras_vl.losses import softmax_contrastive_loss

    z = np.eye(4, 8, dtype="float32")
    softmax_contrastive_loss(z, z, logit_scale=10.0)  # ~1.4e-4

    # In a contrastive task's compute_loss, with y_pred a dict of
    # embeddings and the task owning the log-temperature variable:
    # loss = softmax_contrastive_loss(
    #     **y_pred, logit_scale=logit_scale_from_log(self.log_temperature)
    # )
    ```
    """
    local_img, local_txt, scale = _prepare(
        image_embeddings, text_embeddings, logit_scale
    )
    all_img, all_txt, labels, global_size = _global_batch(local_img, local_txt)
    image_rows, text_rows = _positive_masks(positives, labels, all_img)
    # Image -> text: local images against all texts; text -> image: local
    # texts against all images. Both are the rows of the global L (resp.
    # L^T) that this replica owns.
    i2t = _cross_entropy(
        _scaled_similarity(local_img, all_txt, scale), image_rows
    )
    t2i = _cross_entropy(
        _scaled_similarity(local_txt, all_img, scale), text_rows
    )
    return 0.5 * (ops.sum(i2t) + ops.sum(t2i)) / global_size


EXCHANGES = ("gather", "ring")


def sigmoid_contrastive_loss(
    image_embeddings: Any,
    text_embeddings: Any,
    logit_scale: Any,
    logit_bias: Any,
    positives: Any | None = None,
    exchange: str = "gather",
) -> Any:
    """SigLIP's pairwise sigmoid loss over the global batch.

    `L = s * Z_img @ Z_txt^T + b`; every image-text pair is an independent
    binary problem, positive on the diagonal. The loss is
    `-sum_j log sigmoid(y_ij * L_ij)` summed over all texts `j` and averaged
    over the images `i` of the global batch.

    Args:
        image_embeddings: `[B, D]` L2-normalised image embeddings. Any float
            dtype; computation is float32.
        text_embeddings: `[B, D]` L2-normalised text embeddings; row `i`
            pairs with image `i`.
        logit_scale: Scalar scale `s` (shape `()` or `(1,)`), already
            exponentiated, e.g. `logit_scale_from_log(t)`; SigLIP initialises
            `t = log(10)`.
        logit_bias: Scalar bias `b` (shape `()` or `(1,)`); SigLIP
            initialises it to -10.
        positives: Optional `[B, B]` matrix (bool, or numbers where nonzero
            is true) of the pairs labelled `+1`: which texts (columns)
            describe which images (rows). The diagonal always counts as
            positive. Defaults to the diagonal alone. Under
            `tf.distribute`, pass this replica's rows (`[B_local, B]`).
        exchange: How the devices of a JAX distribution (e.g.
            `keras.distribution.DataParallel`) pair images with the other
            devices' texts. `"gather"` (the default) lets XLA all-gather
            the texts: each device holds all `B` of them and `[B / n, B]`
            logits. `"ring"` passes text chunks around the `n` devices of
            the batch axis instead, holding `[B / n, B / n]` logits at a
            time, for the same loss and gradient (to float rounding).
            Where nothing is split across devices (other backends, no
            distribution, one device), `"ring"` computes the plain loss.

    Returns:
        A float32 scalar: the mean over images of the per-image loss (under a
        multi-replica `tf.distribute` strategy, this replica's share of it).

    Example:

    ```python
    import numpy as np
    from keras_vl.losses import sigmoid_contrastive_loss

    z = np.eye(4, 8, dtype="float32")
    sigmoid_contrastive_loss(z, z, logit_scale=10.0, logit_bias=-10.0)

    # Under keras.distribution.DataParallel() on JAX, memory-frugal:
    # sigmoid_contrastive_loss(z_img, z_txt, s, b, exchange="ring")
    ```
    """
    if _uses_ring(exchange):
        return _sigmoid_ring(
            image_embeddings,
            text_embeddings,
            logit_scale,
            logit_bias,
            positives,
        )[0]
    local_img, local_txt, scale = _prepare(
        image_embeddings, text_embeddings, logit_scale
    )
    bias = _as_scalar(logit_bias, "logit_bias")
    all_img, all_txt, labels, global_size = _global_batch(local_img, local_txt)
    logits = _scaled_similarity(local_img, all_txt, scale) + bias
    positive, _ = _positive_masks(positives, labels, all_img)
    signs = ops.where(positive, 1.0, -1.0)
    nll = -ops.sum(ops.log_sigmoid(signs * logits))
    return nll / global_size


def sigmoid_contrastive_loss_and_accuracy(
    image_embeddings: Any,
    text_embeddings: Any,
    logit_scale: Any,
    logit_bias: Any,
    positives: Any | None = None,
    exchange: str = "gather",
) -> tuple[Any, Any, Any]:
    """The sigmoid loss and the in-batch top-1 accuracies, over the global
    batch.

    The accuracies are those of `global_contrastive_accuracy`. With
    `exchange="ring"` under a JAX distribution they are computed inside
    the ring, from the blocks of logits the loss scores, so that no device
    ever holds a `[B / n, B]` block of them.

    Args:
        image_embeddings: As in `sigmoid_contrastive_loss`.
        text_embeddings: As in `sigmoid_contrastive_loss`.
        logit_scale: As in `sigmoid_contrastive_loss`.
        logit_bias: As in `sigmoid_contrastive_loss`.
        positives: As in `sigmoid_contrastive_loss`; a top-1 hit is any
            positive.
        exchange: `"gather"` or `"ring"`, as in `sigmoid_contrastive_loss`.

    Returns:
        `(loss, image_to_text, text_to_image)` float32 scalars.

    Example:

    ```python
    import numpy as np
    from keras_vl.losses import sigmoid_contrastive_loss_and_accuracy

    z = np.eye(4, 8, dtype="float32")
    loss, i2t, t2i = sigmoid_contrastive_loss_and_accuracy(
        z, z, logit_scale=10.0, logit_bias=-10.0, exchange="ring"
    )  # i2t = t2i = 1.0
    ```
    """
    embeddings = (image_embeddings, text_embeddings, logit_scale, logit_bias)
    if _uses_ring(exchange):
        return _sigmoid_ring(*embeddings, positives)
    loss = sigmoid_contrastive_loss(*embeddings, positives)
    i2t, t2i = global_contrastive_accuracy(*embeddings, positives)
    return loss, i2t, t2i


def _uses_ring(exchange: str) -> bool:
    """Whether `exchange` asks for the ring and a JAX distribution splits
    the batch over devices for one."""
    return check_exchange(exchange) == "ring" and ring.ring_mesh() is not None


def _sigmoid_ring(
    image_embeddings, text_embeddings, logit_scale, logit_bias, positives
):
    """`(loss, image_to_text, text_to_image)` from the ring of devices."""
    image_embeddings, text_embeddings, scale = _prepare(
        image_embeddings, text_embeddings, logit_scale
    )
    bias = _as_scalar(logit_bias, "logit_bias")
    if positives is not None:
        size = ops.shape(image_embeddings)[0]
        positives = _as_positives(positives, size, size)
    return ring.sigmoid_ring_loss(
        image_embeddings, text_embeddings, scale, bias, positives
    )


def global_contrastive_accuracy(
    image_embeddings: Any,
    text_embeddings: Any,
    logit_scale: Any,
    logit_bias: Any | None = None,
    positives: Any | None = None,
) -> tuple[Any, Any]:
    """In-batch top-1 accuracy in both directions over the global batch.

    `contrastive_accuracy` of the logits of all images against all texts:
    under a multi-replica `tf.distribute` strategy each replica gathers
    every replica's embeddings (and rows of `positives`) first, so every
    replica reports the accuracy of the whole batch.

    Args:
        image_embeddings: `[B, D]` (this replica's rows under
            `tf.distribute`).
        text_embeddings: `[B, D]`, row `i` pairs with image `i`.
        logit_scale: Scalar scale `s`, already exponentiated.
        logit_bias: Optional scalar bias `b`.
        positives: Optional `[B, B]` matrix of extra positive pairs (this
            replica's rows under `tf.distribute`).

    Returns:
        `(image_to_text, text_to_image)` float32 scalars in [0, 1].

    Example:

    ```python
    import numpy as np
    from keras_vl.losses import global_contrastive_accuracy

    z = np.eye(4, 8, dtype="float32")
    global_contrastive_accuracy(z, z, logit_scale=10.0)  # (1.0, 1.0)
    ```
    """
    all_images, all_texts = distribute.all_gather(
        (image_embeddings, text_embeddings)
    )
    if positives is not None:
        positives = ops.cast(
            distribute.all_gather(ops.cast(positive_mask(positives), "int32")),
            "bool",
        )
    logits = contrastive_logits(all_images, all_texts, logit_scale, logit_bias)
    return contrastive_accuracy(logits, positives)


def check_exchange(exchange: str, name: str = "exchange") -> str:
    """`exchange` if it is one of `EXCHANGES`, else a ValueError naming the
    argument `name`.

    Example:

    ```python
    check_exchange("ring")  # "ring"
    ```
    """
    if exchange not in EXCHANGES:
        raise ValueError(
            f"`{name}` must be one of {EXCHANGES}. Received: "
            f"{name}={exchange!r}"
        )
    return exchange


def image_to_text_accuracy(logits: Any) -> Any:
    """Fraction of images whose highest-scoring text is their own.

    Args:
        logits: Square `[B, B]` image-text logits (rows are images), e.g.
            from `contrastive_logits`. In-batch over the rows given.

    Returns:
        A float32 scalar in [0, 1].

    Example:

    ```python
    import numpy as np
    from keras_vl.losses import image_to_text_accuracy

    image_to_text_accuracy(np.eye(3))  # 1.0
    ```
    """
    logits = _as_square_logits(logits)
    return _top1_accuracy(logits, axis=1)


def text_to_image_accuracy(logits: Any) -> Any:
    """Fraction of texts whose highest-scoring image is their own.

    Args:
        logits: Square `[B, B]` image-text logits (rows are images, columns
            texts), e.g. from `contrastive_logits`.

    Returns:
        A float32 scalar in [0, 1].

    Example:

    ```python
    import numpy as np
    from keras_vl.losses import text_to_image_accuracy

    text_to_image_accuracy(np.eye(3))  # 1.0
    ```
    """
    logits = _as_square_logits(logits)
    return _top1_accuracy(logits, axis=0)


def contrastive_accuracy(
    logits: Any, positives: Any | None = None
) -> tuple[Any, Any]:
    """In-batch top-1 retrieval accuracy in both directions.

    Args:
        logits: Square `[B, B]` image-text logits (rows are images, columns
            texts), e.g. from `contrastive_logits`.
        positives: Optional `[B, B]` matrix of the pairs that count as
            matches besides the diagonal (as in the losses): a top-1 hit
            is any positive.

    Returns:
        `(image_to_text, text_to_image)` float32 scalars in [0, 1].

    Example:

    ```python
    import numpy as np
    from keras_vl.losses import contrastive_accuracy

    i2t, t2i = contrastive_accuracy(np.array([[2.0, 1.0], [3.0, 0.0]]))
    # i2t = 0.5: image 1 prefers text 0.
    # t2i = 0.0: text 0 prefers image 1 and text 1 prefers image 0.
    ```
    """
    logits = _as_square_logits(logits)
    matches = None
    if positives is not None:
        size = ops.shape(logits)[0]
        own = _label_mask(ops.arange(size, dtype="int32"), size)
        matches = ops.logical_or(_as_positives(positives, size, size), own)
    return (
        _top1_accuracy(logits, axis=1, matches=matches),
        _top1_accuracy(logits, axis=0, matches=matches),
    )


def positive_mask(positives: Any) -> Any:
    """A positives matrix (bool, or numbers where nonzero is true) as a
    boolean tensor; raises a clear `TypeError` for anything else.

    Args:
        positives: Array-like marking which texts describe which images.

    Returns:
        A boolean tensor of the same shape.

    Example:

    ```python
    from keras_vl.losses import positive_mask

    positive_mask([[1, 0], [1, 1]])  # [[True, False], [True, True]]
    ```
    """
    dtype = getattr(positives, "dtype", None)
    if dtype is None:
        dtype = np.asarray(positives).dtype
    try:
        dtype = keras.backend.standardize_dtype(dtype)
    except ValueError:
        dtype = str(dtype)
    if dtype != "bool" and "int" not in dtype and "float" not in dtype:
        raise TypeError(
            "`positives` must be a boolean or numeric [batch, batch] "
            f"matrix. Received dtype {dtype}"
        )
    positives = ops.convert_to_tensor(positives)
    if dtype == "bool":
        return positives
    return ops.not_equal(positives, ops.zeros_like(positives))


# === Internals ===


def _as_embeddings(x: Any, name: str) -> Any:
    x = ops.convert_to_tensor(x)
    if len(x.shape) != 2:
        raise ValueError(
            f"`{name}` must be a rank-2 tensor [batch, dim]. Received: "
            f"{name}.shape={tuple(x.shape)}"
        )
    # Mixed precision: similarities of unit vectors times a scale of up to
    # 100 need float32 for a stable log-softmax / log-sigmoid.
    return ops.cast(x, "float32")


def _as_scalar(x: Any, name: str) -> Any:
    x = ops.cast(ops.convert_to_tensor(x), "float32")
    shape = tuple(x.shape)
    if len(shape) > 1 or (len(shape) == 1 and shape[0] not in (1, None)):
        raise ValueError(
            f"`{name}` must be a scalar (shape () or (1,)). Received: "
            f"{name}.shape={tuple(x.shape)}"
        )
    return ops.reshape(x, ())


def _check_same_dim(image_embeddings: Any, text_embeddings: Any) -> None:
    d_img, d_txt = image_embeddings.shape[1], text_embeddings.shape[1]
    if d_img is not None and d_txt is not None and d_img != d_txt:
        raise ValueError(
            "`image_embeddings` and `text_embeddings` must have the same "
            f"embedding dim. Received: image_embeddings.shape="
            f"{tuple(image_embeddings.shape)}, text_embeddings.shape="
            f"{tuple(text_embeddings.shape)}"
        )


def _prepare(
    image_embeddings: Any, text_embeddings: Any, logit_scale: Any
) -> tuple[Any, Any, Any]:
    image_embeddings = _as_embeddings(image_embeddings, "image_embeddings")
    text_embeddings = _as_embeddings(text_embeddings, "text_embeddings")
    _check_same_dim(image_embeddings, text_embeddings)
    b_img, b_txt = image_embeddings.shape[0], text_embeddings.shape[0]
    if b_img is not None and b_txt is not None and b_img != b_txt:
        raise ValueError(
            "`image_embeddings` and `text_embeddings` must have the same "
            "batch size (row i of each is a pair). Received: "
            f"image_embeddings.shape={tuple(image_embeddings.shape)}, "
            f"text_embeddings.shape={tuple(text_embeddings.shape)}"
        )
    return (
        image_embeddings,
        text_embeddings,
        _as_scalar(logit_scale, "logit_scale"),
    )


def _global_batch(local_img: Any, local_txt: Any) -> tuple[Any, Any, Any, Any]:
    """Returns all images, all texts, the global column index of each local
    row's pair, and the global batch size (float32)."""
    local_size = ops.shape(local_img)[0]
    if distribute.num_replicas_in_sync() > 1:
        all_img, all_txt = distribute.all_gather((local_img, local_txt))
        offset = distribute.local_batch_offset(local_img)
    else:
        all_img, all_txt, offset = local_img, local_txt, 0
    labels = ops.arange(local_size, dtype="int32") + offset
    global_size = ops.cast(ops.shape(all_img)[0], "float32")
    return all_img, all_txt, labels, global_size


def _scaled_similarity(rows: Any, columns: Any, scale: Any) -> Any:
    return scale * ops.matmul(rows, ops.transpose(columns))


def _label_mask(labels: Any, num_columns: Any) -> Any:
    """Boolean `[rows, num_columns]`, True at (i, labels[i])."""
    columns = ops.arange(num_columns, dtype="int32")
    return ops.equal(ops.expand_dims(labels, 1), ops.expand_dims(columns, 0))


def _positive_masks(
    positives: Any | None, labels: Any, all_img: Any
) -> tuple[Any, Any]:
    """Boolean masks of the positive pairs of this replica's rows: images
    against all texts, and texts against all images (`[B_local, B]` each).

    `labels` holds the global column of each local row's own pair, which is
    always positive.
    """
    global_size = ops.shape(all_img)[0]
    own = _label_mask(labels, global_size)
    if positives is None:
        return own, own
    positives = _as_positives(positives, ops.shape(labels)[0], global_size)
    image_rows = ops.logical_or(positives, own)
    if distribute.num_replicas_in_sync() > 1:
        # A text's positive images are a column of the global matrix, held
        # by every replica's rows.
        everything = distribute.all_gather(ops.cast(image_rows, "int32"))
        everything = ops.cast(everything, "bool")
    else:
        everything = image_rows
    text_rows = ops.take(ops.transpose(everything), labels, axis=0)
    return image_rows, text_rows


def _as_positives(positives: Any, local_size: Any, global_size: Any) -> Any:
    positives = positive_mask(positives)
    shape = tuple(positives.shape)
    expected = tuple(
        size if isinstance(size, int) else None
        for size in (local_size, global_size)
    )
    if len(shape) != 2 or any(
        want is not None and got is not None and want != got
        for want, got in zip(expected, shape, strict=True)
    ):
        raise ValueError(
            "`positives` must be a [batch, batch] matrix (rows: images, "
            "columns: texts) matching the embeddings' batch. Received: "
            f"positives.shape={shape}, expected {expected}"
        )
    return positives


def _cross_entropy(logits: Any, positive: Any) -> Any:
    """Per-row softmax cross-entropy against the uniform distribution over
    each row's positive columns (one-hot for plain pairs)."""
    log_probs = ops.log_softmax(logits, axis=1)
    positive = ops.cast(positive, log_probs.dtype)
    targets = positive / ops.sum(positive, axis=1, keepdims=True)
    return -ops.sum(targets * log_probs, axis=1)


def _as_square_logits(logits: Any) -> Any:
    logits = ops.convert_to_tensor(logits)
    shape = tuple(logits.shape)
    if len(shape) != 2 or (None not in shape and shape[0] != shape[1]):
        raise ValueError(
            "`logits` must be a square [batch, batch] tensor of image-text "
            f"logits. Received: logits.shape={shape}"
        )
    return logits


def _top1_accuracy(logits: Any, axis: int, matches: Any = None) -> Any:
    """Share of rows (`axis=1`) or columns (`axis=0`) whose best-scoring
    entry is a match: the diagonal, or any True of `matches`."""
    predicted = ops.argmax(logits, axis=axis)
    if matches is None:
        target = ops.arange(ops.shape(logits)[0], dtype=predicted.dtype)
        return ops.mean(ops.cast(ops.equal(predicted, target), "float32"))
    if axis == 0:
        matches = ops.transpose(matches)
    hits = ops.take_along_axis(
        matches, ops.expand_dims(ops.cast(predicted, "int32"), 1), axis=1
    )
    return ops.mean(ops.cast(hits, "float32"))
