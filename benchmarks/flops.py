"""The benchmarks' sizes and their analytic FLOP model.

FLOPs are matmul FLOPs only, 2 per multiply-add, of the forward pass; a
training step counts 3 x forward (backward ~ 2 x forward). Embedding
lookups, norms, softmax, the renderer and the optimizer are not counted.
"""

import dataclasses


@dataclasses.dataclass(frozen=True)
class Dims:
    """Tower and batch sizes shared by every row."""

    image_size: int
    patch_size: int
    width: int
    depth: int
    num_heads: int
    mlp_dim: int
    seq_len: int
    vocab_size: int
    batch_size: int

    @property
    def num_patches(self) -> int:
        return (self.image_size // self.patch_size) ** 2


def block_flops(tokens: int, width: int, mlp_dim: int) -> int:
    """Forward matmul FLOPs of one pre-LN transformer encoder block."""
    n, d, m = tokens, width, mlp_dim
    return 8 * n * d * d + 4 * n * d * m + 4 * n * n * d


def map_head_flops(tokens: int, width: int, mlp_dim: int) -> int:
    """Forward matmul FLOPs of attention-probe (MAP) pooling."""
    n, d, m = tokens, width, mlp_dim
    return 4 * d * d + 4 * n * d * d + 4 * n * d + 4 * d * m


def vit_flops(dims: Dims, out_dim: int | None = None) -> int:
    """One image through a MAP-pooled ViT (+ optional linear head)."""
    n, d = dims.num_patches, dims.width
    flops = 2 * n * (dims.patch_size**2 * 3) * d
    flops += dims.depth * block_flops(n, d, dims.mlp_dim)
    flops += map_head_flops(n, d, dims.mlp_dim)
    if out_dim:
        flops += 2 * d * out_dim
    return flops


def text_flops(dims: Dims) -> int:
    """One text through the text tower (embedding lookups are free)."""
    d = dims.width
    flops = dims.depth * block_flops(dims.seq_len, d, dims.mlp_dim)
    return flops + 2 * d * d


def step_flops(dims: Dims, forward_per_pair: int) -> float:
    """fwd + bwd (= 3 x fwd) of the towers on `B` pairs, plus the loss."""
    b = dims.batch_size
    return 3.0 * (b * forward_per_pair + 2 * b * b * dims.width)
