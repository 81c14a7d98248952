"""Tests for the XLA compiler hints."""

import re

import keras
import numpy as np
import pytest
from conftest import backend, to_numpy

from keras_vl.distribute import materialize_gradient, remat
from keras_vl.layers import LayerNorm, TransformerEncoderBlock
from keras_vl.layers import transformer_encoder_block as transformer_module


def _value_and_gradient(f, x):
    """`f(x)` and `df/dx` for a scalar `f`, on the active backend."""
    if backend() == "jax":
        import jax

        value, grad = jax.value_and_grad(f)(x)
    elif backend() == "tensorflow":
        import tensorflow as tf

        x = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(x)
            value = f(x)
        grad = tape.gradient(value, x)
    else:
        import torch

        x = torch.tensor(x, requires_grad=True)
        value = f(x)
        value.backward()
        value, grad = value.detach(), x.grad
    return to_numpy(value), to_numpy(grad)


def test_materialize_gradient_is_the_identity():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 5, 4)).astype("float32")
    weights = rng.normal(size=(3, 5, 4)).astype("float32")

    def loss(through):
        w = keras.ops.convert_to_tensor(weights)
        return lambda v: keras.ops.sum(keras.ops.sin(through(v)) * w)

    np.testing.assert_array_equal(
        to_numpy(materialize_gradient(keras.ops.convert_to_tensor(x))), x
    )
    value, grad = _value_and_gradient(loss(materialize_gradient), x)
    expected_value, expected_grad = _value_and_gradient(loss(lambda v: v), x)
    np.testing.assert_array_equal(value, expected_value)
    np.testing.assert_array_equal(grad, expected_grad)
    np.testing.assert_allclose(grad, np.cos(x) * weights, rtol=1e-6)


def test_materialize_gradient_passes_nan_and_empty_gradients():
    x = np.array([[np.nan, 1.0], [2.0, 3.0]], dtype="float32")
    _, grad = _value_and_gradient(
        lambda v: keras.ops.sum(materialize_gradient(v) * v), x
    )
    np.testing.assert_array_equal(grad, 2 * x)  # NaN stays NaN
    empty = np.zeros((0, 3), dtype="float32")
    _, grad = _value_and_gradient(
        lambda v: keras.ops.sum(materialize_gradient(v)), empty
    )
    assert grad.shape == (0, 3)


def _largest_backward_fusion(depth: int) -> int:
    """Operand count of the largest fusion in the compiled gradient of a
    `depth`-block encoder on XLA:CPU."""
    import jax

    keras.utils.set_random_seed(0)
    blocks = [TransformerEncoderBlock(2, mlp_dim=32) for _ in range(depth)]
    inputs = keras.Input((8, 16))
    outputs = inputs
    for block in blocks:
        outputs = block(outputs)
    model = keras.Model(inputs, outputs)
    trainable = [v.value for v in model.trainable_variables]

    def loss(trainable, x):
        y, _ = model.stateless_call(trainable, [], x)
        return jax.numpy.sum(y**2)

    x = np.ones((2, 8, 16), "float32")
    hlo = jax.jit(jax.grad(loss)).lower(trainable, x).compile().as_text()
    headers = [h for h in hlo.splitlines() if h.startswith("%fused_")]
    return max(len(re.findall(r"param_\d+", h)) for h in headers)


@pytest.mark.skipif(backend() != "jax", reason="XLA:CPU fusion, JAX only")
def test_encoder_gradient_fusions_stay_bounded_in_depth(monkeypatch):
    # With the hint, each block's backward fusions read stored gradients,
    # so the largest one is the same for 2 and 6 blocks.
    assert _largest_backward_fusion(6) == _largest_backward_fusion(2)

    # Without it, and with layer norms differentiated by autodiff (Keras'
    # own), XLA:CPU re-fuses the residual gradient chain of all later
    # blocks into each block: the largest fusion grows with depth. (If this
    # fails, XLA has stopped doing that and the hint may be unnecessary.)
    # keras_vl's `LayerNorm`, whose gradient is written out, does not set
    # off that re-fusion; the hint guards every other norm and MLP.
    monkeypatch.setattr(transformer_module, "materialize_gradient", lambda x: x)
    monkeypatch.setattr(LayerNorm, "call", keras.layers.LayerNormalization.call)
    assert _largest_backward_fusion(6) > 2 * _largest_backward_fusion(2)


def _block(x, w):
    """A residual tanh MLP; its activations are what remat drops."""
    h = keras.ops.tanh(keras.ops.matmul(x, w))
    return x + keras.ops.tanh(keras.ops.matmul(h, keras.ops.transpose(w)))


