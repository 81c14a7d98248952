"""Cross-replica helpers: replica count, replica id and a differentiable
all-gather.

This is the one module in `keras_vl` that branches on the Keras backend for
collectives. Everything else (the contrastive losses in particular) calls
these functions and stays backend-neutral.

Why only TensorFlow needs real collectives here:

* **JAX.** `keras.distribution.DataParallel` (and `ModelParallel`) run one
  jitted program over *global* arrays that are sharded across devices. The
  loss code sees the whole global batch and XLA's SPMD partitioner inserts
  the all-gathers and reductions itself. Gathering again would be wrong, so
  every helper is the identity / single-replica answer.
* **PyTorch.** Keras' torch trainer runs one process on one device; there
  is no replica context to query, so the same single-replica answers apply.
* **TensorFlow.** A `tf.distribute` strategy (`MirroredStrategy`,
  `TPUStrategy`, `MultiWorkerMirroredStrategy`) runs the train step once per
  replica on that replica's *local* slice of the batch. To see the global
  batch a loss must gather the other replicas' tensors through the replica
  context, and the gather must be differentiable so that every replica's
  embeddings receive the gradient of every replica's loss.

Outside a replica context (eager code, a strategy's cross-replica scope, or
no strategy at all) the helpers report a single replica, so code written
against them behaves exactly like single-device code.
"""

from typing import Any

import keras
from keras import ops


def _tf_replica_context():
    """Returns the active `tf.distribute` replica context with more than one
    replica, or `None`.

    Only meaningful on the TensorFlow backend; the import is local so the
    other backends never load TensorFlow for this.
    """
    if keras.backend.backend() != "tensorflow":
        return None
    import tensorflow as tf

    # `None` in a cross-replica context (e.g. inside `strategy.scope()` but
    # outside `strategy.run`); a default single-replica context when no
    # strategy is active.
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync <= 1:
        return None
    return context


def num_replicas_in_sync() -> int:
    """Number of replicas that each run this code on a slice of the batch.

    Greater than 1 only on the TensorFlow backend inside a replica context of
    a `tf.distribute` strategy with several replicas (e.g. inside
    `model.fit` under `tf.distribute.MirroredStrategy` on two devices). Under
    JAX distribution the code sees the global batch, so this is 1.

    Returns:
        A Python `int` >= 1.

    Example:

    ```python
    from keras_vl import distribute

    distribute.num_replicas_in_sync()  # 1 outside tf.distribute
    ```
    """
    context = _tf_replica_context()
    if context is None:
        return 1
    return int(context.num_replicas_in_sync)


def batch_for_replicas(model: keras.Model, batch: Any) -> Any:
    """`batch` with its boolean tensors as int32 when `model` trains under
    a `tf.distribute` strategy with several replicas; unchanged otherwise.

    Keras' TensorFlow trainer builds such a model from its first
    distributed batch averaged over the replicas, which fails on booleans
    (a padding mask, a positives matrix). The integers are exact, and a
    functional model casts them back to the boolean inputs it declares.

    Args:
        model: The model being trained.
        batch: A nested structure of tensors (e.g. `(x, y, sample_weight)`
            from a task's `preprocess_samples`).

    Returns:
        The same structure.
    """
    if keras.backend.backend() != "tensorflow":
        return batch
    strategy = getattr(model, "distribute_strategy", None)
    if strategy is None or strategy.num_replicas_in_sync <= 1:
        return batch

    def as_int(x):
        if getattr(x, "dtype", None) is not None and x.dtype == "bool":
            return ops.cast(x, "int32")
        return x

    return keras.tree.map_structure(as_int, batch)


def replica_id() -> Any:
    """Index of the current replica among `num_replicas_in_sync()` replicas.

    Returns:
        A scalar int32 tensor; 0 whenever `num_replicas_in_sync()` is 1.

    Example:

    ```python
    from keras_vl import distribute

    int(distribute.replica_id())  # 0 outside tf.distribute
    ```
    """
    context = _tf_replica_context()
    if context is None:
        return ops.convert_to_tensor(0, dtype="int32")
    import tensorflow as tf

    # A Python int under some strategies and a tensor under others (TPU).
    return tf.cast(context.replica_id_in_sync_group, "int32")


def all_gather(x: Any, axis: int = 0) -> Any:
    """Concatenates `x` from every replica along `axis`, differentiably.

    On the TensorFlow backend inside a multi-replica `tf.distribute` replica
    context this is `tf.distribute.get_replica_context().all_gather`: every
    replica receives the same concatenation, in replica order, and the
    gradient flowing back into a replica's `x` is the sum over all replicas
    of the gradient of their result with respect to that replica's slice.
    Replicas may hold different sizes along `axis` (e.g. an uneven last
    batch). Everywhere else (JAX, PyTorch, a single replica) it returns `x`
    unchanged because `x` already is the global value.

    Args:
        x: A tensor or a nested structure (tuple, list, dict) of tensors of
            rank >= 1. A structure is gathered in one collective.
        axis: The axis to concatenate along.

    Returns:
        The gathered tensor(s), with the same structure as `x`.

    Example:

    ```python
    from keras_vl import distribute

    # Inside a compute_loss: see the whole global batch on every backend.
    all_images, all_texts = distribute.all_gather((z_img, z_txt), axis=0)
    ```
    """
    context = _tf_replica_context()
    if context is None:
        return x
    return context.all_gather(x, axis=axis)


def local_batch_offset(x: Any, axis: int = 0) -> Any:
    """Position of this replica's first row in `all_gather(x, axis)`.

    Equals `replica_id() * local_size` when every replica holds the same
    number of rows; it is computed from the gathered sizes so it stays right
    for an uneven last batch.

    Args:
        x: This replica's local tensor.
        axis: The axis that `all_gather` concatenates along.

    Returns:
        A scalar int32 tensor; 0 whenever `num_replicas_in_sync()` is 1.

    Example:

    ```python
    from keras_vl import distribute

    offset = distribute.local_batch_offset(z_img)
    labels = offset + keras.ops.arange(keras.ops.shape(z_img)[0])
    ```
    """
    context = _tf_replica_context()
    if context is None:
        return ops.convert_to_tensor(0, dtype="int32")
    import tensorflow as tf

    size = tf.reshape(tf.shape(x, out_type="int32")[axis], [1])
    sizes = context.all_gather(size, axis=0)
    earlier = tf.range(context.num_replicas_in_sync) < replica_id()
    return tf.reduce_sum(tf.where(earlier, sizes, tf.zeros_like(sizes)))
