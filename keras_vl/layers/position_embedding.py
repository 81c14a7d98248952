"""Position embeddings added to patch or token sequences."""

import math

import keras
import numpy as np
from keras import ops

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
