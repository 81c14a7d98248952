"""Backend-specific helpers.

The only place in `keras_vl` that branches on the backend: collectives
(see `keras_vl.distribute.replica` for why JAX and PyTorch need none),
compiler hints (`keras_vl.distribute.compiler`), the pieces of a skippable
training step (`keras_vl.distribute.steps`), and, for the library's own
layers, tracing state (`keras_vl.distribute.tracing`), cached XLA programs
(`keras_vl.distribute.xla_cache`), TensorFlow graph interop for `tf.data`
(`keras_vl.distribute.tf_interop`), the gradients of an accumulated
contrastive step (`keras_vl.distribute.accumulation`), the JAX ring of
the sigmoid loss (`keras_vl.distribute.ring`, used by `keras_vl.losses`)
and compiled inference on one batch (`keras_vl.distribute.inference`).
Those last six are internal helpers, imported from their modules rather
than exported here.
"""

from keras_vl.distribute.compiler import materialize_gradient, remat
from keras_vl.distribute.replica import (
    all_gather,
    batch_for_replicas,
    local_batch_offset,
    num_replicas_in_sync,
    replica_id,
)
from keras_vl.distribute.steps import all_finite, apply_if, with_train_log

__all__ = [
    "all_finite",
    "all_gather",
    "apply_if",
    "batch_for_replicas",
    "local_batch_offset",
    "materialize_gradient",
    "num_replicas_in_sync",
    "remat",
    "replica_id",
    "with_train_log",
]
