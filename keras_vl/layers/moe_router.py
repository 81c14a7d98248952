"""Noisy top-k router with expert capacity for sparse mixtures of experts."""

import math

import keras
from keras import ops

_ROUNDING = ("ceil", "round")


def expert_capacity(
    group_size: int,
    num_experts: int,
    num_selected_experts: int = 1,
    capacity_factor: float | None = 1.0,
    capacity: int | None = None,
    capacity_rounding: str = "ceil",
    capacity_multiple_of: int | None = 4,
) -> int:
    """Slots per expert and per group of tokens, as V-MoE computes them.

    `C = ceil(k * S * capacity_factor / E)` (or Python's `round`, which
    rounds halves to even), then rounded up to a multiple of
    `capacity_multiple_of`. An explicit `capacity` is used as it is.

    Args:
        group_size: int. Tokens per routing group (`S`).
        num_experts: int. Number of experts (`E`).
        num_selected_experts: int. Experts per token (`k`).
        capacity_factor: float > 0. Capacity relative to `k * S / E`.
            Ignored (and must be None) when `capacity` is given.
        capacity: Optional int >= 1. Explicit capacity.
        capacity_rounding: `"ceil"` or `"round"`.
        capacity_multiple_of: Optional int. Round the capacity up to a
            multiple of it; `None` or 0 disables the rounding.

    Returns:
        The capacity `C`, a Python int.

    Example:

    ```python
    keras_vl.layers.moe_router.expert_capacity(256, 8, 2, 1.0)  # 64
    keras_vl.layers.moe_router.expert_capacity(48, 8, 2, 0.7)  # 12
    ```
    """
    if capacity is not None:
        if capacity < 1:
            raise ValueError(
                f"`capacity` must be >= 1. Received: capacity={capacity}"
            )
        return int(capacity)
    # Same order of operations as V-MoE, so float rounding agrees.
    num_tokens = group_size * num_selected_experts
    raw = num_tokens * capacity_factor / num_experts
    result = math.ceil(raw) if capacity_rounding == "ceil" else round(raw)
    if result < 1:
        raise ValueError(
            f"The expert capacity k * S * capacity_factor / E = "
            f"{num_selected_experts} * {group_size} * {capacity_factor} / "
            f"{num_experts} = {raw:g} rounds to {result} < 1. Increase "
            "`group_size` or `capacity_factor`, or pass `capacity`."
        )
    if capacity_multiple_of:
        result += (-result) % capacity_multiple_of
    return int(result)


def _check_int(name, value, minimum):
    if not isinstance(value, int) or isinstance(value, bool) or value < minimum:
        raise ValueError(
            f"`{name}` must be an int >= {minimum}. Received: {name}={value!r}"
        )


def _cv_squared(values, axis=-1):
    """(population std / mean)**2 along `axis`."""
    mean = ops.mean(values, axis=axis)
    std = ops.std(values, axis=axis)
    # `mean` is 0 only for a group without any valid token; such groups are
    # left out of the average by the caller.
    ratio = std / ops.maximum(mean, 1e-30)
    return ratio * ratio


