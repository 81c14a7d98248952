"""Tests of the drawn images: colours, shapes and sizes read from pixels."""

import numpy as np

from keras_vl.data import COLORS, SHAPES, ShapesDataset
from keras_vl.data.shape_drawing import random_layouts, render_shapes

ALL_COLORS = list(COLORS)
ALL_SHAPES = list(SHAPES)


def estimated_foreground_colors(images: np.ndarray) -> np.ndarray:
    """Mean colour of the pixels that differ from the background, estimated
    independently of the generator: the background is the median of the
    border pixels (shapes never reach the border)."""
    images = images.astype(np.float32)
    border = np.concatenate(
        [
            images[:, 0],
            images[:, -1],
            images[:, :, 0],
            images[:, :, -1],
        ],
        axis=1,
    )
    background = np.median(border, axis=1)  # [n, 3]
    distance = np.linalg.norm(images - background[:, None, None], axis=-1)
    mask = distance > 40.0
    counts = mask.sum(axis=(1, 2))
    assert np.all(counts > 0), "some image shows no visible shape"
    return (images * mask[..., None]).sum(axis=(1, 2)) / counts[:, None]


def nearest_color(rgb: np.ndarray, names: list[str]) -> list[str]:
    palette = np.array([COLORS[c] for c in names], np.float32)
    distance = np.linalg.norm(rgb[:, None] - palette[None], axis=-1)
    return [names[i] for i in np.argmin(distance, axis=1)]


def test_radius_range_bounds_the_drawn_shapes():
    kwargs = dict(held_out=None, shapes=["circle"], image_size=64)
    areas = {}
    for radius_range in [(0.12, 0.14), (0.28, 0.30)]:
        ds = ShapesDataset(radius_range=radius_range, **kwargs)
        images = ds.sample(50, "all", seed=0)["images"].astype(np.float32)
        corner = images[:, :1, :1]
        area = (np.linalg.norm(images - corner, axis=-1) > 40).mean((1, 2))
        areas[radius_range] = area
    # A circle of radius r covers pi r^2 of the image (up to noise and
    # anti-aliasing at the edge).
    for (low, high), area in areas.items():
        assert np.pi * (low - 0.01) ** 2 < area.min()
        assert area.max() < np.pi * (high + 0.01) ** 2
    large = ShapesDataset(
        radius_range=(0.25, 0.3),
        caption_templates=["{size}"],
        **kwargs,
    )
    assert set(large.sample(50, "all", seed=0)["captions"]) == {"large"}


def test_color_is_recoverable_from_pixels():
    ds = ShapesDataset(held_out=None)
    batch = ds.sample(400, "all", seed=0)
    predicted = nearest_color(
        estimated_foreground_colors(batch["images"]), ds.colors
    )
    truth = [ds.classes[i][0] for i in batch["labels"]]
    accuracy = np.mean([p == t for p, t in zip(predicted, truth, strict=True)])
    assert accuracy >= 0.95


def test_every_palette_color_and_shape_renders_visibly():
    ds = ShapesDataset(
        image_size=48, colors=ALL_COLORS, shapes=ALL_SHAPES, held_out=None
    )
    batch = ds.sample(540, "all", seed=1)
    predicted = nearest_color(
        estimated_foreground_colors(batch["images"]), ALL_COLORS
    )
    truth = [ds.classes[i][0] for i in batch["labels"]]
    accuracy = np.mean([p == t for p, t in zip(predicted, truth, strict=True)])
    assert accuracy >= 0.95
    assert set(batch["labels"].tolist()) == set(range(ds.num_classes))


def test_shapes_differ_in_silhouette():
    # Same colour, position and size draws for each shape: the masks differ.
    images = {}
    for shape in ALL_SHAPES:
        ds = ShapesDataset(shapes=[shape], colors=["red"], held_out=None)
        images[shape] = ds.sample(1, "all", seed=0)["images"][0]
    for i, a in enumerate(ALL_SHAPES):
        for b in ALL_SHAPES[i + 1 :]:
            differing = np.any(images[a] != images[b], axis=-1).mean()
            assert differing > 0.01, (a, b)


def test_layouts_keep_every_shape_inside_the_image():
    rng = np.random.default_rng(0)
    colors = np.tile(np.array(COLORS["white"], np.float32), (300, 1))
    layouts = random_layouts(rng, colors, 32, (0.3, 0.35))
    reach = 1.25 * layouts["radius"]
    for centre in (layouts["cx"], layouts["cy"]):
        assert np.all(centre - reach >= 1.0)
        assert np.all(centre + reach <= 31.0)
    assert np.all(np.abs(layouts["angle"]) <= np.deg2rad(20.0))
    contrast = layouts["foreground"] - layouts["background"]
    assert np.all(np.linalg.norm(contrast, axis=1) >= 80.0)
    noisy = layouts["noisy"]
    assert noisy.any() and not noisy.all()
    assert np.all(layouts["noise_std"][~noisy] == 0.0)
    assert np.all(layouts["noise_std"][noisy] >= 2.0)


def test_render_shapes_draws_plain_backgrounds_exactly():
    rng = np.random.default_rng(1)
    colors = np.tile(np.array(COLORS["red"], np.float32), (40, 1))
    layouts = random_layouts(rng, colors, 24, (0.2, 0.3))
    shape_ids = np.arange(40) % len(SHAPES)
    images = render_shapes(rng, layouts, shape_ids, SHAPES, 24)
    assert images.shape == (40, 24, 24, 3) and images.dtype == np.uint8
    # Shapes never reach the border: a plain image's border is one colour,
    # its background rounded to integers; a noisy one's varies.
    border = np.concatenate([images[:, 0], images[:, -1]], axis=1)
    plain = ~layouts["noisy"]
    assert plain.any() and not plain.all()
    for pixels, background, is_plain in zip(
        border, layouts["background"], plain, strict=True
    ):
        colors = np.unique(pixels, axis=0)
        if is_plain:
            assert len(colors) == 1
            assert np.all(np.abs(colors[0] - background) <= 0.5 + 1e-3)
        else:
            assert len(colors) > 1
    # The centre pixel shows the shape's colour (every shape covers it).
    centre = images[
        np.arange(40),
        layouts["cy"].astype(int),
        layouts["cx"].astype(int),
    ].astype(np.float32)
    distance = np.linalg.norm(centre - layouts["foreground"], axis=1)
    assert np.all(distance[plain] < 2.0)
