"""Drawing the images of `ShapesDataset`: palette, layouts and rendering.

An image is one shape over a tinted grey background. `random_layouts` draws
where each shape goes, how large, how turned and in which colours;
`render_shapes` then rasterises the shapes from exact signed distance fields
with one pixel of anti-aliasing and blends them over their backgrounds, all
in vectorised float32 numpy.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: Named colours available to `ShapesDataset`, as RGB in [0, 255]. Chosen
#: pairwise far apart and far from the grey backgrounds, so the colour of a
#: shape is recoverable from its pixels even after jitter and noise.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
    "yellow": (240, 210, 40),
    "purple": (140, 60, 190),
    "cyan": (40, 200, 210),
    "pink": (245, 130, 190),
    "white": (245, 245, 245),
    "black": (20, 20, 20),
}

#: Shapes available to `ShapesDataset`.
SHAPES: tuple[str, ...] = (
    "circle",
    "square",
    "triangle",
    "star",
    "cross",
    "diamond",
)

# How far a shape reaches beyond its nominal radius (star tips, diamond), so
# centres are drawn where the whole shape stays inside the image.
_EXTENT = 1.25
_MAX_ROTATION_DEGREES = 20.0  # small enough that a square stays a square
_COLOR_JITTER = 20.0
_BACKGROUND_GREY = (70.0, 180.0)
_BACKGROUND_TINT = 12.0
_NOISE_PROBABILITY, _NOISE_STD = 0.5, (2.0, 8.0)
_MIN_CONTRAST = 80.0  # Euclidean RGB distance between shape and background
_BACKGROUND_REDRAWS = 16


def random_layouts(
    rng: np.random.Generator,
    colors: np.ndarray,
    image_size: int,
    radius_range: tuple[float, float],
) -> dict[str, np.ndarray]:
    """Draws the placement, colours and noise of one shape per image.

    Args:
        rng: The generator to draw from.
        colors: float ``[n, 3]``, each image's nominal shape colour (RGB in
            [0, 255]); a random jitter is added to it.
        image_size: Height and width of the images in pixels.
        radius_range: ``(low, high)``, shape radii as fractions of
            `image_size`.

    Returns:
        A dict of ``[n]`` arrays: ``"radius"``, ``"cx"``, ``"cy"`` (in
        pixels), ``"angle"`` (radians), ``"noisy"`` (bool) and
        ``"noise_std"`` (0 where not noisy), and ``[n, 3]`` RGB arrays
        ``"foreground"`` and ``"background"``.

    Example:

    ```python
    rng = np.random.default_rng(0)
    layouts = random_layouts(rng, np.full((4, 3), 200.0), 64, (0.1, 0.3))
    layouts["radius"].shape  # (4,)
    ```
    """
    n, size = len(colors), image_size
    radius = rng.uniform(*radius_range, n) * size
    margin = _EXTENT * radius + 1.0
    cx = margin + rng.uniform(0.0, 1.0, n) * (size - 2 * margin)
    cy = margin + rng.uniform(0.0, 1.0, n) * (size - 2 * margin)
    angle = np.deg2rad(
        rng.uniform(-_MAX_ROTATION_DEGREES, _MAX_ROTATION_DEGREES, n)
    )
    foreground = colors + rng.uniform(-_COLOR_JITTER, _COLOR_JITTER, (n, 3))
    background = _random_backgrounds(rng, n)
    # Redraw backgrounds too close to their shape's colour (black on dark
    # grey, white on light grey) so every shape stays clearly visible.
    for _ in range(_BACKGROUND_REDRAWS):
        close = np.flatnonzero(
            np.linalg.norm(foreground - background, axis=1) < _MIN_CONTRAST
        )
        if len(close) == 0:
            break
        background[close] = _random_backgrounds(rng, len(close))
    noisy = rng.uniform(size=n) < _NOISE_PROBABILITY
    noise_std = np.where(noisy, rng.uniform(*_NOISE_STD, n), 0.0)
    return {
        "radius": radius,
        "cx": cx,
        "cy": cy,
        "angle": angle,
        "foreground": foreground,
        "background": background,
        "noisy": noisy,
        "noise_std": noise_std,
    }


def render_shapes(
    rng: np.random.Generator,
    layouts: dict[str, np.ndarray],
    shape_ids: np.ndarray,
    shapes: Sequence[str],
    image_size: int,
) -> np.ndarray:
    """Draws the images of `layouts`, adding their pixel noise from `rng`.

    Args:
        rng: The generator of the pixel noise.
        layouts: What `random_layouts` returned.
        shape_ids: int ``[n]``, each image's index into `shapes`.
        shapes: Shape names from `SHAPES`.
        image_size: Height and width of the images in pixels.

    Returns:
        uint8 RGB images ``[n, image_size, image_size, 3]``.

    Example:

    ```python
    rng = np.random.default_rng(0)
    layouts = random_layouts(rng, np.full((2, 3), 200.0), 32, (0.2, 0.3))
    images = render_shapes(rng, layouts, np.array([0, 1]), SHAPES, 32)
    ```
    """
    size = image_size
    n = len(shape_ids)
    images = np.empty((n, size, size, 3), np.uint8)
    # Render in chunks of about 2**18 pixels so the float32 temporaries
    # stay in cache: ~2x faster than one pass over a large batch.
    chunk = max(1, 2**18 // (size * size))
    for lo in range(0, n, chunk):
        part = slice(lo, min(lo + chunk, n))
        coverage = _coverage(
            size,
            shape_ids[part],
            shapes,
            layouts["cx"][part],
            layouts["cy"][part],
            layouts["radius"][part],
            layouts["angle"][part],
        )
        images[part] = _composite(
            rng,
            coverage,
            layouts["background"][part],
            layouts["foreground"][part],
            layouts["noise_std"][part],
        )
    return images


def _random_backgrounds(rng: np.random.Generator, n: int) -> np.ndarray:
    """Grey levels with a light random tint, float64 RGB ``[n, 3]``."""
    grey = rng.uniform(*_BACKGROUND_GREY, (n, 1))
    return grey + rng.uniform(-_BACKGROUND_TINT, _BACKGROUND_TINT, (n, 3))


def _composite(
    rng: np.random.Generator,
    coverage: np.ndarray,
    background: np.ndarray,
    foreground: np.ndarray,
    noise_std: np.ndarray,
) -> np.ndarray:
    """Blends foreground over background by coverage, adds noise -> uint8."""
    n, size = coverage.shape[:2]
    # Work on [n, S, S * 3] rows: broadcasting a per-image colour over a
    # trailing axis of 3 runs numpy's inner loop 3 elements at a time, which
    # is ~5x slower than these whole-row operations.
    images = np.repeat(coverage, 3, axis=-1)
    diff = np.tile((foreground - background).astype(np.float32), size)
    images *= diff[:, None, :]
    # The +0.5 makes the truncating cast to uint8 round to nearest.
    base = np.tile((background + 0.5).astype(np.float32), size)
    images += base[:, None, :]
    # Uniform int8 noise scaled to the drawn standard deviation: ~15x cheaper
    # than Gaussian draws and indistinguishable at this amplitude. Drawn for
    # every image so the stream does not depend on which are noisy; a zero
    # scale keeps plain backgrounds exactly plain.
    noise = rng.integers(-128, 128, images.shape, dtype=np.int8).astype(
        np.float32
    )
    noise *= (noise_std * np.sqrt(3.0) / 128.0).astype(np.float32)[
        :, None, None
    ]
    images += noise
    np.clip(images, np.float32(0), np.float32(255), out=images)
    return images.astype(np.uint8).reshape(n, size, size, 3)


def _coverage(
    size: int,
    shape_ids: np.ndarray,
    shapes: Sequence[str],
    cx: np.ndarray,
    cy: np.ndarray,
    radius: np.ndarray,
    angle: np.ndarray,
) -> np.ndarray:
    """Anti-aliased shape masks in [0, 1], float32 ``[n, size, size]``."""
    n = len(shape_ids)
    coverage = np.empty((n, size, size), np.float32)
    grid = np.arange(size, dtype=np.float32) + 0.5  # pixel centres
    for shape_id, name in enumerate(shapes):
        idx = np.flatnonzero(shape_ids == shape_id)
        if len(idx) == 0:
            continue
        x0, y0, r, theta = (
            v[idx].astype(np.float32)[:, None, None]
            for v in (cx, cy, radius, angle)
        )
        dx = grid[None, None, :] - x0
        dy = grid[None, :, None] - y0
        cos, sin = np.cos(theta), np.sin(theta)
        # Rotate into the shape's frame and flip y so "up" is up (the image
        # y axis points down): triangles and stars point to the top.
        px = cos * dx + sin * dy
        py = sin * dx - cos * dy
        sdf = _SDF[name](px, py, r)
        # Signed distance in pixels -> one pixel wide linear edge ramp.
        coverage[idx] = np.clip(0.5 - sdf, 0.0, 1.0)
    return coverage


# --- Signed distance fields ---------------------------------------------------
# Each takes coordinates in the shape's frame (y up) and the nominal radius,
# all in pixels, and returns the signed distance to the outline (negative
# inside).


def _sdf_circle(px, py, r):
    return np.sqrt(px * px + py * py) - r


def _sdf_box(px, py, hx, hy):
    dx = np.abs(px) - hx
    dy = np.abs(py) - hy
    outside = np.sqrt(np.maximum(dx, 0.0) ** 2 + np.maximum(dy, 0.0) ** 2)
    return outside + np.minimum(np.maximum(dx, dy), 0.0)


def _sdf_square(px, py, r):
    return _sdf_box(px, py, 0.85 * r, 0.85 * r)


def _sdf_triangle(px, py, r):
    # Equilateral triangle, centroid at the origin, apex up (Inigo Quilez's
    # exact SDF); `half` is half the side length (circumradius 1.2 r).
    k = np.float32(np.sqrt(3.0))
    half = 1.2 * r * k / 2.0
    px = np.abs(px) - half
    py = py + half / k
    fold = px + k * py > 0.0
    px, py = (
        np.where(fold, (px - k * py) / 2.0, px),
        np.where(fold, (-k * px - py) / 2.0, py),
    )
    px = px - np.clip(px, -2.0 * half, 0.0)
    return -np.sqrt(px * px + py * py) * np.sign(py)


def _sdf_star(px, py, r):
    # Five-pointed star, tip up (Inigo Quilez's exact SDF), outer radius
    # 1.2 r, inner radius ratio 0.45.
    outer, ratio = 1.2 * r, 0.45
    k1x, k1y = 0.809016994375, -0.587785252292
    k2x, k2y = -k1x, k1y
    px = np.abs(px)
    d = np.maximum(k1x * px + k1y * py, 0.0)
    px, py = px - 2.0 * d * k1x, py - 2.0 * d * k1y
    d = np.maximum(k2x * px + k2y * py, 0.0)
    px, py = px - 2.0 * d * k2x, py - 2.0 * d * k2y
    px = np.abs(px)
    py = py - outer
    bax, bay = ratio * -k1y, ratio * k1x - 1.0
    h = np.clip((px * bax + py * bay) / (bax * bax + bay * bay), 0.0, outer)
    qx, qy = px - bax * h, py - bay * h
    return np.sqrt(qx * qx + qy * qy) * np.sign(py * bax - px * bay)


def _sdf_cross(px, py, r):
    # A plus sign: union (min) of a horizontal and a vertical bar.
    arm, thick = 1.05 * r, 0.35 * r
    return np.minimum(
        _sdf_box(px, py, arm, thick), _sdf_box(px, py, thick, arm)
    )


def _sdf_diamond(px, py, r):
    # A square standing on a corner: L1 ball, scaled to unit gradient.
    return (np.abs(px) + np.abs(py) - 1.2 * r) / np.float32(np.sqrt(2.0))


_SDF = {
    "circle": _sdf_circle,
    "square": _sdf_square,
    "triangle": _sdf_triangle,
    "star": _sdf_star,
    "cross": _sdf_cross,
    "diamond": _sdf_diamond,
}
