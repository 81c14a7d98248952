"""Writing rows into a preallocated buffer, in place where that is safe.

A key/value cache is a buffer that a decoding loop fills one position per
step. `keras.ops.slice_update` is functional: compiled (JAX, TensorFlow
with XLA) the update happens in place anyway, but eager PyTorch clones the
whole buffer at every call, so each step costs time proportional to the
buffer's length. `write_rows` writes in place on PyTorch when no gradient
can flow through the buffer, and is `slice_update` everywhere else.
"""

from typing import Any

import keras
from keras import ops

__all__ = ["write_rows"]


def write_rows(buffer: Any, rows: Any, index: Any, axis: int) -> Any:
    """Writes `rows` into `buffer` from position `index` along `axis`.

    On PyTorch, outside `torch.compile` and when no gradient is recorded
    for either tensor, `buffer` is updated in place (`index_copy_`, with
    the positions as a tensor, so a tensor `index` costs no device sync)
    and returned. Only pass a buffer that nothing else reads afterwards,
    such as a cache made for one decoding loop. Elsewhere this is
    `keras.ops.slice_update`, which returns a new tensor (in place once
    compiled, when `buffer` is not used again).

    Args:
        buffer: The tensor to write into.
        rows: The values to write (cast to `buffer`'s dtype): `buffer`'s
            shape except along `axis`, where it is at most as long as what
            is left from `index`.
        index: The first position written along `axis` (int or scalar
            int tensor).
        axis: The axis the positions run along (non-negative).

    Returns:
        The updated buffer.

    Example:

    ```python
    from keras_vl.distribute.buffers import write_rows

    cache = keras.ops.zeros((1, 4, 8))
    cache = write_rows(cache, keras.ops.ones((1, 1, 8)), 2, axis=1)
    ```
    """
    if keras.backend.backend() == "torch":
        import torch

        grad = torch.is_grad_enabled() and (
            buffer.requires_grad or rows.requires_grad
        )
        if not grad and not torch.compiler.is_compiling():
            rows = rows.to(buffer.dtype)
            if isinstance(index, int):
                buffer.narrow(axis, index, rows.shape[axis]).copy_(rows)
                return buffer
            positions = torch.arange(rows.shape[axis], device=buffer.device)
            return buffer.index_copy_(axis, positions + index, rows)
    start = [0] * len(buffer.shape)
    start[axis] = index
    return ops.slice_update(buffer, start, ops.cast(rows, buffer.dtype))
