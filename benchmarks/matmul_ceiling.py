"""The matmul ceilings the benchmarks divide achieved FLOP/s by.

Each is the best of a few `n x n` matmuls (float32 unless asked otherwise)
on the backend's own kernel, measured in the same run as the rows it
normalises: `n = 2048` on a CPU, 8192 on an accelerator (a 2048 matmul is
too small to fill a GPU).
"""

import time


def jax_matmul_ceiling(
    n: int | None = None, repeats: int = 5, dtype: str = "float32"
) -> float:
    import jax
    import jax.numpy as jnp

    if n is None:
        n = 2048 if jax.default_backend() == "cpu" else 8192
    a = jax.random.normal(jax.random.PRNGKey(0), (n, n), dtype)
    b = jax.random.normal(jax.random.PRNGKey(1), (n, n), dtype)
    matmul = jax.jit(jnp.matmul)
    for _ in range(3):  # compile, then let the clocks settle
        matmul(a, b).block_until_ready()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        matmul(a, b).block_until_ready()
        times.append(time.perf_counter() - start)
    return 2.0 * n**3 / min(times)


def torch_matmul_ceiling(n: int = 2048, repeats: int = 5) -> float:
    import torch

    generator = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=generator)
    b = torch.randn(n, n, generator=generator)
    torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2.0 * n**3 / min(times)
