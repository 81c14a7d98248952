"""A stack of pre-LN encoder blocks with a final LayerNorm."""

import re
from collections.abc import Callable

import keras

from keras_vl.layers.layer_norm import LayerNorm
from keras_vl.layers.remat import block_caller
from keras_vl.layers.transformer_encoder_block import TransformerEncoderBlock

# (width, depth, mlp_dim, num_heads) of big_vision's named sizes, shared by
# its ViT and its text transformer.
ENCODER_SIZES = {
    "mu": (32, 1, 128, 2),
    "Ti": (192, 12, 768, 3),
    "S": (384, 12, 1536, 6),
    "M": (512, 12, 2048, 8),
    "B": (768, 12, 3072, 12),
    "L": (1024, 24, 4096, 16),
    "So400m": (1152, 27, 4304, 16),
    "H": (1280, 32, 5120, 16),
    "g": (1408, 40, 6144, 16),
    "e": (1792, 56, 15360, 16),
}


def encoder_size(variant: str) -> dict:
    """Encoder arguments of a named size, e.g. `"B"` or `"B/16"`.

    Args:
        variant: `"<size>"` or `"<size>/<patch>"` with size one of `mu, Ti,
            S, M, B, L, So400m, H, g, e`.

    Returns:
        A dict with `width`, `depth`, `mlp_dim`, `num_heads` and, when the
        variant names one, `patch_size`.

    Example:

    ```python
    keras_vl.layers.encoder_size("S/16")
    # {'width': 384, 'depth': 12, 'mlp_dim': 1536, 'num_heads': 6,
    #  'patch_size': 16}
    ```
    """
    match = re.fullmatch(r"(\w+?)(?:/(\d+))?", str(variant))
    if not match or match.group(1) not in ENCODER_SIZES:
        raise ValueError(
            f"Unknown `variant` {variant!r}. Expected '<size>' or "
            f"'<size>/<patch>' with size in {sorted(ENCODER_SIZES)}, "
            "e.g. 'B/16'."
        )
    width, depth, mlp_dim, num_heads = ENCODER_SIZES[match.group(1)]
    size = dict(width=width, depth=depth, mlp_dim=mlp_dim, num_heads=num_heads)
    if match.group(2):
        size["patch_size"] = int(match.group(2))
    return size