@keras.saving.register_keras_serializable(package="keras_vl")
class MoeRouter(keras.layers.Layer):
    """V-MoE's noisy top-k router with per-expert capacity.

    Routes groups of tokens `[G, S, D]` to `num_experts` experts, as
    `NoisyTopExpertsPerItemRouter` with the einsum dispatcher of
    google-research/vmoe:

    * logits `x @ W` (`W` is `[D, E]`, no bias), gates `softmax(logits)`;
    * in training, standard-normal noise scaled by `noise_std / E` is added
      to the logits and the noisy gates both choose and weight the experts;
      in evaluation the clean gates do;
    * each token picks its top `k` experts; the combine weights are the
      gates themselves (not renormalised over the top `k`);
    * every expert has `C` slots per group (see `expert_capacity`); slots
      are filled choice-major (all first choices, then all second choices,
      ...), tokens in order of position or, with Batch Priority Routing,
      by decreasing top-1 gate (ties to the lower position); choices that
      find their expert full are dropped;
    * tokens whose `token_mask` is False (padding, text padding, ...) take
      no slot and enter no loss or statistic.

    Auxiliary losses, each per group (`[G]`) and then averaged over the
    groups that hold a valid token, are added with `add_loss`:

    * importance: `cv(sum_s gates[s, e])**2` with the clean gates;
    * load (training with noise only): `cv(mean_s P[s, e])**2`, where
      `P[s, e] = 1 - Phi((T_s - logits[s, e]) / sigma)` is the probability
      that expert `e` is selected under the noise, `T_s` the token's `k`-th
      largest noisy logit and `sigma = noise_std / E`;
    * gshard: `E**2 * mean_e(frac[e] * mean_s gates[s, e])` with `frac[e]`
      the fraction of tokens whose top-1 expert is `e` (routing gates);
    * z-loss: `mean_s logsumexp(logits[s])**2` (ST-MoE).

    `cv` is the coefficient of variation, population std over mean. A loss
    whose weight is 0 is not computed into the total.

    Args:
        num_experts: int. Number of experts `E`.
        num_selected_experts: int. Experts per token `k`, `1 <= k <= E`.
        capacity_factor: Optional float > 0. Slots per expert relative to
            `k * S / E`. Defaults to 1.0 unless `capacity` is given.
        capacity: Optional int >= 1. An explicit number of slots per expert
            and group, used as it is; exclusive with `capacity_factor`.
        capacity_rounding: `"ceil"` (default) or `"round"` (Python's
            `round`): how `k * S * capacity_factor / E` becomes an int.
        capacity_multiple_of: Optional int. Round the capacity up to a
            multiple of it (4 by default, as V-MoE); `None` disables it.
        batch_priority: bool. Batch Priority Routing: fill slots in order
            of decreasing top-1 gate instead of token position.
        noise_std: float >= 0. Training noise on the logits has std
            `noise_std / num_experts`; 0 disables the noise.
        importance_loss_weight: float >= 0. Weight of the importance loss.
        load_loss_weight: float >= 0. Weight of the load loss.
        gshard_loss_weight: float >= 0. Weight of the GShard loss.
        z_loss_weight: float >= 0. Weight of the router z-loss.
        kernel_initializer: Initializer of the `[D, E]` kernel.
        seed: Optional int seeding the routing noise.
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: Tokens `[G, S, D]`, one routing group per row.
        token_mask: Optional `[G, S]` boolean; False marks tokens that must
            take no slot (padding).
        noise: Optional `[G, S, E]` standard-normal draw to use instead of
            drawing one (training only; for reproducing a reference run).
        training: Whether the routing noise is on.

    Returns:
        A dict with `dispatch` (bool `[G, S, E, C]`, True where token `s`
        sits in slot `c` of expert `e`), `combine` (float32 `[G, S, E, C]`,
        the routing gate on those entries), `logits` and `gates` (the clean
        ones, `[G, S, E]`), `routing_gates` (noisy in training), the
        per-group losses `importance_loss`, `gshard_loss`, `load_loss`
        (training with noise only), `z_loss` (when its weight is > 0) and
        their weighted sum
        `auxiliary_loss` (`[G]` each), and the statistics
        `dropped_fraction` (scalar: share of the valid tokens' `k`
        choices that found no slot) and `expert_utilization` (`[E]`: share
        of each expert's slots that are filled).

    Example:

    ```python
    router = keras_vl.layers.MoeRouter(
        num_experts=8, num_selected_experts=2, batch_priority=True
    )
    routing = router(np.random.normal(size=(4, 64, 32)), training=True)
    routing["dispatch"].shape  # (4, 64, 8, 16)
    router.losses  # [weighted importance + load loss]
    ```
    """

    def __init__(
        self,
        num_experts: int,
        num_selected_experts: int = 1,
        capacity_factor: float | None = None,
        capacity: int | None = None,
        capacity_rounding: str = "ceil",
        capacity_multiple_of: int | None = 4,
        batch_priority: bool = False,
        noise_std: float = 1.0,
        importance_loss_weight: float = 0.005,
        load_loss_weight: float = 0.005,
        gshard_loss_weight: float = 0.0,
        z_loss_weight: float = 0.0,
        kernel_initializer="lecun_normal",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_int("num_experts", num_experts, 1)
        _check_int("num_selected_experts", num_selected_experts, 1)
        if num_selected_experts > num_experts:
            raise ValueError(
                "`num_selected_experts` must be <= `num_experts` "
                f"({num_experts}). Received: "
                f"num_selected_experts={num_selected_experts}"
            )
        if capacity is not None:
            if capacity_factor is not None:
                raise ValueError(
                    "Pass either `capacity` or `capacity_factor`, not both. "
                    f"Received: capacity={capacity}, "
                    f"capacity_factor={capacity_factor}"
                )
            _check_int("capacity", capacity, 1)
        elif capacity_factor is not None and not capacity_factor > 0:
            raise ValueError(
                "`capacity_factor` must be > 0. Received: "
                f"capacity_factor={capacity_factor}"
            )
        if capacity_rounding not in _ROUNDING:
            raise ValueError(
                f"`capacity_rounding` must be one of {_ROUNDING}. "
                f"Received: capacity_rounding={capacity_rounding!r}"
            )
        if capacity_multiple_of is not None:
            _check_int("capacity_multiple_of", capacity_multiple_of, 0)
        weights = {
            "noise_std": noise_std,
            "importance_loss_weight": importance_loss_weight,
            "load_loss_weight": load_loss_weight,
            "gshard_loss_weight": gshard_loss_weight,
            "z_loss_weight": z_loss_weight,
        }
        for name, value in weights.items():
            if not isinstance(value, int | float) or not value >= 0:
                raise ValueError(
                    f"`{name}` must be a number >= 0. Received: "
                    f"{name}={value!r}"
                )
        self.num_experts = num_experts
        self.num_selected_experts = num_selected_experts
        self.capacity_factor = (
            None if capacity_factor is None else float(capacity_factor)
        )
        self.capacity = capacity
        self.capacity_rounding = capacity_rounding
        self.capacity_multiple_of = capacity_multiple_of
        self.batch_priority = bool(batch_priority)
        self.noise_std = float(noise_std)
        self.importance_loss_weight = float(importance_loss_weight)
        self.load_loss_weight = float(load_loss_weight)
        self.gshard_loss_weight = float(gshard_loss_weight)
        self.z_loss_weight = float(z_loss_weight)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def expert_capacity(self, group_size: int) -> int:
        """The capacity `C` this router uses for groups of `group_size`."""
        factor = self.capacity_factor
        if factor is None and self.capacity is None:
            factor = 1.0
        return expert_capacity(
            group_size,
            self.num_experts,
            self.num_selected_experts,
            capacity_factor=factor,
            capacity=self.capacity,
            capacity_rounding=self.capacity_rounding,
            capacity_multiple_of=self.capacity_multiple_of,
        )

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                "`MoeRouter` expects `inputs` of shape [G, S, D] with a "
                f"known D. Received shape {input_shape}"
            )
        self.kernel = self.add_weight(
            name="kernel",
            shape=(input_shape[-1], self.num_experts),
            initializer=self.kernel_initializer,
            # Routing is float32: the kernel is not rounded to bfloat16.
            autocast=False,
        )

    def call(self, inputs, token_mask=None, noise=None, training=None):
        if len(inputs.shape) != 3:
            raise ValueError(
                "`MoeRouter` expects `inputs` of shape [G, S, D]. "
                f"Received shape {inputs.shape}"
            )
        group_size = inputs.shape[1]
        if group_size is None:
            raise ValueError(
                "`MoeRouter` needs a static group size (axis 1 of `inputs`)."
            )
        num_experts = self.num_experts
        k = self.num_selected_experts
        capacity = self.expert_capacity(group_size)

        # Routing runs in float32 whatever the compute dtype.
        logits = ops.matmul(
            ops.cast(inputs, "float32"), ops.cast(self.kernel, "float32")
        )
        gates = ops.softmax(logits, axis=-1)
        if token_mask is None:
            valid = ops.ones_like(logits[..., 0])
        else:
            valid = ops.cast(ops.cast(token_mask, "bool"), "float32")

        noisy = bool(training) and self.noise_std > 0
        sigma = self.noise_std / num_experts
        if noisy:
            if noise is None:
                noise = keras.random.normal(
                    ops.shape(logits), seed=self.seed_generator
                )
            noisy_logits = logits + sigma * ops.cast(noise, "float32")
            routing_gates = ops.softmax(noisy_logits, axis=-1)
        else:
            routing_gates = gates

        # Top-k experts per token, best first (ties: lower expert index).
        topk_gates, topk_experts = ops.top_k(routing_gates, k)
        choices = [
            ops.one_hot(topk_experts[..., i], num_experts, dtype="float32")
            * valid[..., None]
            for i in range(k)
        ]

        # Slot of each (token, choice): the number of earlier assignments to
        # the same expert, where all first choices come before any second
        # choice and, within a choice, tokens follow the priority order.
        if self.batch_priority:
            # A stable descending order by top-1 gate written as pairwise
            # comparisons (argsort is not stable on every backend).
            top1 = topk_gates[..., 0]
            earlier = ops.logical_or(
                top1[:, None, :] > top1[:, :, None],
                ops.logical_and(
                    top1[:, None, :] == top1[:, :, None],
                    ops.tril(ops.ones((group_size, group_size)), -1) > 0,
                ),
            )
            earlier = ops.cast(earlier, "float32")

            def before(one_hot):
                return ops.einsum("gst,gte->gse", earlier, one_hot)
        else:

            def before(one_hot):
                return ops.cumsum(one_hot, axis=1) - one_hot

        selected = ops.zeros_like(logits)
        position = ops.zeros_like(logits)
        offset = ops.zeros_like(logits[:, :1, :])
        for one_hot in choices:
            selected = selected + one_hot
            position = position + one_hot * (offset + before(one_hot))
            offset = offset + ops.sum(one_hot, axis=1, keepdims=True)
        # One-hot of the slot; a position >= C matches no slot (dropped).
        slots = ops.arange(capacity, dtype="float32")
        dispatch = ops.logical_and(
            (selected > 0)[..., None], position[..., None] == slots
        )
        combine = ops.cast(dispatch, "float32") * routing_gates[..., None]

        # Auxiliary losses, per group, over the valid tokens only.
        count = ops.sum(valid, axis=1)
        safe_count = ops.maximum(count, 1.0)
        mask = valid[..., None]
        losses = {}
        importance = ops.sum(gates * mask, axis=1)
        losses["importance_loss"] = _cv_squared(importance)
        top1_share = ops.sum(choices[0], axis=1) / safe_count[:, None]
        mean_gate = ops.sum(routing_gates * mask, axis=1) / safe_count[:, None]
        losses["gshard_loss"] = num_experts**2 * ops.mean(
            top1_share * mean_gate, axis=-1
        )
        if noisy:
            threshold = ops.top_k(noisy_logits, k)[0][..., k - 1 :]
            z = (threshold - logits) / sigma
            # 1 - Phi(z), the chance that the noise lifts logit e over T.
            prob = 0.5 * (1.0 - ops.erf(z / math.sqrt(2.0)))
            load = ops.sum(prob * mask, axis=1) / safe_count[:, None]
            losses["load_loss"] = _cv_squared(load)
        if self.z_loss_weight > 0:
            log_z = ops.logsumexp(logits, axis=-1)
            losses["z_loss"] = (
                ops.sum(log_z * log_z * valid, axis=1) / safe_count
            )
        weights = {
            "importance_loss": self.importance_loss_weight,
            "load_loss": self.load_loss_weight,
            "gshard_loss": self.gshard_loss_weight,
            "z_loss": self.z_loss_weight,
        }
        auxiliary = ops.zeros_like(count)
        for name, loss in losses.items():
            if weights[name] > 0:  # a zero weight keeps NaNs out
                auxiliary = auxiliary + weights[name] * loss
        # Groups made only of padding have no statistics to average.
        has_tokens = ops.cast(count > 0, "float32")
        num_valid_groups = ops.maximum(ops.sum(has_tokens), 1.0)
        self.add_loss(
            ops.sum(ops.where(count > 0, auxiliary, 0.0)) / num_valid_groups
        )

        kept = ops.sum(ops.cast(dispatch, "float32"))
        total = ops.maximum(k * ops.sum(count), 1.0)
        filled = ops.sum(ops.cast(dispatch, "float32"), axis=(1, 3))
        return {
            "dispatch": dispatch,
            "combine": combine,
            "logits": logits,
            "gates": gates,
            "routing_gates": routing_gates,
            **losses,
            "auxiliary_loss": auxiliary,
            "dropped_fraction": 1.0 - kept / total,
            "expert_utilization": ops.mean(filled, axis=0) / capacity,
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "num_experts": self.num_experts,
                "num_selected_experts": self.num_selected_experts,
                "capacity_factor": self.capacity_factor,
                "capacity": self.capacity,
                "capacity_rounding": self.capacity_rounding,
                "capacity_multiple_of": self.capacity_multiple_of,
                "batch_priority": self.batch_priority,
                "noise_std": self.noise_std,
                "importance_loss_weight": self.importance_loss_weight,
                "load_loss_weight": self.load_loss_weight,
                "gshard_loss_weight": self.gshard_loss_weight,
                "z_loss_weight": self.z_loss_weight,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "seed": self.seed,
            }
        )
        return config
