"""LIMoE's sparse MLP: V-MoE routing plus per-modality entropy losses."""

import math
from collections.abc import Sequence

import keras
from keras import ops

from keras_vl.layers.sparse_moe_mlp import SparseMoeMlp
from keras_vl.losses.moe import (
    check_entropy_threshold,
    local_entropy_loss,
    thresholded_global_entropy_loss,
)

# Modality ids carried by every token as the encoder's side input.
IMAGE, TEXT = 0, 1
MODALITIES = ("image", "text")


def _per_modality(name, value, default=None):
    """A number or a sequence of two numbers -> a tuple (image, text)."""
    if value is None:
        return (default, default)
    if isinstance(value, int | float) and not isinstance(value, bool):
        return (float(value), float(value))
    if isinstance(value, Sequence) and len(value) == len(MODALITIES):
        return tuple(None if v is None else float(v) for v in value)
    raise ValueError(
        f"`{name}` must be a number or an (image, text) pair. "
        f"Received: {name}={value!r}"
    )


def _flat_groups(x, group_size, fill):
    """Per-token `[B, N, ...]` -> `[T', ...]` flattened row-major and padded
    to whole routing groups, the order `SparseMoeMlp` routes tokens in."""
    tail = tuple(x.shape[2:])
    flat = ops.reshape(x, (-1, *tail))
    padding = (-ops.shape(flat)[0]) % group_size
    pads = [[0, padding]] + [[0, 0]] * len(tail)
    return ops.pad(flat, pads, constant_values=fill)