@keras.saving.register_keras_serializable(package="keras_vl")
class TransformerEncoder(keras.layers.Layer):
    """`depth` pre-LN `TransformerEncoderBlock`s, then a final LayerNorm.

    The encoder of big_vision's ViT and text transformer, shared by every
    keras_vl model. Blocks are named `encoderblock_{i}` and the norm
    `encoder_norm`, as in big_vision checkpoints.

    Each block's MLP comes from `mlp_factory(i)`; returning `None` keeps the
    dense `MlpBlock`. That is how a sparse mixture of experts goes into
    every other block. A per-token `side_input` given to `call` (a modality
    id, a padding mask, ...) reaches every MLP whose `call` takes a
    `side_input` argument.

    Args:
        depth: int. Number of blocks.
        num_heads: int. Attention heads; must divide the token width.
        mlp_dim: int. Hidden width of the dense MLPs.
        mlp_factory: Optional callable `i -> layer or None` giving block
            `i`'s MLP (0-based), or a list with one entry (a layer, its
            serialized config, or None) per block. `get_config` stores the
            layers as such a list, not the callable.
        dropout_rate: float. Dropout on the residual branches.
        attention_dropout_rate: float. Dropout on the attention weights.
        layer_norm_epsilon: float. Epsilon of every LayerNorm (1e-6 as in
            big_vision).
        remat: bool. Rematerialise each block: its activations are not
            kept for the backward pass but recomputed there (see
            `rematerialized_call`), trading one more forward pass of the
            blocks for memory. Outputs and gradients do not change.
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).

    Example:

    ```python
    encoder = keras_vl.layers.TransformerEncoder(
        depth=4, num_heads=4, mlp_dim=256
    )
    y = encoder(np.zeros((2, 16, 64)))  # (2, 16, 64)

    # A different MLP in every other block (0-based blocks 1 and 3).
    wide = keras_vl.layers.TransformerEncoder(
        depth=4, num_heads=4, mlp_dim=256,
        mlp_factory=lambda i: keras_vl.layers.MlpBlock(1024) if i % 2 else None,
    )

    # Less memory in training: blocks are recomputed in the backward pass.
    deep = keras_vl.layers.TransformerEncoder(
        depth=24, num_heads=4, mlp_dim=256, remat=True
    )
    ```
    """

    def __init__(
        self,
        depth: int,
        num_heads: int,
        mlp_dim: int,
        mlp_factory: Callable[[int], keras.layers.Layer | None]
        | list
        | None = None,
        dropout_rate: float = 0.0,
        attention_dropout_rate: float = 0.0,
        layer_norm_epsilon: float = 1e-6,
        remat: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not isinstance(remat, bool):
            raise TypeError(
                f"`remat` must be a bool. Received: remat={remat!r}"
            )
        if not isinstance(depth, int) or isinstance(depth, bool) or depth < 0:
            raise ValueError(
                f"`depth` must be an int >= 0. Received: depth={depth!r}"
            )
        if isinstance(mlp_factory, list | tuple):
            if len(mlp_factory) != depth:
                raise ValueError(
                    f"A list `mlp_factory` needs one entry per block "
                    f"({depth}). Received {len(mlp_factory)} entries."
                )
            mlp_factory = list(mlp_factory).__getitem__
        if mlp_factory is not None and not callable(mlp_factory):
            raise TypeError(
                "`mlp_factory` must be a callable `i -> layer or None` or a "
                "list with one entry per block. "
                f"Received: {type(mlp_factory).__name__}"
            )
        self.depth = depth
        self.num_heads = int(num_heads)
        self.mlp_dim = int(mlp_dim)
        self.dropout_rate = float(dropout_rate)
        self.attention_dropout_rate = float(attention_dropout_rate)
        self.layer_norm_epsilon = float(layer_norm_epsilon)
        self.remat = remat
        self.blocks = [
            TransformerEncoderBlock(
                self.num_heads,
                self.mlp_dim,
                mlp=self._custom_mlp(mlp_factory, i),
                dropout_rate=self.dropout_rate,
                attention_dropout_rate=self.attention_dropout_rate,
                layer_norm_epsilon=self.layer_norm_epsilon,
                dtype=self.dtype_policy,
                name=f"encoderblock_{i}",
            )
            for i in range(depth)
        ]
        self.norm = LayerNorm(
            epsilon=self.layer_norm_epsilon,
            dtype=self.dtype_policy,
            name="encoder_norm",
        )

    @staticmethod
    def _custom_mlp(mlp_factory, index):
        if mlp_factory is None:
            return None
        mlp = mlp_factory(index)
        if isinstance(mlp, dict):
            mlp = keras.saving.deserialize_keras_object(mlp)
        if mlp is not None and not isinstance(mlp, keras.layers.Layer):
            raise TypeError(
                f"`mlp_factory({index})` must return a Keras layer or None. "
                f"Received: {type(mlp).__name__}"
            )
        return mlp

    def build(self, input_shape):
        for block in self.blocks:
            block.build(input_shape)
        self.norm.build(input_shape)

    def call(self, tokens, side_input=None, attention_mask=None, training=None):
        """Runs every block, then the final LayerNorm.

        Args:
            tokens: `[B, N, D]`.
            side_input: Optional per-token data passed to MLPs that take it
                (see `TransformerEncoderBlock`).
            attention_mask: Optional boolean mask, `True` = may attend.
            training: Whether dropout (and noisy routing) is active.
        """
        call, training = block_caller(self.remat, training)
        for block in self.blocks:
            tokens = call(
                block,
                tokens,
                side_input=side_input,
                attention_mask=attention_mask,
                training=training,
            )
        return self.norm(tokens)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        custom = [block.get_config()["mlp"] for block in self.blocks]
        config.update(
            {
                "depth": self.depth,
                "num_heads": self.num_heads,
                "mlp_dim": self.mlp_dim,
                "dropout_rate": self.dropout_rate,
                "attention_dropout_rate": self.attention_dropout_rate,
                "layer_norm_epsilon": self.layer_norm_epsilon,
                "remat": self.remat,
                "mlp_factory": custom if any(custom) else None,
            }
        )
        return config
