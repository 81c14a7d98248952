"""Numerics shared by the models, written with `keras.ops`."""

import keras
from keras import ops


def l2_normalize(x, epsilon: float = 1e-8):
    """`x / (||x|| + epsilon)` along the last axis, as in big_vision.

    The norm is taken in float32 (a bfloat16 sum of squares loses too much
    precision); the result has the dtype of `x`, so a mixed-precision model
    keeps its compute dtype end to end.

    Args:
        x: A float tensor or array `[..., D]` (anything with a `dtype`).
        epsilon: Added to the norm, not to its square (big_vision's rule),
            so an all-zero row stays zero.

    Returns:
        A tensor of the shape and dtype of `x` whose rows have unit norm.

    Example:

    ```python
    z = np.array([[3.0, 4.0]], "float32")
    keras_vl.ops.l2_normalize(z)  # [[0.6, 0.8]]
    ```
    """
    dtype = keras.backend.standardize_dtype(x.dtype)
    wide = ops.cast(x, "float32")
    norm = ops.sqrt(ops.sum(ops.square(wide), axis=-1, keepdims=True))
    return ops.cast(wide / (norm + epsilon), dtype)


def layer_norm(x, gamma, beta, epsilon: float):
    """Layer normalisation over the last axis, with a written-out gradient.

    `(x - mean) / sqrt(var + epsilon) * gamma + beta`, computed in float32
    and returned in the dtype of `x`. The variance is `E[x^2] - E[x]^2`
    (clipped at 0), as Flax's `LayerNorm` computes it by default, so
    statistics match big_vision's. The gradient is written out: from the
    normalised input it needs two row means, where differentiating the
    forward pass gives XLA several more reductions and elementwise passes
    over the activations. On PyTorch it is `torch`'s own fused kernel.

    Args:
        x: Inputs `[..., D]`.
        gamma: Scale `[D]`.
        beta: Offset `[D]`.
        epsilon: Added to the variance.

    Returns:
        The normalised `x`, in the dtype of `x`.

    Example:

    ```python
    x = np.array([[1.0, 2.0, 3.0]], "float32")
    keras_vl.ops.layer_norm(x, np.ones(3), np.zeros(3), 1e-6)
    # [[-1.2247, 0., 1.2247]]
    ```
    """
    dtype = keras.backend.standardize_dtype(x.dtype)
    if keras.backend.backend() == "torch":  # Its fused kernel is faster.
        outputs = ops.layer_normalization(
            ops.cast(x, "float32"), gamma, beta, epsilon=float(epsilon)
        )
        return ops.cast(outputs, dtype)
    return _layer_norm(
        ops.cast(x, "float32"),
        ops.cast(gamma, "float32"),
        ops.cast(beta, "float32"),
        float(epsilon),
        dtype,
    )


def _layer_norm(x, gamma, beta, epsilon, dtype):
    @ops.custom_gradient
    def normalize(x, gamma, beta):
        mean = ops.mean(x, axis=-1, keepdims=True)
        mean_square = ops.mean(ops.square(x), axis=-1, keepdims=True)
        variance = ops.maximum(mean_square - ops.square(mean), 0.0)
        inverse_std = ops.rsqrt(variance + epsilon)
        normalized = (x - mean) * inverse_std
        outputs = ops.cast(normalized * gamma + beta, dtype)

        def gradient(upstream):
            grad = ops.cast(upstream, "float32")
            batch_axes = tuple(range(len(x.shape) - 1))
            grad_normalized = grad * gamma
            grad_mean = ops.mean(grad_normalized, axis=-1, keepdims=True)
            grad_projection = ops.mean(
                grad_normalized * normalized, axis=-1, keepdims=True
            )
            grad_x = inverse_std * (
                grad_normalized - grad_mean - normalized * grad_projection
            )
            return (
                grad_x,
                ops.sum(grad * normalized, axis=batch_axes),
                ops.sum(grad, axis=batch_axes),
            )

        return outputs, gradient

    return normalize(x, gamma, beta)
