"""Captions of `ShapesDataset`: templates, wording and what a caption names.

A caption describes one drawn image: its colour, shape, size, position and
background. `caption_positives` reads captions back: it finds the colour
and shape names a caption contains and decides which images it describes.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np

#: Caption phrasings. Fields: ``{color}``, ``{shape}``, ``{size}`` ("small",
#: "medium-sized", "large"), ``{where}`` ("in the top left corner", "on the
#: right", ...) and ``{background}`` ("plain" or "noisy"), all describing
#: the actual image. "a" before a vowel becomes "an" after formatting.
CAPTION_TEMPLATES: tuple[str, ...] = (
    "a {color} {shape}",
    "{color} {shape}",
    "a photo of a {color} {shape}",
    "an image of a {color} {shape}",
    "a {color} {shape} on a {background} background",
    "{color} {shape} on a {background} background",
    "there is a {size} {color} {shape}",
    "a {size} {color} {shape} {where}",
    "a picture of a {color} {shape} {where}",
    "the {shape} is {color}",
)

#: Prompt templates for zero-shot classification over `class_names`
#: (e.g. with `keras_vl.evaluation.ZeroShotClassifier`).
PROMPT_TEMPLATES: tuple[str, ...] = (
    "a {}",
    "a photo of a {}",
    "an image of a {}",
    "a {} on a plain background",
    "there is a {}",
)

# Size-word thresholds on the radius fraction: "small" below, "large" above.
_SMALL_BELOW, _LARGE_ABOVE = 0.17, 0.24
# Thirds of the image by the centre's fraction of the side: 0.4 and 0.6.
_NEAR_START, _NEAR_END = 0.4, 0.6
_WHERE = (
    ("in the top left corner", "at the top", "in the top right corner"),
    ("on the left", "in the center", "on the right"),
    (
        "in the bottom left corner",
        "at the bottom",
        "in the bottom right corner",
    ),
)
_ARTICLE = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")
_FIELDS = ("color", "shape", "size", "where", "background")
# Ids for a caption naming no colour (or shape), or several.
_UNNAMED, _CONFLICT = -1, -2


def check_caption_templates(templates: str | Sequence[str]) -> list[str]:
    """Validates caption format strings; returns them as a list.

    Args:
        templates: One format string or a sequence of them, using only the
            fields described in `CAPTION_TEMPLATES`.

    Returns:
        The templates, as a list.

    Raises:
        ValueError: if a template uses another field, is not a string, or
            no template is given.

    Example:

    ```python
    check_caption_templates(["a {color} {shape}"])  # ["a {color} {shape}"]
    ```
    """
    if isinstance(templates, str):
        templates = [templates]
    templates = list(templates)
    fields = dict.fromkeys(_FIELDS, "")
    for template in templates:
        try:
            if not isinstance(template, str):
                raise TypeError
            template.format(**fields)
        except (KeyError, IndexError, ValueError, TypeError) as error:
            raise ValueError(
                "`caption_templates` must be format strings using only the "
                "fields {color}, {shape}, {size}, {where}, {background}; got "
                f"{template!r}."
            ) from error
    if not templates:
        raise ValueError("`caption_templates` must not be empty.")
    return templates


def format_caption(
    template: str,
    color: str,
    shape: str,
    radius: float,
    x: float,
    y: float,
    noisy: bool,
) -> str:
    """Fills `template` with the words describing one drawn image.

    Args:
        template: A format string with the fields of `CAPTION_TEMPLATES`.
        color: The colour name.
        shape: The shape name.
        radius: The shape's radius as a fraction of the image size.
        x: The centre's column as a fraction of the image size.
        y: The centre's row as a fraction of the image size.
        noisy: Whether the background carries pixel noise.

    Returns:
        The caption, with "a" before a vowel turned into "an".

    Example:

    ```python
    format_caption(
        "a {size} {color} {shape} {where}", "orange", "star", 0.3, 0.5, 0.2,
        False,
    )  # "a large orange star at the top"
    ```
    """
    if radius < _SMALL_BELOW:
        size_word = "small"
    elif radius > _LARGE_ABOVE:
        size_word = "large"
    else:
        size_word = "medium-sized"
    row = _third(y)
    col = _third(x)
    text = template.format(
        color=color,
        shape=shape,
        size=size_word,
        where=_WHERE[row][col],
        background="noisy" if noisy else "plain",
    )
    return _ARTICLE.sub(r"\1n ", text)


def caption_positives(
    images: Sequence[Any] | np.ndarray,
    captions: Sequence[str | bytes],
    colors: Sequence[str],
    shapes: Sequence[str],
) -> np.ndarray:
    """Which captions describe which images of a colour-major class list.

    Caption `j` describes image `i` when every colour and shape name it
    contains is image `i`'s; see `ShapesDataset.caption_positives`, which
    documents the arguments, for the full rules.

    Args:
        images: `n` items, each a class index (into the classes
            ``[(c, s) for c in colors for s in shapes]``), a ``(colour,
            shape)`` pair where either may be `None`, or a caption.
        captions: `m` captions (str or UTF-8 bytes).
        colors: The colour names.
        shapes: The shape names.

    Returns:
        A bool ``[n, m]`` array.

    Example:

    ```python
    caption_positives([0], ["a red shape"], ["red"], ["circle"])  # [[True]]
    ```
    """
    shown = _shown_ids(images, colors, shapes)
    named = np.array(
        [_names_in(caption, colors, shapes) for caption in captions],
        np.int32,
    ).reshape(-1, 2)
    matches = np.ones((len(shown), len(named)), bool)
    for column in (0, 1):
        said = named[None, :, column]
        has = shown[:, None, column]
        matches &= (said == _UNNAMED) | ((said == has) & (said >= 0))
    return matches


def _third(fraction: float) -> int:
    """0, 1 or 2: the third of the image side a centre lies in."""
    if fraction < _NEAR_START:
        return 0
    return 2 if fraction > _NEAR_END else 1


def _shown_ids(images, colors, shapes) -> np.ndarray:
    """(colour id, shape id) of each item of `images` -> int32 [n, 2],
    with `_UNNAMED` for `None` and `_names_in` ids for captions."""
    if isinstance(images, str | bytes) or not isinstance(
        images, Sequence | np.ndarray
    ):
        raise ValueError(
            f"`images` must be a sequence, got {type(images).__name__}."
        )
    num_classes = len(colors) * len(shapes)
    ids = np.empty((len(images), 2), np.int32)
    for i, item in enumerate(images):
        if isinstance(item, str | bytes):
            ids[i] = _names_in(item, colors, shapes)
        elif isinstance(item, int | np.integer) and not isinstance(item, bool):
            if not 0 <= item < num_classes:
                raise ValueError(
                    f"`images` class indices must be in [0, "
                    f"{num_classes}), got {item}."
                )
            ids[i] = divmod(int(item), len(shapes))
        elif (
            isinstance(item, Sequence)
            and len(item) == 2
            and (item[0] is None or item[0] in colors)
            and (item[1] is None or item[1] in shapes)
        ):
            ids[i] = [
                _UNNAMED if name is None else list(names).index(name)
                for name, names in zip(item, (colors, shapes), strict=True)
            ]
        else:
            raise ValueError(
                "`images` items must be class indices, (colour, shape) "
                f"pairs of {list(colors)} and {list(shapes)} (or None), or "
                f"captions; got {item!r}."
            )
    return ids


def _names_in(caption, colors, shapes) -> tuple[int, int]:
    """(colour id, shape id) named by `caption`: `_UNNAMED` for none,
    `_CONFLICT` for several different ones."""
    if isinstance(caption, bytes):
        caption = caption.decode("utf-8", errors="replace")
    if not isinstance(caption, str):
        raise ValueError(
            f"`captions` must be strings, got {type(caption).__name__}."
        )
    named = []
    for names in (colors, shapes):
        found = {
            i
            for i, name in enumerate(names)
            if re.search(rf"\b{re.escape(name)}\b", caption)
        }
        named.append(
            found.pop() if len(found) == 1 else _CONFLICT if found else _UNNAMED
        )
    return named[0], named[1]
