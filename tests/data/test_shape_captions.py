"""Tests of the captions and of which captions describe which images."""

import re

import numpy as np
import pytest

from keras_vl.data import COLORS, SHAPES, ShapesDataset
from keras_vl.data.shape_captions import format_caption

ALL_COLORS = list(COLORS)
ALL_SHAPES = list(SHAPES)


def words(text: str) -> set[str]:
    return set(re.findall(r"[a-z]+", text))


def test_captions_name_the_right_color_and_shape():
    names = ALL_COLORS
    ds = ShapesDataset(colors=names, shapes=ALL_SHAPES, held_out=None)
    batch = ds.sample(500, "all", seed=0)
    templates_seen = set()
    for caption, label in zip(batch["captions"], batch["labels"], strict=True):
        color, shape = ds.classes[label]
        caption_words = words(caption)
        assert color in caption_words and shape in caption_words, caption
        # No other colour or shape is mentioned.
        assert caption_words & set(names) == {color}, caption
        assert caption_words & set(ALL_SHAPES) == {shape}, caption
        templates_seen.add(re.sub(f"{color}|{shape}", "", caption))
    assert len(templates_seen) > 4  # several phrasings are used


def test_captions_use_an_before_vowels():
    ds = ShapesDataset(
        colors={"orange": (250, 140, 20), "indigo": (75, 0, 130)},
        shapes=["circle", "square"],
        held_out=None,
        caption_templates=["a {color} {shape}", "a {size} {color} {shape}"],
    )
    captions = ds.sample(200, "all", seed=0)["captions"]
    assert all(not re.search(r"\ba [aeiou]", c) for c in captions)
    assert any(c.startswith("an orange") for c in captions)


def test_size_words_follow_the_drawn_size():
    ds = ShapesDataset(
        held_out=None, caption_templates=["there is a {size} {color} {shape}"]
    )
    batch = ds.sample(600, "all", seed=0)
    images = batch["images"].astype(np.float32)
    # Foreground area from the pixels that differ from the corner pixel.
    corner = images[:, :1, :1]
    area = (np.linalg.norm(images - corner, axis=-1) > 40).mean(axis=(1, 2))
    sizes = np.array([c.split()[3] for c in batch["captions"]])
    small, medium, large = (
        area[sizes == word].mean()
        for word in ("small", "medium-sized", "large")
    )
    assert small < medium < large


def test_caption_positives_follow_the_named_color_and_shape():
    ds = ShapesDataset()
    red_circle = ds.classes.index(("red", "circle"))
    green_star = ds.classes.index(("green", "star"))
    captions = [
        "a red circle",
        "a red shape",
        "the circle is green",
        "a green star",
        "something",
        "a red or green star",
        b"the star",
    ]
    positives = ds.caption_positives([red_circle, green_star], captions)
    assert positives.dtype == bool and positives.shape == (2, 7)
    np.testing.assert_array_equal(
        positives,
        [
            [True, True, False, False, True, False, False],
            [False, False, False, True, True, False, True],
        ],
    )
    # Pairs with unnamed parts, and captions in the image slot.
    positives = ds.caption_positives(
        [(None, "circle"), ("red", None), "a red circle", "a red shape"],
        ["a circle", "a red circle", "a red shape", "something"],
    )
    np.testing.assert_array_equal(
        positives,
        [
            [True, False, False, True],
            [False, False, True, True],
            [True, True, True, True],
            [False, False, True, True],
        ],
    )
    # Each sampled image is described by its own full caption, and the
    # matrix is its class-equality matrix when every caption is full.
    batch = ds.sample(24, seed=4)
    positives = ds.caption_positives(batch["labels"], batch["captions"])
    labels = batch["labels"]
    np.testing.assert_array_equal(positives, labels[:, None] == labels)


def test_caption_positives_validation():
    ds = ShapesDataset()
    with pytest.raises(ValueError, match="images"):
        ds.caption_positives([0.5], ["a red circle"])
    with pytest.raises(ValueError, match="images"):
        ds.caption_positives([ds.num_classes], ["a red circle"])
    with pytest.raises(ValueError, match="images"):
        ds.caption_positives([("pink", "circle")], ["a red circle"])
    with pytest.raises(ValueError, match="images"):
        ds.caption_positives(3, ["a red circle"])
    with pytest.raises(ValueError, match="captions"):
        ds.caption_positives([0], [3])
    assert ds.caption_positives([], []).shape == (0, 0)


@pytest.mark.parametrize(
    "radius, x, y, expected",
    [
        # "small" below 0.17 and "large" above 0.24; the centre's thirds
        # split at 0.4 and 0.6 of the side.
        (0.1, 0.1, 0.9, "a small orange star in the bottom left corner"),
        (0.17, 0.4, 0.6, "a medium-sized orange star in the center"),
        (0.24, 0.5, 0.39, "a medium-sized orange star at the top"),
        (0.241, 0.61, 0.2, "a large orange star in the top right corner"),
        (0.3, 0.39, 0.5, "a large orange star on the left"),
    ],
)
def test_format_caption_describes_size_and_place(radius, x, y, expected):
    template = "a {size} {color} {shape} {where}"
    caption = format_caption(template, "orange", "star", radius, x, y, False)
    assert caption == expected


def test_format_caption_names_the_background_and_fixes_articles():
    template = "a {color} {shape} on a {background} background"
    assert (
        format_caption(template, "orange", "star", 0.2, 0.5, 0.5, True)
        == "an orange star on a noisy background"
    )
    assert (
        format_caption(template, "red", "star", 0.2, 0.5, 0.5, False)
        == "a red star on a plain background"
    )
