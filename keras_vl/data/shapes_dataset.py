"""`ShapesDataset`: seeded image-caption pairs of coloured shapes.

Every image shows one coloured shape (circle, square, triangle, star, ...) on
a plain or lightly noisy, tinted grey background, with a caption such as
"a photo of a red circle" or "there is a small blue star". Nothing is
downloaded: images are drawn on the fly (see `shape_drawing`) and captioned
(see `shape_captions`), deterministically from a seed. This module holds the
classes and their splits, sampling, and the numpy and `tf.data` batches.

Some colour-shape combinations are held out of the training split, so a model
trained on the rest can be tested on truly unseen compositions (zero-shot).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from keras_vl.data.shape_captions import (
    CAPTION_TEMPLATES,
    PROMPT_TEMPLATES,
    caption_positives,
    check_caption_templates,
    format_caption,
)
from keras_vl.data.shape_drawing import (
    COLORS,
    SHAPES,
    random_layouts,
    render_shapes,
)

DEFAULT_COLORS: tuple[str, ...] = ("red", "green", "blue", "yellow")
DEFAULT_SHAPES: tuple[str, ...] = ("circle", "square", "triangle", "star")

#: Sentinel for the default held-out set: colour ``i`` is held out with shape
#: ``i % num_shapes`` (the diagonal of a Latin square), so every colour and
#: every shape keeps training examples but one combination per colour is new.
DEFAULT_HELD_OUT = "diagonal"

#: Default range of shape radii, as fractions of the image size.
DEFAULT_RADIUS_RANGE: tuple[float, float] = (0.12, 0.30)

_SPLITS = {"train": 0, "held_out": 1, "all": 2}


class ShapesDataset:
    """Seeded synthetic image-caption pairs of coloured shapes.

    Classes are all (colour, shape) combinations, ordered colour-major:
    ``classes[i] == (colors[i // len(shapes)], shapes[i % len(shapes)])``.
    Labels everywhere are indices into `classes`, so one zero-shot classifier
    over `class_names` scores both seen and held-out classes.

    Images are uint8 RGB. Each shows one shape with a random radius (by
    default 12-30% of the image size), centre, rotation (up to +-20
    degrees, so a square never looks like a diamond) and colour jitter, on a
    grey background with a random tint, half of them with light uniform
    pixel noise. Captions are drawn from `caption_templates` and describe
    the actual colour, shape, size, position and background.

    Generation is vectorised over the batch and deterministic: `sample` and
    the batch iterators given a `seed` return the same data on every call
    (numpy's PCG64 generator; the drawing itself is plain float32
    arithmetic).

    Args:
        image_size: int. Height and width of the images, at least 16.
        colors: colour names from `COLORS`, or a mapping from names to RGB
            triples in [0, 255]. Defaults to red, green, blue, yellow.
        shapes: shape names from `SHAPES`. Defaults to circle, square,
            triangle, star.
        held_out: the (colour, shape) pairs excluded from the training split:
            `DEFAULT_HELD_OUT` (``"diagonal"``: colour ``i`` with shape
            ``i % len(shapes)``), a sequence of pairs, or `None` for none. Every
            colour and every shape must keep at least one training class.
        caption_templates: caption phrasings with the fields described in
            `CAPTION_TEMPLATES` (the default).
        radius_range: ``(low, high)``, the range of shape radii as fractions
            of the image size, with ``0 < low <= high <= 0.35`` (larger
            shapes would not fit). Size words follow the absolute radius
            ("small" below 0.17, "large" above 0.24), so a range above 0.17
            never says "small".
        seed: int. The dataset's seed: part of every derived seed, and the
            seed of the stream that `sample(seed=None)` continues.

    Attributes:
        classes: list of (colour, shape) pairs; labels index into it.
        class_names: ``"colour shape"`` strings, e.g. ``"red circle"``.
        seen_classes: the classes of the ``"train"`` split.
        held_out_classes: the classes of the ``"held_out"`` split.
        prompt_templates: prompt format strings for zero-shot
            classification over `class_names` (`PROMPT_TEMPLATES`).
        colors, shapes: the colour and shape names, in class order.
        palette: dict from colour name to its RGB triple.

    Example:

    ```python
    ds = ShapesDataset(image_size=64, seed=0)
    ds.held_out_classes  # [("red", "circle"), ("green", "square"), ...]
    batch = ds.sample(8, split="train", seed=1)
    batch["images"].shape  # (8, 64, 64, 3), uint8
    batch["captions"][0]  # e.g. "there is a small blue triangle"
    ds.class_names[batch["labels"][0]]  # "blue triangle"

    # Infinite training stream for `model.fit`.
    train = ds.as_tf_dataset("train", batch_size=256, seed=0)
    # Zero-shot test on unseen combinations.
    test = ds.sample(1000, split="held_out", seed=123)
    ```
    """

    def __init__(
        self,
        image_size: int = 64,
        colors: Sequence[str] | Mapping[str, Sequence[int]] = DEFAULT_COLORS,
        shapes: Sequence[str] = DEFAULT_SHAPES,
        held_out: str | Sequence[tuple[str, str]] | None = DEFAULT_HELD_OUT,
        caption_templates: Sequence[str] = CAPTION_TEMPLATES,
        radius_range: tuple[float, float] = DEFAULT_RADIUS_RANGE,
        seed: int = 0,
    ):
        if not isinstance(image_size, int | np.integer) or image_size < 16:
            raise ValueError(
                f"`image_size` must be an int >= 16, got {image_size!r}."
            )
        _check_seed(seed, "seed")
        self.image_size = int(image_size)
        self.seed = int(seed)
        self.palette = _resolve_colors(colors)
        self.colors = list(self.palette)
        self.shapes = _resolve_shapes(shapes)
        self.classes = [(c, s) for c in self.colors for s in self.shapes]
        self.class_names = [f"{c} {s}" for c, s in self.classes]
        self.held_out_classes = self._resolve_held_out(held_out)
        held = set(self.held_out_classes)
        self.seen_classes = [pair for pair in self.classes if pair not in held]
        self.caption_templates = check_caption_templates(caption_templates)
        self.radius_range = _check_radius_range(radius_range)
        self.prompt_templates = list(PROMPT_TEMPLATES)
        self._split_ids = {
            "train": np.array(
                [i for i, p in enumerate(self.classes) if p not in held],
                np.int32,
            ),
            "held_out": np.array(
                [i for i, p in enumerate(self.classes) if p in held],
                np.int32,
            ),
            "all": np.arange(len(self.classes), dtype=np.int32),
        }
        self._rgb = np.array([self.palette[c] for c in self.colors], np.float32)
        # Serves `sample(seed=None)`: a fresh but reproducible stream.
        self._rng = np.random.default_rng([self.seed, 2**31])

    # --- Public API ---------------------------------------------------------

    @property
    def num_classes(self) -> int:
        """Number of (colour, shape) classes, seen and held out."""
        return len(self.classes)

    def class_ids(self, split: str = "all") -> np.ndarray:
        """Returns the int32 indices into `classes` that make up `split`."""
        return self._split_ids[_check_split(split)].copy()

    def sample(
        self, n: int, split: str = "train", seed: int | None = None
    ) -> dict[str, Any]:
        """Draws `n` random image-caption pairs.

        Args:
            n: int >= 0. Number of examples.
            split: ``"train"`` (seen classes), ``"held_out"`` or ``"all"``.
                Classes are drawn uniformly within the split.
            seed: int. The same `(dataset seed, split, seed)` always gives the
                same examples. `None` continues the dataset's own random
                stream (different on every call, reproducible per session).

        Returns:
            A dict with ``"images"`` (uint8 ``[n, S, S, 3]``), ``"captions"``
            (list of `n` str) and ``"labels"`` (int32 ``[n]``, indices into
            `classes`).

        Example:

        ```python
        batch = ShapesDataset().sample(4, split="held_out", seed=0)
        ```
        """
        if not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"`n` must be an int >= 0, got {n!r}.")
        ids = self._split_ids[_check_split(split)]
        if len(ids) == 0 and n > 0:
            raise ValueError(
                f"`split={split!r}` has no classes (nothing is held out)."
            )
        rng = self._rng if seed is None else self._generator(split, seed)
        return self._generate(rng, ids, int(n))

    def caption_positives(
        self, images: Sequence[Any] | np.ndarray, captions: Sequence[str]
    ) -> np.ndarray:
        """Which captions describe which images, as a contrastive target.

        Caption `j` describes image `i` when every colour and shape name it
        contains is image `i`'s: "a red circle" describes every red circle,
        "a red shape" every red image, a caption naming no colour or shape
        every image, and one naming two colours none. Passed to a
        contrastive model's `fit` as `y`, this makes every matching pair of
        a batch a positive, not only the diagonal (see `keras_vl.losses`).

        Args:
            images: what each of the `n` images shows: an int array of
                class indices, or a sequence whose items are each a class
                index, a ``(colour, shape)`` pair where either may be
                `None` (a colour or shape the captions cannot name, e.g.
                a shape drawn in another dataset's hue), or a caption (a
                text rendered in the image's place, as in CLIPPO's
                text-text pairs; it shows what it names).
            captions: `m` captions (str or UTF-8 bytes).

        Returns:
            A bool ``[n, m]`` array.

        Example:

        ```python
        ds = ShapesDataset()
        ds.caption_positives(
            [0, (None, "circle")],
            ["a red circle", "a red shape", "a circle"],
        )  # [[True, True, True], [False, False, True]]
        ```
        """
        return caption_positives(images, captions, self.colors, self.shapes)

    def as_numpy_batches(
        self,
        split: str = "train",
        batch_size: int = 32,
        num_batches: int | None = None,
        seed: int | None = 0,
        with_labels: bool = False,
    ) -> Iterator[dict[str, np.ndarray]]:
        """Yields batches ``{"images": uint8, "texts": str array}``.

        Batch `i` is drawn from its own generator seeded by ``(dataset seed,
        split, seed, i)``, so batches are reproducible one by one and
        `as_tf_dataset` can draw several in parallel.

        Args:
            split: ``"train"``, ``"held_out"`` or ``"all"``.
            batch_size: int >= 1.
            num_batches: int, or `None` for an endless stream.
            seed: int. Each new iteration with the same seed yields the same
                batches; `None` draws a fresh seed from the dataset's own
                generator.
            with_labels: bool. Also yield ``"labels"`` (int32 class indices).

        Example:

        ```python
        ds = ShapesDataset()
        for batch in ds.as_numpy_batches(batch_size=8, num_batches=2):
            print(batch["images"].shape, batch["texts"][0])
        ```
        """
        seed = self._check_batches(split, batch_size, num_batches, seed)
        index = 0
        while num_batches is None or index < num_batches:
            yield self._batch(split, batch_size, seed, index, with_labels)
            index += 1

    def as_tf_dataset(
        self,
        split: str = "train",
        batch_size: int = 32,
        num_batches: int | None = None,
        seed: int | None = 0,
        with_labels: bool = False,
    ):
        """Returns a batched, prefetched `tf.data.Dataset` of examples.

        Elements are dicts ``{"images": tf.uint8 [B, S, S, 3], "texts":
        tf.string [B]}`` (plus ``"labels"``, tf.int32 ``[B]``, with
        `with_labels`), ready for a contrastive model's `fit`. They are the
        batches of `as_numpy_batches` (which documents the arguments), drawn
        in numpy on parallel threads, in order; re-iterating the dataset
        replays the same batches (with `seed=None`, the seed is drawn once,
        here).

        Example:

        ```python
        ds = ShapesDataset(image_size=32)
        train = ds.as_tf_dataset("train", batch_size=64, num_batches=100)
        model.fit(train, epochs=3)
        ```
        """
        seed = self._check_batches(split, batch_size, num_batches, seed)
        keys = ["images", "texts"] + (["labels"] if with_labels else [])
        return numpy_batches_as_tf_dataset(
            lambda index: self._batch(split, batch_size, seed, index, True),
            keys,
            num_batches,
        )

    def __repr__(self) -> str:
        return (
            f"ShapesDataset(image_size={self.image_size}, "
            f"colors={self.colors}, shapes={self.shapes}, "
            f"held_out={self.held_out_classes}, "
            f"radius_range={self.radius_range}, seed={self.seed})"
        )

    # --- Generation ---------------------------------------------------------

    def _generator(self, split: str, seed: int) -> np.random.Generator:
        _check_seed(seed, "seed")
        return np.random.default_rng([self.seed, _SPLITS[split], int(seed)])

    def _check_batches(self, split, batch_size, num_batches, seed) -> int:
        """Validates batching arguments; returns the seed to use."""
        if len(self._split_ids[_check_split(split)]) == 0:
            raise ValueError(
                f"`split={split!r}` has no classes (nothing is held out)."
            )
        _check_batching(batch_size, num_batches)
        if seed is None:
            return int(self._rng.integers(2**31))
        _check_seed(seed, "seed")
        return int(seed)

    def _batch(
        self,
        split: str,
        batch_size: int,
        seed: int,
        index: int,
        with_labels: bool,
    ) -> dict[str, np.ndarray]:
        rng = np.random.default_rng([self.seed, _SPLITS[split], seed, 1, index])
        batch = self._generate(rng, self._split_ids[split], batch_size)
        out = {
            "images": batch["images"],
            "texts": np.array(batch["captions"], dtype=np.str_),
        }
        if with_labels:
            out["labels"] = batch["labels"]
        return out

    def _generate(
        self, rng: np.random.Generator, ids: np.ndarray, n: int
    ) -> dict[str, Any]:
        size = self.image_size
        labels = ids[rng.integers(len(ids), size=n)].astype(np.int32)
        color_ids = labels // len(self.shapes)
        shape_ids = labels % len(self.shapes)
        layouts = random_layouts(
            rng, self._rgb[color_ids], size, self.radius_range
        )
        # Drawn after the layouts and before the pixel noise: this order of
        # draws fixes which images and captions each seed gives.
        template_ids = rng.integers(len(self.caption_templates), size=n)
        images = render_shapes(rng, layouts, shape_ids, self.shapes, size)
        captions = [
            format_caption(
                self.caption_templates[t],
                self.colors[c],
                self.shapes[s],
                r / size,
                x / size,
                y / size,
                bool(z),
            )
            for t, c, s, r, x, y, z in zip(
                template_ids,
                color_ids,
                shape_ids,
                layouts["radius"],
                layouts["cx"],
                layouts["cy"],
                layouts["noisy"],
                strict=True,
            )
        ]
        return {"images": images, "captions": captions, "labels": labels}

    # --- Validation ---------------------------------------------------------

    def _resolve_held_out(self, held_out) -> list[tuple[str, str]]:
        if held_out is None:
            return []
        if isinstance(held_out, str):
            if held_out != DEFAULT_HELD_OUT:
                raise ValueError(
                    f"`held_out` must be {DEFAULT_HELD_OUT!r}, a sequence of "
                    f"(color, shape) pairs or None, got {held_out!r}."
                )
            if len(self.shapes) < 2:
                return []
            return [
                (c, self.shapes[i % len(self.shapes)])
                for i, c in enumerate(self.colors)
            ]
        pairs = []
        for pair in held_out:
            if (
                not isinstance(pair, Sequence)
                or isinstance(pair, str)
                or len(pair) != 2
                or tuple(pair) not in self.classes
            ):
                raise ValueError(
                    "`held_out` must contain (color, shape) pairs of this "
                    f"dataset's colors {self.colors} and shapes "
                    f"{self.shapes}, got {pair!r}."
                )
            if tuple(pair) not in pairs:
                pairs.append(tuple(pair))
        seen = [p for p in self.classes if p not in pairs]
        for color in self.colors:
            if not any(c == color for c, _ in seen):
                raise ValueError(
                    f"`held_out` leaves no training class with colour "
                    f"{color!r}; hold out fewer combinations."
                )
        for shape in self.shapes:
            if not any(s == shape for _, s in seen):
                raise ValueError(
                    f"`held_out` leaves no training class with shape "
                    f"{shape!r}; hold out fewer combinations."
                )
        # Keep class order, whatever order the pairs were given in.
        return [p for p in self.classes if p in pairs]


# --- Validation ---------------------------------------------------------------


def numpy_batches_as_tf_dataset(draw, keys: list[str], num_batches):
    """A prefetched `tf.data.Dataset` of the batches `draw(index)` makes.

    Args:
        draw: `index -> dict` of numpy arrays of one batch (a pure function
            of the index, so re-iterating replays the same batches);
            unicode string arrays become UTF-8 `tf.string`.
        keys: The keys of `draw`'s dicts to keep, in order.
        num_batches: How many batches; None for an endless dataset.
    """
    import tensorflow as tf  # Lazy: numpy use needs no TensorFlow.

    example = draw(0)
    specs = [
        tf.TensorSpec(
            example[key].shape,
            tf.string
            if example[key].dtype.kind in "USO"
            else tf.as_dtype(example[key].dtype),
        )
        for key in keys
    ]

    def draw_list(index):
        batch = draw(int(index))
        return [
            np.char.encode(batch[key], "utf-8")
            if batch[key].dtype.kind == "U"
            else batch[key]
            for key in keys
        ]

    def to_dict(index):
        dtypes = [spec.dtype for spec in specs]
        values = tf.numpy_function(draw_list, [index], dtypes, stateful=False)
        for value, spec in zip(values, specs, strict=True):
            value.set_shape(spec.shape)
        return dict(zip(keys, values, strict=True))

    if num_batches is None:
        indices = tf.data.Dataset.counter()
    else:
        indices = tf.data.Dataset.range(num_batches)
    # numpy releases the GIL in its array loops, so batches drawn on
    # parallel threads overlap; `deterministic` keeps their order.
    dataset = indices.map(
        to_dict, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def _resolve_colors(colors) -> dict[str, tuple[int, int, int]]:
    if isinstance(colors, str):
        colors = [colors]
    if isinstance(colors, Mapping):
        palette = {}
        for name, rgb in colors.items():
            values = np.asarray(rgb)
            if (
                not isinstance(name, str)
                or values.shape != (3,)
                or not np.all((values >= 0) & (values <= 255))
            ):
                raise ValueError(
                    "`colors` as a mapping must map names to RGB triples in "
                    f"[0, 255], got {name!r}: {rgb!r}."
                )
            palette[name] = tuple(int(v) for v in values)
    else:
        unknown = [c for c in colors if c not in COLORS]
        if unknown:
            raise ValueError(
                f"`colors` must be names from {list(COLORS)} (or a mapping "
                f"name -> RGB), got unknown {unknown}."
            )
        palette = {c: COLORS[c] for c in colors}
    if len(palette) == 0 or len(palette) != len(list(colors)):
        raise ValueError(
            f"`colors` must be a non-empty list of distinct names, got "
            f"{colors!r}."
        )
    return palette


def _resolve_shapes(shapes) -> list[str]:
    if isinstance(shapes, str):
        shapes = [shapes]
    shapes = list(shapes)
    unknown = [s for s in shapes if s not in SHAPES]
    if unknown or not shapes or len(set(shapes)) != len(shapes):
        raise ValueError(
            f"`shapes` must be a non-empty list of distinct names from "
            f"{list(SHAPES)}, got {shapes!r}."
        )
    return shapes


def _check_radius_range(radius_range) -> tuple[float, float]:
    try:
        low, high = (float(r) for r in radius_range)
    except (TypeError, ValueError) as error:
        raise ValueError(
            "`radius_range` must be a pair of floats (low, high), got "
            f"{radius_range!r}."
        ) from error
    # 0.35 keeps 1.25 radii plus a pixel of margin inside a 16-pixel image.
    if not 0.0 < low <= high <= 0.35:
        raise ValueError(
            "`radius_range` must satisfy 0 < low <= high <= 0.35, got "
            f"{radius_range!r}."
        )
    return low, high


def _check_split(split: str) -> str:
    if split not in _SPLITS:
        raise ValueError(
            f"`split` must be one of {list(_SPLITS)}, got {split!r}."
        )
    return split


def _check_seed(seed, name: str) -> None:
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"`{name}` must be an int >= 0, got {seed!r}.")


def _check_batching(batch_size, num_batches) -> None:
    if not isinstance(batch_size, int | np.integer) or batch_size < 1:
        raise ValueError(
            f"`batch_size` must be an int >= 1, got {batch_size!r}."
        )
    if num_batches is not None and (
        not isinstance(num_batches, int | np.integer) or num_batches < 0
    ):
        raise ValueError(
            f"`num_batches` must be an int >= 0 or None, got {num_batches!r}."
        )
