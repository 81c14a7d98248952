"""A sparse mixture-of-experts MLP (V-MoE) with einsum dispatch."""

import keras
from keras import ops

from keras_vl.layers.moe_router import MoeRouter


def _per_expert(initializer, num_experts):
    """An initializer for `[E, ...]` weights that draws each expert as its
    own `[...]` weight: fans come from one expert, and experts differ."""
    config = initializer.get_config()
    if "seed" in config:
        # A fresh copy drawing from a seed generator gives each expert its
        # own values (an int seed would repeat them).
        initializer = initializer.__class__.from_config(config)
        initializer.seed = keras.random.SeedGenerator(initializer.seed)

    def initialize(shape, dtype=None):
        return ops.stack(
            [initializer(shape[1:], dtype=dtype) for _ in range(num_experts)]
        )

    return initialize


@keras.saving.register_keras_serializable(package="keras_vl")
class SparseMoeMlp(keras.layers.Layer):
    """V-MoE's sparse mixture of MLP experts (`MlpMoeBlock` of vmoe).

    Tokens `[B, N, D]` are flattened row-major and cut into groups of
    `group_size` consecutive tokens (a group may span several sequences;
    a token count that `group_size` does not divide is padded, and the
    padding is masked). A `MoeRouter` sends each token to at most
    `num_selected_experts` of the `num_experts` experts, subject to each
    expert's capacity per group. Every expert is the transformer MLP
    `Dense(mlp_dim) -> GELU (tanh approximation) -> Dense(D)`; the output
    of a token is the gate-weighted sum of its experts' outputs, and `0`
    for a token that no expert took (in a residual block it then passes
    through unchanged).

    Dispatch and combine are einsums with the router's one-hot `[G, S, E,
    C]` tensors, and experts only process their `C` slots per group, so
    the expert compute grows with `k` and the capacity factor, not with
    `E`. Expert weights carry a leading expert axis (`[E, D, mlp_dim]`,
    `[E, mlp_dim]`, `[E, mlp_dim, D]`, `[E, D]`) so that a
    `keras.distribution` layout map can shard experts over devices.

    The router's auxiliary losses (see `MoeRouter`) are added with
    `add_loss`.

    Args:
        num_experts: int. Number of experts `E`.
        mlp_dim: int. Hidden width of every expert.
        group_size: int. Tokens per routing group `S`.
        num_selected_experts: int. Experts per token `k`, `1 <= k <= E`.
        capacity_factor: Optional float > 0. Expert capacity relative to
            `k * S / E`; defaults to 1.0 unless `capacity` is given.
        capacity: Optional int >= 1. An explicit capacity per expert and
            group; exclusive with `capacity_factor`.
        capacity_rounding: `"ceil"` or `"round"`, see `MoeRouter`.
        capacity_multiple_of: Optional int. Round the capacity up to a
            multiple of it (4 by default); `None` disables it.
        batch_priority: bool. Batch Priority Routing (tokens with the
            highest top-1 gate get slots first).
        noise_std: float. Training noise on the router logits has std
            `noise_std / num_experts`.
        importance_loss_weight: float. Weight of the importance loss.
        load_loss_weight: float. Weight of the load loss.
        gshard_loss_weight: float. Weight of the GShard loss.
        z_loss_weight: float. Weight of the router z-loss.
        dropout_rate: float. Dropout after the experts' activation.
        kernel_initializer: Initializer of each expert's kernels (each
            expert is drawn as its own `[D, mlp_dim]` / `[mlp_dim, D]`
            weight).
        bias_initializer: Initializer of the expert biases; defaults to a
            normal distribution with std 1e-6, as `MlpBlock`.
        router_kernel_initializer: Initializer of the router's `[D, E]`
            kernel.
        seed: Optional int seeding the routing noise.
        **kwargs: Standard layer arguments (`name`, `dtype`, ...).

    Call arguments:
        inputs: Tokens `[B, N, D]`.
        side_input: Optional per-token data. Either a `[B, N]` mask (True
            or nonzero = a real token; False = padding, which takes no
            slot, enters no loss and gets output 0), or a dict with an
            optional `"mask"` entry of that form and further per-token
            entries (e.g. `"modality"` ids) that the routing ignores.
            `TransformerEncoder` passes its `side_input` here.
        noise: Optional standard-normal router noise `[G, S, E]` to use
            instead of a fresh draw (training only).
        training: Whether router noise and dropout are on.
        return_routing: If True, return `(outputs, routing)` with the
            router's output dict (dispatch, combine, per-group losses,
            dropped fraction, expert utilisation).

    Example:

    ```python
    moe = keras_vl.layers.SparseMoeMlp(
        num_experts=8, mlp_dim=256, group_size=64, batch_priority=True
    )
    y = moe(np.random.normal(size=(2, 64, 32)))  # (2, 64, 32)
    moe.losses  # [the weighted auxiliary loss]

    # Sparse MLPs in every other block of an encoder.
    encoder = keras_vl.layers.TransformerEncoder(
        depth=4, num_heads=4, mlp_dim=256,
        mlp_factory=lambda i: keras_vl.layers.SparseMoeMlp(
            num_experts=8, mlp_dim=256, group_size=64
        ) if i % 2 else None,
    )
    ```
    """

    def __init__(
        self,
        num_experts: int,
        mlp_dim: int,
        group_size: int,
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
        dropout_rate: float = 0.0,
        kernel_initializer="glorot_uniform",
        bias_initializer=None,
        router_kernel_initializer="lecun_normal",
        seed: int | None = None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        for name, value in [("mlp_dim", mlp_dim), ("group_size", group_size)]:
            if not isinstance(value, int) or isinstance(value, bool):
                raise ValueError(
                    f"`{name}` must be an int >= 1. Received: {name}={value!r}"
                )
            if value < 1:
                raise ValueError(
                    f"`{name}` must be an int >= 1. Received: {name}={value!r}"
                )
        self.mlp_dim = mlp_dim
        self.group_size = group_size
        self.dropout_rate = float(dropout_rate)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        if bias_initializer is None:
            bias_initializer = keras.initializers.RandomNormal(stddev=1e-6)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.router = MoeRouter(
            num_experts=num_experts,
            num_selected_experts=num_selected_experts,
            capacity_factor=capacity_factor,
            capacity=capacity,
            capacity_rounding=capacity_rounding,
            capacity_multiple_of=capacity_multiple_of,
            batch_priority=batch_priority,
            noise_std=noise_std,
            importance_loss_weight=importance_loss_weight,
            load_loss_weight=load_loss_weight,
            gshard_loss_weight=gshard_loss_weight,
            z_loss_weight=z_loss_weight,
            kernel_initializer=router_kernel_initializer,
            seed=seed,
            dtype=self.dtype_policy,
            name="Router",
        )
        # Fail now, not at the first call, if a group leaves C < 1.
        self.capacity_per_group = self.router.expert_capacity(group_size)
        self.num_experts = num_experts
        self.dropout = keras.layers.Dropout(
            self.dropout_rate, dtype=self.dtype_policy
        )

    def build(self, input_shape):
        if len(input_shape) != 3 or input_shape[-1] is None:
            raise ValueError(
                "`SparseMoeMlp` expects `inputs` of shape [B, N, D] with a "
                f"known D. Received shape {input_shape}"
            )
        width, hidden, experts = input_shape[-1], self.mlp_dim, self.num_experts
        self.router.build((None, self.group_size, width))
        kernel = _per_expert(self.kernel_initializer, experts)
        bias = _per_expert(self.bias_initializer, experts)
        self.kernel_0 = self.add_weight(
            name="kernel_0", shape=(experts, width, hidden), initializer=kernel
        )
        self.bias_0 = self.add_weight(
            name="bias_0", shape=(experts, hidden), initializer=bias
        )
        self.kernel_1 = self.add_weight(
            name="kernel_1", shape=(experts, hidden, width), initializer=kernel
        )
        self.bias_1 = self.add_weight(
            name="bias_1", shape=(experts, width), initializer=bias
        )

    @staticmethod
    def _token_mask(side_input):
        if isinstance(side_input, dict):
            return side_input.get("mask")
        return side_input

    def call(
        self,
        inputs,
        side_input=None,
        noise=None,
        training=None,
        return_routing=False,
    ):
        width = inputs.shape[-1]
        size = self.group_size
        tokens = ops.reshape(inputs, (-1, width))
        num_tokens = ops.shape(tokens)[0]
        padding = (-num_tokens) % size
        mask = self._token_mask(side_input)
        if mask is None:
            valid = ops.ones_like(tokens[:, 0], dtype="bool")
        else:
            valid = ops.reshape(ops.cast(mask, "bool"), (-1,))
        # Pad to whole groups; padding is masked out of the routing.
        tokens = ops.pad(tokens, [[0, padding], [0, 0]])
        valid = ops.pad(valid, [[0, padding]], constant_values=False)
        groups = ops.reshape(tokens, (-1, size, width))
        valid = ops.reshape(valid, (-1, size))

        routing = self.router(
            groups, token_mask=valid, noise=noise, training=training
        )
        dispatch = ops.cast(routing["dispatch"], self.compute_dtype)
        combine = ops.cast(routing["combine"], self.compute_dtype)
        # [E, G, C, D]: slot c of expert e in group g holds one token (or 0).
        expert_inputs = ops.einsum("gsec,gsd->egcd", dispatch, groups)
        hidden = ops.einsum("egcd,edm->egcm", expert_inputs, self.kernel_0)
        hidden = hidden + self.bias_0[:, None, None, :]
        hidden = ops.gelu(hidden, approximate=True)
        hidden = self.dropout(hidden, training=training)
        expert_outputs = ops.einsum("egcm,emd->egcd", hidden, self.kernel_1)
        expert_outputs = expert_outputs + self.bias_1[:, None, None, :]
        outputs = ops.einsum("gsec,egcd->gsd", combine, expert_outputs)

        outputs = ops.reshape(outputs, (-1, width))[:num_tokens]
        outputs = ops.reshape(outputs, ops.shape(inputs))
        if return_routing:
            return outputs, routing
        return outputs

    def compute_output_spec(
        self,
        inputs,
        side_input=None,
        noise=None,
        training=None,
        return_routing=False,
    ):
        if not return_routing:
            # The grouping needs the token count, which a symbolic batch
            # lacks; the output shape is simply the input shape.
            return keras.KerasTensor(inputs.shape, dtype=self.compute_dtype)
        return super().compute_output_spec(
            inputs,
            side_input=side_input,
            noise=noise,
            training=training,
            return_routing=return_routing,
        )

    def get_config(self):
        config = super().get_config()
        router = self.router.get_config()
        config.update(
            {
                "num_experts": self.num_experts,
                "mlp_dim": self.mlp_dim,
                "group_size": self.group_size,
                "num_selected_experts": router["num_selected_experts"],
                "capacity_factor": router["capacity_factor"],
                "capacity": router["capacity"],
                "capacity_rounding": router["capacity_rounding"],
                "capacity_multiple_of": router["capacity_multiple_of"],
                "batch_priority": router["batch_priority"],
                "noise_std": router["noise_std"],
                "importance_loss_weight": router["importance_loss_weight"],
                "load_loss_weight": router["load_loss_weight"],
                "gshard_loss_weight": router["gshard_loss_weight"],
                "z_loss_weight": router["z_loss_weight"],
                "dropout_rate": self.dropout_rate,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                "router_kernel_initializer": router["kernel_initializer"],
                "seed": router["seed"],
            }
        )
        return config
