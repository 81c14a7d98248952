"""Position embeddings added to patch or token sequences."""

import math

import keras
import numpy as np
from keras import ops

from keras_vl.ops import pair

POSEMB_TYPES = ("learn", "sincos2d")


def sincos2d_embedding(
    height: int, width: int, dim: int, temperature: float = 10_000.0
) -> np.ndarray:
    """Fixed 2-D sin-cos position embedding (MoCo v3), `[1, h * w, dim]`.

    For patch row `y`, column `x` and `omega_k = temperature ** -(k / (d-1))`
    with `d = dim / 4`, the embedding is `[sin(x w), cos(x w), sin(y w),
    cos(y w)]`, rows in row-major (y, x) order.
    """
    if dim % 4:
        raise ValueError(
            f"sincos2d needs a width divisible by 4. Received: width={dim}"
        )
    quarter = dim // 4
    omega = np.arange(quarter, dtype=np.float32) / max(quarter - 1, 1)
    omega = 1.0 / temperature**omega
    y, x = np.mgrid[:height, :width].astype(np.float32)
    x = np.einsum("m,d->md", x.reshape(-1), omega)
    y = np.einsum("m,d->md", y.reshape(-1), omega)
    table = np.concatenate([np.sin(x), np.cos(x), np.sin(y), np.cos(y)], 1)
    return table[None].astype(np.float32)


def _linear_zoom_axis(values: np.ndarray, axis: int, size: int) -> np.ndarray:
    """Linear interpolation of `values` along `axis` onto `size` points.

    The first and last points keep their positions (corner-aligned, as
    `scipy.ndimage.zoom` without `grid_mode`), so a new point `j` reads
    the old coordinate `j * (old - 1) / (size - 1)`.
    """
    old = values.shape[axis]
    step = (old - 1) / (size - 1) if size > 1 else 1.0
    coords = np.arange(size, dtype=np.float64) * step
    low = np.clip(np.floor(coords).astype(np.int64), 0, old - 1)
    high = np.minimum(low + 1, old - 1)
    shape = [1] * values.ndim
    shape[axis] = size
    frac = (coords - low).reshape(shape)
    return (1.0 - frac) * np.take(values, low, axis) + frac * np.take(
        values, high, axis
    )


def square_grid_side(num_tokens: int, num_prefix_tokens: int = 0) -> int:
    """The side of the square patch grid behind a position embedding of
    `num_tokens` rows, the first `num_prefix_tokens` of which (e.g. a
    class token) are not part of the grid.

    Raises:
        ValueError: If the grid rows are not a square number.

    Example:

    >>> square_grid_side(37, num_prefix_tokens=1)
    6
    """
    length = num_tokens - num_prefix_tokens
    side = math.isqrt(max(length, 0))
    if length <= 0 or side * side != length:
        raise ValueError(
            f"A position embedding with {length} grid rows (of "
            f"{num_tokens}) does not cover a square patch grid: {length} is "
            "not a square number. Give the grid or image size explicitly."
        )
    return side