def test_remat_keeps_values_and_gradients():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(3, 4)).astype("float32")
    w = rng.normal(size=(4, 6)).astype("float32")
    weights = rng.normal(size=(3, 4)).astype("float32")

    def loss(through):
        def f(v):
            w_ = keras.ops.convert_to_tensor(w)
            # A mask from the closure, as a block's padding mask would be.
            mask = keras.ops.cast(keras.ops.arange(4) < 3, "float32")
            out = through(lambda a, b: _block(a * mask, b))(v, w_)
            return keras.ops.sum(out * keras.ops.convert_to_tensor(weights))

        return f

    value, grad = _value_and_gradient(loss(remat), x)
    expected_value, expected_grad = _value_and_gradient(loss(lambda f: f), x)
    np.testing.assert_allclose(value, expected_value, rtol=1e-6)
    np.testing.assert_allclose(grad, expected_grad, rtol=1e-5, atol=1e-6)
    assert np.abs(expected_grad).max() > 1e-2


def test_remat_refuses_what_is_not_callable():
    with pytest.raises(TypeError, match="`function` must be callable"):
        remat("block")


def _jax_gradients(wrap, x, w):
    """Under `jit`: the gradients with respect to `x`, `w` and a scale
    that the wrapped function closes over, of a function with nested,
    integer and stopped outputs."""
    import jax
    import jax.numpy as jnp

    def loss(x, w, scale):
        def block(x, w):
            h = jnp.tanh((x * scale) @ w.astype(x.dtype))
            return {
                "y": (h @ w.T.astype(x.dtype),),
                "ids": jnp.argmax(h, -1),
                "stat": jax.lax.stop_gradient(jnp.mean(h)),
            }

        out = wrap(block)(x, w)
        y = out["y"][0].astype("float32")
        return jnp.sum(y**2) + out["stat"], out["ids"]

    grad = jax.jit(jax.grad(loss, argnums=(0, 1, 2), has_aux=True))
    return grad(x, w, np.float32(0.7))


@pytest.mark.skipif(backend() != "jax", reason="JAX's own remat on CPU")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_jax_cpu_remat_gradients_with_closure_and_integer_outputs(dtype):
    import jax.numpy as jnp

    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.normal(size=(5, 4)), dtype)
    w = jnp.asarray(rng.normal(size=(4, 3)), "float32")
    grads, ids = _jax_gradients(remat, x, w)
    expected_grads, expected_ids = _jax_gradients(lambda f: f, x, w)
    np.testing.assert_array_equal(ids, expected_ids)
    # Mixed precision: each gradient keeps its input's dtype.
    assert [g.dtype for g in grads] == [x.dtype, w.dtype, jnp.float32]
    tolerance = 1e-6 if dtype == "float32" else 2e-2
    for g, e in zip(grads, expected_grads, strict=True):
        g, e = np.asarray(g, "float32"), np.asarray(e, "float32")
        assert np.abs(e).max() > 1e-2
        np.testing.assert_allclose(g, e, rtol=tolerance, atol=tolerance)


@pytest.mark.skipif(backend() != "jax", reason="JAX's own remat on CPU")
def test_jax_cpu_remat_passes_nan_gradients():
    import jax

    x = np.ones((2, 4), "float32")
    w = np.full((4, 3), 0.5, "float32")
    weights = np.ones((2, 4), "float32")
    weights[0, 0] = np.nan  # The gradient that remat's `cond` reads.

    def loss(wrap):
        return lambda x: keras.ops.sum(wrap(_block)(x, w) * weights)

    grad = jax.jit(jax.grad(loss(remat)))(x)
    np.testing.assert_array_equal(grad, jax.grad(loss(lambda f: f))(x))
    assert np.isnan(grad).any() and not np.isnan(grad).all()


def _compiled_temp_bytes(wrap, depth: int) -> int:
    """XLA's temporary memory for the gradient of `depth` blocks, each
    run through `wrap`."""
    import jax

    def loss(ws, x):
        for w in ws:
            x = wrap(_block)(x, w)
        return keras.ops.sum(x**2)

    ws = [np.full((128, 512), 0.01, "float32") for _ in range(depth)]
    x = np.ones((64, 128), "float32")
    compiled = jax.jit(jax.grad(loss)).lower(ws, x).compile()
    return compiled.memory_analysis().temp_size_in_bytes


@pytest.mark.skipif(backend() != "jax", reason="XLA:CPU scheduling, JAX only")
def test_jax_cpu_remat_memory_stays_flat_in_depth():
    import jax

    # One block's activations at a time: as deep, as much memory.
    shallow, deep = (_compiled_temp_bytes(remat, d) for d in (2, 8))
    assert deep < 1.1 * shallow
    plain = _compiled_temp_bytes(lambda f: f, 8)
    assert deep < 0.6 * plain

    # `jax.checkpoint` saves nothing on XLA:CPU, which schedules the
    # recomputation early. (If this fails, XLA has stopped doing that and
    # `remat` may be `keras.remat` there too.)
    assert _compiled_temp_bytes(jax.checkpoint, 8) > 0.9 * plain
