"""Plain-Python, token-by-token references for V-MoE routing and the sparse
MoE MLP, written from the routing rules (not from the layers) so the tests
can compare the vectorised layers against them."""

import math

import numpy as np


def route_loop(gates, k, capacity, batch_priority, valid=None):
    """Routes `gates` `[G, S, E]` one token at a time.

    Returns `(dispatch, combine)` `[G, S, E, C]`: each token takes its `k`
    best experts (ties: lower expert index); walking all first choices,
    then all second choices, ..., in token order (or by decreasing top-1
    gate, ties to the lower position, with batch priority), a choice gets
    its expert's next free slot or is dropped when the expert is full.
    Invalid tokens take no slot.
    """
    num_groups, group_size, num_experts = gates.shape
    dispatch = np.zeros((*gates.shape, capacity), bool)
    for g in range(num_groups):
        picks = [
            sorted(range(num_experts), key=lambda e: (-gates[g, s, e], e))[:k]
            for s in range(group_size)
        ]
        order = list(range(group_size))
        if batch_priority:
            order.sort(key=lambda s: (-gates[g, s, picks[s][0]], s))
        used = [0] * num_experts
        for choice in range(k):
            for s in order:
                if valid is not None and not valid[g, s]:
                    continue
                expert = picks[s][choice]
                if used[expert] < capacity:
                    dispatch[g, s, expert, used[expert]] = True
                    used[expert] += 1
    return dispatch, dispatch * gates[..., None]


def gelu_tanh(x):
    inner = math.sqrt(2.0 / math.pi) * (x + 0.044715 * x**3)
    return 0.5 * x * (1.0 + np.tanh(inner))


def moe_mlp_loop(tokens, dispatch, gates, weights):
    """Output of a sparse MoE MLP, one token and one chosen expert at a time.

    Args:
        tokens: `[G, S, D]` float64.
        dispatch: `[G, S, E, C]` bool (where each token went).
        gates: `[G, S, E]` routing gates (the combine weights).
        weights: `(kernel_0 [E, D, M], bias_0 [E, M], kernel_1 [E, M, D],
            bias_1 [E, D])`.
    """
    kernel_0, bias_0, kernel_1, bias_1 = weights
    out = np.zeros_like(tokens)
    num_groups, group_size = tokens.shape[:2]
    for g in range(num_groups):
        for s in range(group_size):
            for e in np.flatnonzero(dispatch[g, s].any(-1)):
                hidden = gelu_tanh(tokens[g, s] @ kernel_0[e] + bias_0[e])
                out[g, s] += gates[g, s, e] * (hidden @ kernel_1[e] + bias_1[e])
    return out