@keras.saving.register_keras_serializable(package="keras_vl")
class LIMoEMoeMlp(SparseMoeMlp):
    """A `SparseMoeMlp` that knows each token's modality (LIMoE).

    Tokens of both modalities arrive in one `[B, N, D]` tensor with the
    side input `{"mask": [B, N] bool, "modality": [B, N] int}` (0 = image,
    1 = text). With `modality_lengths=None` they are routed jointly: groups
    of `group_size` consecutive tokens mix images and texts, which then
    compete for the experts' capacity. With `modality_lengths=(n, l)`, a
    sequence `[n image tokens, l text tokens]` is routed in separate
    groups per modality, each routing adding its own auxiliary losses.

    On top of the router's auxiliary losses, this layer adds LIMoE's
    entropy losses on the clean routing distributions (`keras_vl.losses`),
    per modality `m` and over the whole batch, masked tokens excluded:
    `local_entropy_weight[m] * Omega_local(m)` and
    `global_entropy_weight[m] * max(0, tau[m] + Omega_global(m))`.

    In training steps it also records, in non-trainable variables, the
    per-modality routing statistics that the `LIMoE` task reports as
    metrics: `utilization` (`[2, E]`, the share of each modality's tokens
    that expert `e` processed), `dropped` (`[2]`, the share of each
    modality's expert choices that found no slot), and the layer's
    `auxiliary_loss` and `entropy_loss` (weighted, scalars).

    Args:
        num_experts: int. Number of experts `E`.
        mlp_dim: int. Hidden width of every expert.
        group_size: int. Tokens per routing group.
        local_entropy_weight: float or `(image, text)` weights of the local
            entropy loss.
        global_entropy_weight: float or `(image, text)` weights of the
            thresholded global entropy loss.
        entropy_threshold: float or `(image, text)` thresholds `tau` in
            `[0, ln E]` (nats); None = `ln(E) / 2`.
        modality_lengths: Optional `(image tokens, text tokens)`. None
            routes both modalities jointly; with it, a sequence of both
            (`[image tokens, text tokens]`) is routed in separate groups
            per modality. A sequence of one modality only is routed as is.
        **kwargs: `SparseMoeMlp` arguments (`num_selected_experts`,
            `capacity_factor`, `batch_priority`, loss weights, ...).

    Example:

    ```python
    moe = keras_vl.models.limoe.limoe_moe_mlp.LIMoEMoeMlp(
        num_experts=4, mlp_dim=64, group_size=8, local_entropy_weight=0.01
    )
    side = {"mask": np.ones((2, 8), bool),
            "modality": np.array([[0] * 5 + [1] * 3] * 2)}
    y = moe(np.random.normal(size=(2, 8, 16)), side_input=side)
    ```
    """

    def __init__(
        self,
        num_experts: int,
        mlp_dim: int,
        group_size: int,
        local_entropy_weight: float | Sequence[float] = 0.0,
        global_entropy_weight: float | Sequence[float] = 0.0,
        entropy_threshold: float | Sequence[float] | None = None,
        modality_lengths: Sequence[int] | None = None,
        **kwargs,
    ):
        super().__init__(num_experts, mlp_dim, group_size, **kwargs)
        self.local_entropy_weight = _per_modality(
            "local_entropy_weight", local_entropy_weight
        )
        self.global_entropy_weight = _per_modality(
            "global_entropy_weight", global_entropy_weight
        )
        thresholds = _per_modality("entropy_threshold", entropy_threshold)
        for name, value in zip(
            ("local_entropy_weight", "global_entropy_weight"),
            (self.local_entropy_weight, self.global_entropy_weight),
            strict=True,
        ):
            if min(value) < 0:
                raise ValueError(
                    f"`{name}` must be >= 0. Received: {name}={value}"
                )
        half = 0.5 * math.log(num_experts)
        self.entropy_threshold = tuple(
            check_entropy_threshold(
                half if tau is None else tau,
                num_experts,
                name=f"entropy_threshold[{MODALITIES[m]!r}]",
            )
            for m, tau in enumerate(thresholds)
        )
        if modality_lengths is not None:
            modality_lengths = tuple(modality_lengths)
            if len(modality_lengths) != len(MODALITIES) or not all(
                isinstance(n, int) and n >= 1 for n in modality_lengths
            ):
                raise ValueError(
                    "`modality_lengths` must be None (joint routing) or "
                    "(image tokens, text tokens), two ints >= 1. Received: "
                    f"modality_lengths={modality_lengths!r}"
                )
        self.modality_lengths = modality_lengths
        # Per-token routing of eager calls, kept while `routing_summary`
        # listens; plain attribute, not tracked by Keras.
        object.__setattr__(self, "_recorder", None)

    def build(self, input_shape):
        super().build(input_shape)
        experts = self.num_experts
        stats = {
            "utilization": (len(MODALITIES), experts),
            "dropped": (len(MODALITIES),),
            "auxiliary_loss": (),
            "entropy_loss": (),
        }
        for name, shape in stats.items():
            # Under tf.distribute each replica writes its own copy and a
            # read averages them. A mirrored variable would synchronise
            # every write, mid-forward-pass, where MirroredStrategy lets
            # another replica's thread run and replace the layers' shared
            # `losses` with its own.
            with keras.name_scope(self.name, caller=self):
                variable = keras.Variable(
                    initializer="zeros",
                    shape=shape,
                    dtype=self.variable_dtype,
                    trainable=False,
                    aggregation="mean",
                    synchronization="on_read",
                    name=name,
                )
            setattr(self, f"{name}_stat", variable)

    def call(self, inputs, side_input=None, training=None):
        if not isinstance(side_input, dict) or "modality" not in side_input:
            raise ValueError(
                "`LIMoEMoeMlp` needs `side_input={'mask': [B, N] bool, "
                "'modality': [B, N] int}`. Received: "
                f"{type(side_input).__name__}"
            )
        mask = side_input.get("mask")
        if mask is None:
            mask = ops.ones(ops.shape(inputs)[:2], dtype="bool")
        mask = ops.cast(mask, "bool")
        modality = ops.cast(side_input["modality"], "int32")
        lengths = self.modality_lengths
        if lengths is None or inputs.shape[1] != sum(lengths):
            # Joint routing, or a single modality's tokens.
            parts = [(inputs, mask, modality)]
        else:
            s = lengths[0]
            parts = [
                (inputs[:, :s], mask[:, :s], modality[:, :s]),
                (inputs[:, s:], mask[:, s:], modality[:, s:]),
            ]
        outputs, routings, flats = [], [], []
        for tokens, part_mask, part_modality in parts:
            out, routing = super().call(
                tokens,
                side_input=part_mask,
                training=training,
                return_routing=True,
            )
            outputs.append(out)
            routings.append(routing)
            size = self.group_size
            flats.append(
                (
                    _flat_groups(part_mask, size, False),
                    _flat_groups(part_modality, size, -1),
                )
            )
        outputs = ops.concatenate(outputs, 1) if len(parts) > 1 else outputs[0]

        experts = self.num_experts
        gates = ops.concatenate(
            [ops.reshape(r["gates"], (-1, experts)) for r in routings], 0
        )
        # Which experts processed each token (any slot), [T', E].
        assigned = ops.concatenate(
            [
                ops.reshape(
                    ops.cast(ops.any(r["dispatch"], axis=-1), "float32"),
                    (-1, experts),
                )
                for r in routings
            ],
            0,
        )
        valid = ops.concatenate([f[0] for f in flats], 0)
        ids = ops.concatenate([f[1] for f in flats], 0)

        entropy = ops.zeros(())
        for m in range(len(MODALITIES)):
            if self.local_entropy_weight[m] > 0:
                entropy = entropy + self.local_entropy_weight[
                    m
                ] * local_entropy_loss(gates, ids, m, valid)
            if self.global_entropy_weight[m] > 0:
                entropy = entropy + self.global_entropy_weight[
                    m
                ] * thresholded_global_entropy_loss(
                    gates, ids, m, self.entropy_threshold[m], valid
                )
        if any(self.local_entropy_weight) or any(self.global_entropy_weight):
            self.add_loss(entropy)

        if training:
            self._record_statistics(routings, assigned, valid, ids, entropy)
        if self._recorder is not None:
            self._recorder.append(
                self._per_token(routings, parts, assigned, gates)
            )
        return outputs

    def _record_statistics(self, routings, assigned, valid, ids, entropy):
        k = self.router.num_selected_experts
        utilization, dropped = [], []
        for m in range(len(MODALITIES)):
            weight = ops.cast(ops.logical_and(valid, ids == m), "float32")
            count = ops.maximum(ops.sum(weight), 1.0)
            share = ops.sum(assigned * weight[:, None], axis=0) / count
            utilization.append(share)
            dropped.append(1.0 - ops.sum(share) / k)
        auxiliary = ops.zeros(())
        for routing in routings:
            per_group = routing["auxiliary_loss"]
            auxiliary = auxiliary + ops.mean(per_group)
        values = {
            "utilization": ops.stack(utilization),
            "dropped": ops.stack(dropped),
            "auxiliary_loss": auxiliary,
            "entropy_loss": entropy,
        }
        for name, value in values.items():
            getattr(self, f"{name}_stat").assign(
                ops.stop_gradient(ops.cast(value, self.variable_dtype))
            )

    def _per_token(self, routings, parts, assigned, gates):
        """Eager per-token routing `[B, N, ...]` for `routing_summary`."""
        experts = self.num_experts
        lengths = [part[0].shape[1] for part in parts]
        batch = ops.shape(parts[0][0])[0]
        pieces = {"gates": [], "assigned": []}
        start = 0
        for routing, length in zip(routings, lengths, strict=True):
            groups = ops.shape(routing["gates"])[0] * self.group_size
            tokens = batch * length
            for name, flat in (("gates", gates), ("assigned", assigned)):
                piece = flat[start : start + tokens]
                pieces[name].append(
                    ops.reshape(piece, (batch, length, experts))
                )
            start += groups
        probs = ops.concatenate(pieces["gates"], 1)
        assigned = ops.concatenate(pieces["assigned"], 1)
        expert = ops.argmax(probs, axis=-1)
        return {
            "probs": ops.convert_to_numpy(probs),
            "expert": ops.convert_to_numpy(expert),
            "gate": ops.convert_to_numpy(ops.max(probs, axis=-1)),
            "dropped": ops.convert_to_numpy(
                ops.take_along_axis(assigned, expert[..., None], axis=-1)[
                    ..., 0
                ]
                == 0
            ),
        }

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "local_entropy_weight": list(self.local_entropy_weight),
                "global_entropy_weight": list(self.global_entropy_weight),
                "entropy_threshold": list(self.entropy_threshold),
                "modality_lengths": None
                if self.modality_lengths is None
                else list(self.modality_lengths),
            }
        )
        return config