def resample_position_embedding(
    embedding: np.ndarray,
    new_grid: int | tuple[int, int],
    old_grid: int | tuple[int, int] | None = None,
    num_prefix_tokens: int = 0,
) -> np.ndarray:
    """Resizes a learned 2-D position embedding to another patch grid.

    This is big_vision's `resample_posemb` ("high-res fine-tuning"): the
    rows are laid out as an `[h, w, D]` grid and linearly interpolated
    (`scipy.ndimage.zoom(grid, zoom, order=1)`) to the new grid. Rows in
    front of the grid (a class token) are kept as they are.

    Args:
        embedding: `[1, P + h * w, D]` array.
        new_grid: Patches `(H, W)` (or a side) of the new grid.
        old_grid: Patches `(h, w)` (or a side) of the stored grid; by
            default the square grid the row count implies.
        num_prefix_tokens: `P`, leading rows that are not on the grid.

    Returns:
        `[1, P + H * W, D]`, in `embedding`'s dtype; `embedding` itself
        when the grids are equal.

    Example:

    >>> posemb = np.random.normal(size=(1, 36, 8)).astype("float32")
    >>> resample_position_embedding(posemb, 24).shape
    (1, 576, 8)
    """
    embedding = np.asarray(embedding)
    if embedding.ndim != 3 or embedding.shape[0] != 1:
        raise ValueError(
            "`embedding` must have shape [1, N, D]. Received shape "
            f"{embedding.shape}"
        )
    if num_prefix_tokens < 0:
        raise ValueError(
            "`num_prefix_tokens` must be >= 0. Received: "
            f"num_prefix_tokens={num_prefix_tokens}"
        )
    new_grid = pair(new_grid, "new_grid")
    if old_grid is None:
        old_grid = square_grid_side(embedding.shape[1], num_prefix_tokens)
    old_grid = pair(old_grid, "old_grid")
    if num_prefix_tokens + math.prod(old_grid) != embedding.shape[1]:
        raise ValueError(
            f"`embedding` has {embedding.shape[1]} rows; a grid of "
            f"{old_grid} with {num_prefix_tokens} prefix tokens needs "
            f"{num_prefix_tokens + math.prod(old_grid)}."
        )
    if new_grid == old_grid:
        return embedding
    prefix = embedding[:, :num_prefix_tokens]
    grid = embedding[0, num_prefix_tokens:].astype(np.float64)
    grid = grid.reshape(*old_grid, -1)
    for axis in (0, 1):
        grid = _linear_zoom_axis(grid, axis, new_grid[axis])
    grid = grid.reshape(1, -1, embedding.shape[-1]).astype(embedding.dtype)
    return np.concatenate([prefix, grid], axis=1)


@keras.saving.register_keras_serializable(package="keras_vl")
class PositionEmbedding(keras.layers.Layer):
    """Adds a position embedding to a token grid or sequence.

    The input is `[B, N, D]` (a sequence) or `[B, h, w, D]` (a patch grid);
    the output has the same shape. The embedding is stored flat as
    `[1, N, D]` (N = h * w for grids), the layout of big_vision checkpoints.

    Args:
        posemb: `"learn"` for a trained embedding initialised from a normal
            distribution with std `1 / sqrt(D)`, or `"sincos2d"` for the
            fixed 2-D sin-cos embedding (grid inputs only, `D % 4 == 0`).
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).

    Example:

    ```python
    layer = keras_vl.layers.PositionEmbedding("sincos2d")
    grid = layer(np.zeros((2, 14, 14, 64)))  # same shape, posemb added
    ```
    """

    def __init__(self, posemb: str = "learn", **kwargs):
        super().__init__(**kwargs)
        if posemb not in POSEMB_TYPES:
            raise ValueError(
                f"`posemb` must be one of {POSEMB_TYPES}. "
                f"Received: posemb={posemb!r}"
            )
        self.posemb = posemb

    def build(self, input_shape):
        if len(input_shape) not in (3, 4) or None in input_shape[1:]:
            raise ValueError(
                "`PositionEmbedding` expects a fully defined `[B, N, D]` "
                f"or `[B, h, w, D]` input. Received shape {input_shape}"
            )
        *spatial, dim = input_shape[1:]
        length = math.prod(spatial)
        # `(h, w)` for patch grids, so the embedding can be resampled.
        self.grid_shape = tuple(spatial) if len(spatial) == 2 else None
        if self.posemb == "learn":
            self.embedding = self.add_weight(
                name="embedding",
                shape=(1, length, dim),
                initializer=keras.initializers.RandomNormal(
                    stddev=1.0 / math.sqrt(dim)
                ),
            )
        else:
            if len(spatial) != 2:
                raise ValueError(
                    "`posemb='sincos2d'` needs a `[B, h, w, D]` patch grid. "
                    f"Received shape {input_shape}"
                )
            self.embedding = sincos2d_embedding(*spatial, dim)

    def call(self, inputs):
        embedding = ops.cast(self.embedding, inputs.dtype)
        embedding = ops.reshape(embedding, (1, *inputs.shape[1:]))
        return inputs + embedding

    def compute_output_shape(self, input_shape):
        return tuple(input_shape)

    def compute_output_spec(self, inputs):
        # Shape only: NumPy inputs work as well as symbolic ones.
        shape = self.compute_output_shape(tuple(inputs.shape))
        return keras.KerasTensor(shape, dtype=self.compute_dtype)

    def get_config(self):
        config = super().get_config()
        config.update({"posemb": self.posemb})
        return config
