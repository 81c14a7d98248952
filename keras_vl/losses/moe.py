"""LIMoE's per-modality entropy losses on routing distributions.

With `p(.|x)` a token's routing distribution over the `E` experts (the
router's softmax) and `m` a modality (image, text, ...):

* local entropy `Omega_local(m) = mean_{x in m} H(p(.|x))`. Minimising it
  makes each token's routing confident.
* global entropy `Omega_global(m) = -H(mean_{x in m} p(.|x))`. Minimising
  it spreads the modality's tokens over many experts. LIMoE applies it
  with a threshold `tau`, as `max(0, tau + Omega_global(m))`: once the
  modality's average routing has entropy `>= tau` (roughly, it uses at
  least `exp(tau)` experts evenly) the loss and its gradient vanish.

`H(q) = -sum_e q_e log q_e` in nats, with `0 log 0 = 0`. Only the tokens
of modality `m` whose mask is True count; a modality without any such
token contributes a loss of 0. Everything is computed in float32.

Global batch. On JAX (sharded or not), PyTorch and single-replica
TensorFlow the tensors passed in already are the global batch. Under a
multi-replica `tf.distribute` strategy every replica gathers all replicas'
tokens (`keras_vl.distribute.all_gather`), computes the loss of the global
batch and returns `1 / num_replicas` of it, so that the shares sum to the
single-device loss, as the contrastive losses do.
"""

import math
from typing import Any

from keras import ops

from keras_vl import distribute


def check_entropy_threshold(
    threshold: float, num_experts: int, name: str = "threshold"
) -> float:
    """Validates a global-entropy threshold `tau` against `[0, ln E]`.

    The entropy of a distribution over `E` experts lies in `[0, ln E]`, so a
    threshold outside that range is either never reached or always met.

    Args:
        threshold: The threshold `tau` in nats.
        num_experts: int. Number of experts `E`.
        name: The argument name to report in the error.

    Returns:
        `threshold` as a float.

    Example:

    ```python
    keras_vl.losses.check_entropy_threshold(1.0, num_experts=8)  # 1.0
    keras_vl.losses.check_entropy_threshold(3.0, num_experts=8)  # ValueError
    ```
    """
    if isinstance(threshold, bool) or not isinstance(threshold, int | float):
        raise TypeError(
            f"`{name}` must be a number in [0, ln E]. "
            f"Received: {name}={threshold!r}"
        )
    upper = math.log(num_experts)
    if not 0.0 <= threshold <= upper:
        raise ValueError(
            f"`{name}` must lie in [0, ln E] = [0, {upper:.6g}] for "
            f"E={num_experts} experts. Received: {name}={threshold!r}"
        )
    return float(threshold)


def routing_entropy(probs: Any) -> Any:
    """Entropy in nats of each routing distribution `[..., E]` -> `[...]`.

    Args:
        probs: Routing probabilities `[..., E]` (each row sums to 1).

    Returns:
        `-sum_e p_e log p_e` over the last axis, float32, with `0 log 0 = 0`.

    Example:

    ```python
    keras_vl.losses.routing_entropy(np.full((2, 4), 0.25))  # [ln 4, ln 4]
    ```
    """
    probs = ops.cast(probs, "float32")
    safe = ops.where(probs > 0, probs, 1.0)
    return -ops.sum(probs * ops.log(safe), axis=-1)


def _modality_weights(probs, modality_ids, modality, token_mask):
    """Global-batch `probs [T, E]` and the `[T]` 0/1 weights of modality
    `modality`'s unmasked tokens, from any array-likes (the preamble that
    every entropy loss shares)."""
    probs = ops.cast(ops.convert_to_tensor(probs), "float32")
    modality_ids = ops.convert_to_tensor(modality_ids)
    if token_mask is not None:
        token_mask = ops.convert_to_tensor(token_mask)
    if len(probs.shape) < 1 or probs.shape[-1] is None:
        raise ValueError(
            "`probs` must have shape [..., E] with a known E. "
            f"Received shape {probs.shape}"
        )
    num_experts = probs.shape[-1]
    token_shape = tuple(probs.shape[:-1])
    if tuple(modality_ids.shape) != token_shape:
        raise ValueError(
            "`modality_ids` must have the token shape of `probs` "
            f"{token_shape}. Received shape {tuple(modality_ids.shape)}"
        )
    if token_mask is None:
        token_mask = ops.ones(ops.shape(modality_ids), dtype="bool")
    elif tuple(token_mask.shape) != token_shape:
        raise ValueError(
            "`token_mask` must have the token shape of `probs` "
            f"{token_shape}. Received shape {tuple(token_mask.shape)}"
        )
    probs = ops.reshape(probs, (-1, num_experts))
    ids = ops.reshape(ops.cast(modality_ids, "int32"), (-1,))
    mask = ops.reshape(ops.cast(token_mask, "bool"), (-1,))
    if distribute.num_replicas_in_sync() > 1:
        probs, ids, mask = distribute.all_gather(
            (probs, ids, ops.cast(mask, "int32"))
        )
        mask = ops.cast(mask, "bool")
    weights = ops.cast(ops.logical_and(mask, ids == int(modality)), "float32")
    return probs, weights


