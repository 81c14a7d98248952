"""Rematerialised layer calls: activations recomputed in the backward pass."""

import keras
from keras import ops

# Keras has no public way to read a variable without autocasting it, and a
# float32 variable read as bfloat16 would reach the layer rounded.
from keras.src.backend import AutocastScope

from keras_vl.distribute.compiler import remat


def rematerialized_call(layer: keras.Layer, *args, **kwargs):
    """Calls `layer(*args, **kwargs)`, keeping none of its activations.

    The call runs under `keras_vl.distribute.remat` (`keras.remat`:
    `jax.checkpoint`, `tf.recompute_grad` or torch's non-reentrant
    checkpoint; on JAX on CPU a custom VJP that XLA:CPU cannot reorder):
    the backward pass runs the layer again instead of reading stored
    intermediates, so only the layer's inputs stay in memory between the
    forward and the backward pass. Outputs and gradients are those of the
    plain call.

    The layer runs as a pure function of its variables and floating-point
    inputs, so that the recomputation sees the same state as the first run:
    random seeds are read before the call (dropout and routing noise draw
    the same numbers twice), and what the call changes (seed states,
    statistics held in variables) or reports through `add_loss` comes out
    as outputs and is applied to the layer afterwards, once. (Keras' torch
    dropout without a seed draws from torch's global generator, whose state
    torch's checkpoint restores for the recomputation.) Integer and boolean
    tensors (masks, ids) and Python values are passed through as they are.

    Args:
        layer: A built layer.
        *args: Positional arguments of the call.
        **kwargs: Keyword arguments of the call (`training` included; pass
            it explicitly, the recomputation may run outside the model's
            call).

    Returns:
        What `layer(*args, **kwargs)` returns.

    Example:

    ```python
    block = keras_vl.layers.TransformerEncoderBlock(num_heads=2, mlp_dim=32)
    block.build((2, 5, 16))
    y = keras_vl.layers.rematerialized_call(block, x, training=True)
    ```
    """
    if not layer.built:
        raise ValueError(
            f"`layer` ({layer.name}) must be built before a rematerialised "
            "call."
        )
    variables = layer.variables
    with AutocastScope(None):
        values = [ops.convert_to_tensor(v.value) for v in variables]
    leaves = keras.tree.flatten((args, kwargs))
    # Floating tensors and trainable weights are the rematerialised
    # function's arguments (they need gradients). The rest comes from the
    # closure, and the state is copied now: the recomputation must not see
    # what the call leaves behind (TensorFlow reads its variables again,
    # torch would find them changed in place).
    leaf_is_input = [_is_float_tensor(x) for x in leaves]
    value_is_input = [
        v.trainable and _is_float_tensor(x)
        for v, x in zip(variables, values, strict=True)
    ]
    values = [
        x if is_input else ops.copy(x)
        for x, is_input in zip(values, value_is_input, strict=True)
    ]
    inputs = _pick(leaves, leaf_is_input) + _pick(values, value_is_input)
    num_leaves = sum(leaf_is_input)
    structure = {}

    def pure(*flat):
        call = _fill(leaves, leaf_is_input, flat[:num_leaves])
        current = _fill(values, value_is_input, flat[num_leaves:])
        call_args, call_kwargs = keras.tree.pack_sequence_as(
            (args, kwargs), call
        )
        mapping = list(zip(variables, current, strict=True))
        with keras.StatelessScope(
            state_mapping=mapping, collect_losses=True
        ) as scope:
            outputs = layer(*call_args, **call_kwargs)
            new_state = [scope.get_current_value(v) for v in variables]
            losses = list(scope.losses)
        # Only what the call assigned comes out, without gradient:
        # re-assigning a weight would cut its gradient in later uses
        # (CLIPPO runs one ViT on images and on texts).
        structure["updated"] = [
            new is not old for new, old in zip(new_state, current, strict=True)
        ]
        updates = _pick(new_state, structure["updated"])
        flat_outputs = keras.tree.flatten(outputs)
        structure["outputs"] = outputs
        structure["present"] = [x is not None for x in flat_outputs]
        return (
            _pick(flat_outputs, structure["present"]),
            [ops.stop_gradient(x) for x in updates],
            losses,
        )

    outputs, updates, losses = remat(pure)(*inputs)
    for variable, value in zip(
        _pick(variables, structure["updated"]), updates, strict=True
    ):
        variable.assign(value)
    for loss in losses:
        layer.add_loss(loss)
    flat = _fill(
        [None] * len(structure["present"]), structure["present"], outputs
    )
    return keras.tree.pack_sequence_as(structure["outputs"], flat)


def block_caller(remat: bool, training):
    """`(call, training)` for a stack's blocks: `call(block, ...)` runs a
    block plainly, or rematerialised when `remat` is set.

    The recomputation of a rematerialised block may run outside the
    stack's call (torch runs it in the backward pass), so its `training`
    flag is made an explicit bool.
    """
    if not remat:
        return keras.Layer.__call__, training
    return rematerialized_call, bool(training)


def _pick(items, mask) -> list:
    return [x for x, keep in zip(items, mask, strict=True) if keep]


def _fill(items, mask, replacements) -> list:
    """`items` with those where `mask` is set replaced, in order."""
    replacements = iter(replacements)
    return [
        next(replacements) if m else x for x, m in zip(items, mask, strict=True)
    ]


def _is_float_tensor(x) -> bool:
    return ops.is_tensor(x) and "float" in keras.backend.standardize_dtype(
        x.dtype
    )
