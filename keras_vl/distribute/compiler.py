"""Hints to the XLA compiler that keep it from repeating work or memory.

`materialize_gradient` is an identity whose gradient XLA:CPU must compute
once and store. Without it, the backward pass of a deep residual network is
quadratic in its depth on CPU: the gradient of the residual stream is a chain
of cheap elementwise sums (one per LayerNorm and residual branch), and XLA's
CPU fusion copies the whole chain so far into every layer's consumers (the
transposes feeding the weight-gradient matmuls) instead of reading one stored
result. At ViT-S/16 on 224 px this fusion alone takes over a third of a
training step, and its share grows with depth.

XLA:CPU drops `optimization_barrier`, but it never fuses across a conditional
whose predicate is only known at run time. So the gradient passes through a
`cond` whose branches both return it unchanged. Other backends and
accelerators fuse differently and get a plain identity.

`remat` is `keras.remat` except on JAX on CPU, for the same reason: the
optimization barriers with which `jax.checkpoint` keeps a block's
recomputation in the backward pass are dropped there, so XLA:CPU schedules
the recomputation as early as it likes (next to the forward pass) and keeps
as many activations alive as without remat. There the recomputation starts
from inputs passed through a `cond` whose predicate reads the block's
output gradient, which only exists once the backward pass reaches the block.
"""

import functools
import weakref
from collections.abc import Callable
from typing import Any

import keras


def materialize_gradient(x: Any) -> Any:
    """Returns `x`; on JAX on CPU its gradient is computed once and stored.

    Apply it to the residual stream at the start of each transformer block.
    The forward value and the gradient are exactly those of the identity;
    only how XLA:CPU schedules the backward pass changes.

    Args:
        x: A tensor.

    Returns:
        `x` itself.

    Example:

    ```python
    x = keras_vl.distribute.materialize_gradient(x)
    ```
    """
    if keras.backend.backend() != "jax":
        return x
    import jax

    if jax.default_backend() != "cpu":
        return x
    return _jax_identity_with_stored_gradient()(x)


@functools.cache
def _jax_identity_with_stored_gradient():
    import jax

    @jax.custom_vjp
    def identity(x):
        return x

    # `g` through a `cond` on itself: XLA cannot know which branch runs, so
    # it must compute `g` once and store it.
    identity.defvjp(lambda x: (x, None), lambda _, g: (_after(g, g),))
    return identity


def remat(function: Callable) -> Callable:
    """`function`, rematerialised: the backward pass recomputes its
    intermediates instead of keeping them from the forward pass.

    `keras.remat(function)`, except on JAX on CPU, where the recomputation
    is made to wait for the gradient of `function`'s outputs (see the
    module's notes), so that only the inputs stay alive between the passes.
    Outputs and gradients are those of `function`.

    Args:
        function: A pure function of tensors (nested structures allowed,
            integer and boolean ones included), returning tensors. What it
            is differentiated with respect to must be among its arguments:
            TensorFlow's recomputation drops gradients through tensors it
            closes over. On JAX on CPU it is traced once per call of the
            result.

    Returns:
        A function with `function`'s arguments and results.

    Example:

    ```python
    def block(x, w):
        return keras.ops.tanh(x @ w) @ w
    y = keras_vl.distribute.remat(block)(x, w)
    ```
    """
    if not callable(function):
        raise TypeError(
            f"`function` must be callable. Received: function={function!r}"
        )
    if keras.backend.backend() == "jax":
        import jax

        if jax.default_backend() == "cpu":
            return functools.partial(_jax_deferred_remat, function)
    return keras.remat(function)


def _jax_deferred_remat(function, *args):
    import jax

    # Tracers that `function` closes over and that a gradient may flow
    # through become explicit arguments: a custom VJP sees only those.
    # (JAX caches the conversion by function, hence the weak reference:
    # the closure may hold large arrays.)
    converted, hoisted = jax.closure_convert(_WeakCall(function), *args)

    @jax.custom_vjp
    def call(*inputs):
        return converted(*inputs)

    def forward(*inputs):
        return converted(*inputs), inputs

    def backward(inputs, cotangent):
        inputs = _after(cotangent, inputs)
        _, pullback = jax.vjp(converted, *inputs)
        return pullback(cotangent)

    call.defvjp(forward, backward)
    return call(*args, *hoisted)


class _WeakCall:
    """Calls a function that it holds by weak reference."""

    def __init__(self, function):
        try:
            self.function = weakref.ref(function)
        except TypeError:  # Some built-in callables have no weak references.
            self.function = lambda: function

    def __call__(self, *args):
        return self.function()(*args)


def _after(cotangent, values):
    """`values`, through a `cond` on `cotangent`: XLA fuses nothing across
    it, and what is computed from the result cannot start before
    `cotangent` is known."""
    import jax
    import jax.numpy as jnp

    def is_float(x):
        return jnp.issubdtype(x.dtype, jnp.floating)

    firsts = [
        c[(0,) * c.ndim]
        for c in jax.tree.leaves(cotangent)
        if is_float(c) and c.size
    ]
    if not firsts:
        return values
    # Every output's gradient, in case some are known early (zeros).
    known = jnp.all(jnp.stack([x == x for x in firsts]))
    # Both branches return `values`; the second (`* 1`: JAX would drop a
    # `cond` that only forwards its operands) runs when one is NaN.
    return jax.lax.cond(
        known,
        lambda v: v,
        lambda v: jax.tree.map(lambda x: x * 1 if is_float(x) else x, v),
        values,
    )