def _mean_routing(probs, weights):
    """`(count, mean p)`: the number of weighted tokens and their mean
    routing distribution `[E]` (zeros when there are none)."""
    count = ops.sum(weights)
    total = ops.sum(probs * weights[:, None], axis=0)
    return count, total / ops.maximum(count, 1.0)


def _replica_share(loss):
    replicas = distribute.num_replicas_in_sync()
    return loss / replicas if replicas > 1 else loss


def local_entropy_loss(
    probs: Any,
    modality_ids: Any,
    modality: int,
    token_mask: Any = None,
) -> Any:
    """LIMoE's local entropy `mean_{x in m} H(p(.|x))` of one modality.

    Args:
        probs: Routing probabilities `[..., E]`.
        modality_ids: int `[...]`, the modality of every token.
        modality: int. The modality `m` to score.
        token_mask: Optional bool `[...]`; False tokens (padding) are left
            out.

    Returns:
        A float32 scalar; 0 when modality `m` has no unmasked token.

    Example:

    ```python
    probs = np.array([[0.5, 0.5], [1.0, 0.0]])
    keras_vl.losses.local_entropy_loss(probs, np.array([0, 1]), 0)  # ln 2
    ```
    """
    probs, weights = _modality_weights(
        probs, modality_ids, modality, token_mask
    )
    count = ops.sum(weights)
    total = ops.sum(routing_entropy(probs) * weights)
    return _replica_share(total / ops.maximum(count, 1.0))


def global_entropy_loss(
    probs: Any,
    modality_ids: Any,
    modality: int,
    token_mask: Any = None,
) -> Any:
    """LIMoE's global entropy `-H(mean_{x in m} p(.|x))` of one modality.

    Args:
        probs: Routing probabilities `[..., E]`.
        modality_ids: int `[...]`, the modality of every token.
        modality: int. The modality `m` to score.
        token_mask: Optional bool `[...]`; False tokens are left out.

    Returns:
        A float32 scalar in `[-ln E, 0]`; 0 when modality `m` has no
        unmasked token.

    Example:

    ```python
    probs = np.array([[1.0, 0.0], [0.0, 1.0]])
    keras_vl.losses.global_entropy_loss(probs, np.array([0, 0]), 0)  # -ln 2
    ```
    """
    probs, weights = _modality_weights(
        probs, modality_ids, modality, token_mask
    )
    _, mean_probs = _mean_routing(probs, weights)
    # An absent modality has mean_probs == 0, whose entropy is 0.
    return _replica_share(-routing_entropy(mean_probs))


def thresholded_global_entropy_loss(
    probs: Any,
    modality_ids: Any,
    modality: int,
    threshold: float,
    token_mask: Any = None,
) -> Any:
    """`max(0, tau + Omega_global(m))`, LIMoE's form of the global loss.

    Args:
        probs: Routing probabilities `[..., E]`.
        modality_ids: int `[...]`, the modality of every token.
        modality: int. The modality `m` to score.
        threshold: float in `[0, ln E]`, the entropy `tau` (nats) above which
            the loss is 0.
        token_mask: Optional bool `[...]`; False tokens are left out.

    Returns:
        A float32 scalar `>= 0`; 0 when modality `m` has no unmasked token.

    Example:

    ```python
    probs = np.full((4, 8), 1 / 8)  # entropy ln 8 ~ 2.08 > tau
    keras_vl.losses.thresholded_global_entropy_loss(
        probs, np.zeros(4, "int32"), 0, threshold=1.0
    )  # 0.0
    ```
    """
    probs = ops.convert_to_tensor(probs)
    if len(probs.shape) >= 1 and probs.shape[-1] is not None:
        check_entropy_threshold(threshold, probs.shape[-1])
    probs, weights = _modality_weights(
        probs, modality_ids, modality, token_mask
    )
    count, mean_probs = _mean_routing(probs, weights)
    loss = ops.relu(threshold - routing_entropy(mean_probs))
    loss = ops.where(count > 0, loss, 0.0)
    return _replica_share(loss)
