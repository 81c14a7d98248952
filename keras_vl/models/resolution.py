"""Rebuilding a model at another image resolution, keeping its weights.

big_vision fine-tunes and evaluates ViTs at resolutions they were not
trained at ("high-res fine-tuning"): every weight carries over except the
learned position embedding, whose patch grid is resampled. `from_preset`'s
`image_size` argument (see `finite_presets`) does this for any keras_vl
backbone or task that holds ViTs: ViT, CLIPPO and LiT alike.
"""

import keras

from keras_vl.layers.position_embedding import (
    PositionEmbedding,
    resample_position_embedding,
)
from keras_vl.ops import pair


def with_image_size(model: keras.Model, image_size) -> keras.Model:
    """The same model at another input resolution.

    The model is rebuilt from its config with every `image_size` (ViTs,
    text renderers, preprocessors) and `image_shape` (LiT's image input)
    set to the new size, and its weights are copied over; learned 2-D
    position embeddings are resampled as big_vision's `resample_posemb`
    does (fixed sin-cos ones are rebuilt at the new size).

    Args:
        model: A keras_vl backbone or task.
        image_size: int or `(height, width)` of the new input.

    Returns:
        `model` itself when it already takes that size, else a new model.

    Raises:
        ValueError: If `image_size` is not a positive int or pair, if the
            model has no image size, or if a part of it needs square
            images and the new size is not.

    Example:

    ```python
    vit = keras_vl.models.ViTBackbone.from_preset("./vit_b16")  # 224 px
    vit_384 = with_image_size(vit, 384)
    ```
    """
    size = pair(image_size, "image_size")
    found: list[str] = []
    resized = _rebuilt(model, size, found)
    if not found:
        raise ValueError(
            f"{type(model).__name__} has no image size to change "
            f"(no `image_size` or `image_shape` in its config)."
        )
    if resized is not model:
        _copy_weights(model, resized)
    return resized


def _rebuilt(obj: keras.Layer, size, found: list[str]) -> keras.Layer:
    """`obj` rebuilt from its config at `size` (without its weights), or
    `obj` itself when the size changes nothing in it.

    Parts the config names (a task's backbone and preprocessor, a
    backbone's towers, a preprocessor's tokenizer) are rebuilt one by one;
    a part without weights that the size leaves as it is (a tokenizer) is
    reused, so what was loaded into it (its vocabulary) is kept.
    """
    owner = type(obj).__name__
    config = obj.get_config()
    parts, plain = {}, {}
    for key, value in config.items():
        part = getattr(obj, key, None) if _is_serialized(value) else None
        if isinstance(part, keras.Layer):
            parts[key] = _rebuilt(part, size, found)
        else:
            plain[key] = value
    resized_plain = _resized(plain, size, owner, found)
    if resized_plain == plain and all(
        parts[key] is getattr(obj, key) for key in parts
    ):
        return obj
    for key, part in parts.items():
        if part is getattr(obj, key) and part.weights:
            # A fresh copy: the new model must not share the old one's.
            parts[key] = config[key]
    return type(obj).from_config({**resized_plain, **parts})


def _is_serialized(value) -> bool:
    return isinstance(value, dict) and "class_name" in value


def _resized(value, size, owner: str, found: list[str]):
    """`value` (a config) with its image sizes set to `size`."""
    if isinstance(value, list | tuple):
        return type(value)(_resized(v, size, owner, found) for v in value)
    if not isinstance(value, dict):
        return value
    owner = value.get("class_name", owner)
    out = {}
    for key, item in value.items():
        if key == "image_size" and item is not None:
            found.append(owner)
            out[key] = _sized_like(item, size, owner)
        elif key == "image_shape" and _is_sized_shape(item):
            found.append(owner)
            out[key] = type(item)([*size, *item[2:]])
        else:
            out[key] = _resized(item, size, owner, found)
    return out


def _is_sized_shape(shape) -> bool:
    return (
        isinstance(shape, list | tuple)
        and len(shape) == 3
        and None not in shape[:2]
    )


def _sized_like(old, size, owner: str):
    """`size` in the form of `old`: one int or a `(height, width)` pair."""
    if isinstance(old, list | tuple):
        return type(old)(size)
    if size[0] != size[1]:
        raise ValueError(
            f"{owner} takes square images only. Received: image_size={size}"
        )
    return size[0]


def _position_embeddings(model: keras.Model) -> list[PositionEmbedding]:
    return [
        layer
        for layer in model._flatten_layers(include_self=False)
        if isinstance(layer, PositionEmbedding)
    ]


def _copy_weights(source: keras.Model, target: keras.Model) -> None:
    """Copies `source`'s weights into `target`, an identical model but for
    the image size, resampling learned position embeddings."""
    grids = {}
    for old, new in zip(
        _position_embeddings(source),
        _position_embeddings(target),
        strict=True,
    ):
        if new.posemb == "learn":
            grids[id(new.embedding)] = (old.grid_shape, new.grid_shape)
    for old, new in zip(source.weights, target.weights, strict=True):
        value = keras.ops.convert_to_numpy(old)
        old_grid, new_grid = grids.get(id(new), (None, None))
        if old_grid != new_grid:
            value = resample_position_embedding(value, new_grid, old_grid)
        if tuple(value.shape) != tuple(new.shape):
            raise ValueError(
                f"Weight {old.path!r} of shape {tuple(old.shape)} does not "
                f"fit {new.path!r} {tuple(new.shape)} at the new image "
                "size; only position embeddings can be resized."
            )
        new.assign(value)
