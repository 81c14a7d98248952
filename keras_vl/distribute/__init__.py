"""Backend-specific helpers.

The only place in `keras_vl` that branches on the backend for collectives
(see `keras_vl.distribute.replica` for why JAX and PyTorch need none) and
for compiler hints (`keras_vl.distribute.compiler`).
"""

from keras_vl.distribute.compiler import materialize_gradient
from keras_vl.distribute.replica import (
    all_gather,
    local_batch_offset,
    num_replicas_in_sync,
    replica_id,
)

__all__ = [
    "all_gather",
    "local_batch_offset",
    "materialize_gradient",
    "num_replicas_in_sync",
    "replica_id",
]
