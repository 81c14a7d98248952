"""Tests for the XLA compiler hints."""

import re

import keras
import numpy as np
import pytest
from conftest import backend, to_numpy

from keras_vl.distribute import materialize_gradient
from keras_vl.layers import TransformerEncoderBlock
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

    # Without it, XLA:CPU re-fuses the residual gradient chain of all later
    # blocks into each block: the largest fusion grows with depth. (If this
    # fails, XLA has stopped doing that and the hint may be unnecessary.)
    monkeypatch.setattr(transformer_module, "materialize_gradient", lambda x: x)
    assert _largest_backward_fusion(6) > 2 * _largest_backward_fusion(2)
