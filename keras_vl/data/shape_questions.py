"""Captioning and visual questions about the shapes images, in two languages.

`ShapeQuestions` draws the images of `ShapesDataset` (same colours, shapes,
splits and drawing) and pairs each with a PaLI-style prompt and a short
answer, in English or French:

- captioning: "Generate the alt_text in FR" -> "une étoile verte en haut";
- colour: "Answer in EN: what colour is the shape?" -> "green";
- shape: "Answer in FR: quelle est cette forme ?" -> "étoile";
- position: "Answer in EN: where is the shape?" -> "top left".

Answers are short and have one right wording each, so exact-match accuracy
is a meaningful score. French adjectives agree with the shape's gender
("un cercle vert", "une étoile verte"); a colour asked about is named by its
noun, which is masculine ("vert").

`shape_vocabulary_proto` trains the tiny SentencePiece vocabulary that
tokenizes every string these examples can contain.
"""

from __future__ import annotations

import io
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from keras_vl.data.shape_captions import _third
from keras_vl.data.shape_drawing import random_layouts, render_shapes
from keras_vl.data.shapes_dataset import (
    DEFAULT_COLORS,
    DEFAULT_HELD_OUT,
    DEFAULT_RADIUS_RANGE,
    DEFAULT_SHAPES,
    ShapesDataset,
    numpy_batches_as_tf_dataset,
)
from keras_vl.models.pali.pali_preprocessor import format_prompt

#: The languages the examples are written in, as PaLI language codes.
LANGUAGES: tuple[str, ...] = ("EN", "FR")

#: The kinds of example: a caption, or a question about the shape's
#: colour, kind or position. Each example's ``"task"`` is one of these.
QUESTION_TASKS: tuple[str, ...] = (
    "caption",
    "vqa_color",
    "vqa_shape",
    "vqa_position",
)

#: The questions, by task and language.
QUESTIONS: dict[str, dict[str, str]] = {
    "vqa_color": {
        "EN": "what colour is the shape?",
        "FR": "de quelle couleur est la forme ?",
    },
    "vqa_shape": {
        "EN": "what shape is it?",
        "FR": "quelle est cette forme ?",
    },
    "vqa_position": {
        "EN": "where is the shape?",
        "FR": "où est la forme ?",
    },
}

# French colour adjectives: (masculine, feminine). The masculine is also the
# colour's noun, the answer to "de quelle couleur ...".
_FRENCH_COLORS: dict[str, tuple[str, str]] = {
    "red": ("rouge", "rouge"),
    "green": ("vert", "verte"),
    "blue": ("bleu", "bleue"),
    "yellow": ("jaune", "jaune"),
    "purple": ("violet", "violette"),
    "cyan": ("cyan", "cyan"),
    "pink": ("rose", "rose"),
    "white": ("blanc", "blanche"),
    "black": ("noir", "noire"),
}
# French shape nouns and their gender (True: feminine).
_FRENCH_SHAPES: dict[str, tuple[str, bool]] = {
    "circle": ("cercle", False),
    "square": ("carré", False),
    "triangle": ("triangle", False),
    "star": ("étoile", True),
    "cross": ("croix", True),
    "diamond": ("losange", False),
}
# Where the centre lies, by (row third, column third): the short answer,
# and the phrase a caption ends with.
_POSITIONS = {
    "EN": (
        ("top left", "top", "top right"),
        ("left", "center", "right"),
        ("bottom left", "bottom", "bottom right"),
    ),
    "FR": (
        ("en haut à gauche", "en haut", "en haut à droite"),
        ("à gauche", "au centre", "à droite"),
        ("en bas à gauche", "en bas", "en bas à droite"),
    ),
}
_ENGLISH_WHERE = (
    ("at the top left", "at the top", "at the top right"),
    ("on the left", "in the center", "on the right"),
    ("at the bottom left", "at the bottom", "at the bottom right"),
)
_SPLITS = {"train": 0, "held_out": 1, "all": 2}


def describe_shape(
    color: str,
    shape: str,
    lang: str,
    row: int | None = None,
    col: int | None = None,
) -> str:
    """A short caption of one shape, in English or French.

    Args:
        color: A colour name of `keras_vl.data.COLORS`, e.g. ``"red"``.
        shape: A shape name of `keras_vl.data.SHAPES`, e.g. ``"star"``.
        lang: ``"EN"`` or ``"FR"``.
        row: The third of the image the centre lies in, top to bottom
            (0, 1 or 2), or None to leave the position out.
        col: The third, left to right; given together with `row`.

    Returns:
        The caption, e.g. ``"a red star at the top left"`` or ``"une étoile
        rouge en haut à gauche"``.

    Raises:
        ValueError: for an unknown colour, shape or language, or only one
            of `row` and `col`.

    Example:

    ```python
    describe_shape("green", "star", "FR", 0, 1)  # "une étoile verte en haut"
    describe_shape("red", "circle", "EN")  # "a red circle"
    ```
    """
    _check_names([color], [shape], [lang])
    if (row is None) != (col is None):
        raise ValueError("Pass both `row` and `col`, or neither.")
    if lang == "EN":
        article = "an" if color[0] in "aeiou" else "a"
        text = f"{article} {color} {shape}"
        where = None if row is None else _ENGLISH_WHERE[row][col]
    else:
        noun, feminine = _FRENCH_SHAPES[shape]
        adjective = _FRENCH_COLORS[color][int(feminine)]
        text = f"{'une' if feminine else 'un'} {noun} {adjective}"
        where = None if row is None else _POSITIONS["FR"][row][col]
    return text if where is None else f"{text} {where}"


def answer(
    task: str, color: str, shape: str, lang: str, row: int, col: int
) -> str:
    """The expected response to `task` about one drawn shape.

    Args:
        task: One of `QUESTION_TASKS`.
        color: The shape's colour name.
        shape: The shape's name.
        lang: ``"EN"`` or ``"FR"``.
        row: The third of the image its centre lies in, top to bottom.
        col: The third, left to right.

    Returns:
        The caption (``"caption"``) or the short answer.

    Example:

    ```python
    answer("vqa_position", "red", "star", "FR", 2, 0)  # "en bas à gauche"
    answer("vqa_color", "green", "star", "FR", 1, 1)  # "vert"
    ```
    """
    if task not in QUESTION_TASKS:
        raise ValueError(
            f"`task` must be one of {list(QUESTION_TASKS)}. Received: "
            f"task={task!r}"
        )
    _check_names([color], [shape], [lang])
    if task == "caption":
        return describe_shape(color, shape, lang, row, col)
    if task == "vqa_position":
        return _POSITIONS[lang][row][col]
    if lang == "EN":
        return color if task == "vqa_color" else shape
    if task == "vqa_color":
        return _FRENCH_COLORS[color][0]
    return _FRENCH_SHAPES[shape][0]


def prompt(task: str, lang: str) -> str:
    """The PaLI prompt of `task` in `lang` (see `format_prompt`).

    Example:

    ```python
    prompt("vqa_shape", "EN")  # "Answer in EN: what shape is it?"
    ```
    """
    if task not in QUESTION_TASKS:
        raise ValueError(
            f"`task` must be one of {list(QUESTION_TASKS)}. Received: "
            f"task={task!r}"
        )
    _check_names([], [], [lang])
    if task == "caption":
        return format_prompt("caption", lang)
    return format_prompt("vqa", lang, QUESTIONS[task][lang])


def all_texts(
    colors: Sequence[str] = tuple(_FRENCH_COLORS),
    shapes: Sequence[str] = tuple(_FRENCH_SHAPES),
    languages: Sequence[str] = LANGUAGES,
    tasks: Sequence[str] = QUESTION_TASKS,
) -> list[str]:
    """Every distinct prompt and response the examples can contain.

    Args:
        colors: Colour names (default: all of `COLORS`).
        shapes: Shape names (default: all of `SHAPES`).
        languages: Language codes of `LANGUAGES`.
        tasks: Tasks of `QUESTION_TASKS`.

    Returns:
        The strings, sorted.

    Example:

    ```python
    all_texts(["red"], ["star"], ["FR"], ["vqa_color"])
    # ["Answer in FR: de quelle couleur est la forme ?", "rouge"]
    ```
    """
    _check_names(colors, shapes, languages)
    texts = set()
    for lang in languages:
        for task in tasks:
            texts.add(prompt(task, lang))
            for color in colors:
                for shape in shapes:
                    for row in range(3):
                        for col in range(3):
                            texts.add(
                                answer(task, color, shape, lang, row, col)
                            )
    return sorted(texts)


def shape_vocabulary_proto(vocabulary_size: int = 256) -> bytes:
    """Trains the tiny SentencePiece vocabulary of the shapes questions.

    A byte-pair-encoding model is trained on `all_texts()` (every colour
    and shape, both languages) with T5's conventions: ``<pad>`` = 0,
    ``</s>`` = 1, ``<unk>`` = 2 and no BOS, and full character coverage
    (French accents get pieces). With the default 256 pieces, whole words
    are pieces: prompts take at most 11 tokens and responses at most 7.
    Training runs on one thread and is deterministic: the same size always
    gives the same bytes. Every string of the examples tokenizes
    losslessly: detokenizing its ids gives it back.

    Args:
        vocabulary_size: int >= 64, the number of pieces (special ones
            included); the texts have room for about 400.

    Returns:
        The serialized SentencePiece model, for
        ``keras_hub.tokenizers.T5Tokenizer(proto=...)`` or
        ``SentencePieceTokenizer(proto=...)``.

    Example:

    ```python
    tokenizer = keras_hub.tokenizers.T5Tokenizer(
        proto=shape_vocabulary_proto()
    )
    tokenizer.detokenize(tokenizer.tokenize("une étoile verte"))
    ```
    """
    import sentencepiece as spm  # Lazy: only the vocabulary needs it.

    if (
        not isinstance(vocabulary_size, int | np.integer)
        or isinstance(vocabulary_size, bool)
        or vocabulary_size < 64
    ):
        raise ValueError(
            "`vocabulary_size` must be an int >= 64 (room for the "
            f"characters). Received: vocabulary_size={vocabulary_size!r}"
        )
    model = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(all_texts()),
            model_writer=model,
            vocab_size=int(vocabulary_size),
            model_type="bpe",
            pad_id=0,
            eos_id=1,
            unk_id=2,
            bos_id=-1,
            character_coverage=1.0,
            num_threads=1,
            minloglevel=2,
        )
    except RuntimeError as error:
        # The corpus is small: past some size there is nothing to merge.
        raise ValueError(
            "`vocabulary_size` is larger than the shapes texts can fill. "
            f"Received: vocabulary_size={vocabulary_size} ({error})"
        ) from None
    return model.getvalue()


class ShapeQuestions:
    """Seeded captioning and VQA examples about coloured shapes, EN and FR.

    Images are those of `ShapesDataset` with the same arguments: one shape
    per image, classes colour-major, and the same held-out colour-shape
    combinations, which never appear in the ``"train"`` split (so a model
    can be asked about unseen combinations). Each image gets one task of
    `tasks` and one language of `languages`, drawn uniformly.

    Examples are dicts of batches: ``"images"`` (uint8 ``[n, S, S, 3]``),
    ``"prompts"``, ``"responses"``, ``"task"`` (one of `QUESTION_TASKS`)
    and ``"lang"`` (one of `LANGUAGES`), plus, on request, ``"labels"``
    (int32 class indices into `classes`). ``{"images", "prompts",
    "responses"}`` is what
    `keras_vl.models.pali.PaLIPreprocessor` takes (it drops `task` and
    `lang`). The position answer names the cell of a 3 x 3 grid over the
    image that holds the shape's centre ("top left", ..., "center"), cut
    where `ShapesDataset`'s captions cut it.

    Generation is deterministic: the same `(seed, split, sample seed)` or
    batch index always gives the same examples.

    Args:
        image_size: int >= 16. Height and width of the images.
        colors: colour names of `COLORS` (all have French names).
        shapes: shape names of `SHAPES`.
        held_out: the held-out (colour, shape) pairs, as `ShapesDataset`
            takes them (default: its diagonal).
        radius_range: shape radii as fractions of `image_size`.
        tasks: which of `QUESTION_TASKS` to draw from.
        languages: which of `LANGUAGES` to draw from.
        seed: int >= 0. The dataset's seed.

    Attributes:
        shapes_dataset: The `ShapesDataset` whose classes and splits these
            examples use.
        classes, seen_classes, held_out_classes: as in `ShapesDataset`.

    Example:

    ```python
    data = ShapeQuestions(image_size=32, seed=0)
    batch = data.sample(4, split="train", seed=1)
    batch["prompts"][0]  # e.g. "Answer in FR: où est la forme ?"
    batch["responses"][0]  # e.g. "en haut à droite"
    train = data.as_tf_dataset("train", batch_size=64).map(preprocessor)
    ```
    """

    def __init__(
        self,
        image_size: int = 64,
        colors: Sequence[str] = DEFAULT_COLORS,
        shapes: Sequence[str] = DEFAULT_SHAPES,
        held_out: str | Sequence[tuple[str, str]] | None = DEFAULT_HELD_OUT,
        radius_range: tuple[float, float] = DEFAULT_RADIUS_RANGE,
        tasks: Sequence[str] = QUESTION_TASKS,
        languages: Sequence[str] = LANGUAGES,
        seed: int = 0,
    ):
        if isinstance(colors, Mapping):
            raise ValueError(
                "`colors` must be colour names with French names "
                f"({list(_FRENCH_COLORS)}), not a palette mapping."
            )
        self.shapes_dataset = ShapesDataset(
            image_size=image_size,
            colors=colors,
            shapes=shapes,
            held_out=held_out,
            radius_range=radius_range,
            seed=seed,
        )
        self.tasks = _check_choice(tasks, QUESTION_TASKS, "tasks")
        self.languages = _check_choice(languages, LANGUAGES, "languages")
        ds = self.shapes_dataset
        self.classes = ds.classes
        self.seen_classes = ds.seen_classes
        self.held_out_classes = ds.held_out_classes
        self._rgb = np.array([ds.palette[c] for c in ds.colors], np.float32)
        self._rng = np.random.default_rng([ds.seed, 2**31 + 1])

    @property
    def image_size(self) -> int:
        """Height and width of the images."""
        return self.shapes_dataset.image_size

    def texts(self) -> list[str]:
        """Every distinct prompt and response these examples can contain,
        sorted (for a vocabulary, or a closed set of answers)."""
        ds = self.shapes_dataset
        return all_texts(ds.colors, ds.shapes, self.languages, self.tasks)

    def sample(
        self,
        n: int,
        split: str = "train",
        seed: int | None = None,
        with_labels: bool = False,
    ) -> dict[str, Any]:
        """Draws `n` examples.

        Args:
            n: int >= 0.
            split: ``"train"`` (seen classes), ``"held_out"`` or ``"all"``.
            seed: int: the same `(dataset seed, split, seed)` always gives
                the same examples; `None` continues the object's own
                stream.
            with_labels: bool. Also return ``"labels"``.

        Returns:
            A dict with ``"images"`` (uint8 ``[n, S, S, 3]``), ``"prompts"``,
            ``"responses"``, ``"task"`` and ``"lang"`` (lists of `n` str),
            plus ``"labels"`` (int32 ``[n]``) with `with_labels`.

        Example:

        ```python
        batch = ShapeQuestions().sample(8, split="held_out", seed=0)
        ```
        """
        if not isinstance(n, int | np.integer) or n < 0:
            raise ValueError(f"`n` must be an int >= 0, got {n!r}.")
        ids = self._split_ids(split)
        if seed is None:
            rng = self._rng
        else:
            _check_seed(seed, "seed")
            rng = np.random.default_rng(
                [self.shapes_dataset.seed, _SPLITS[split], int(seed), 3]
            )
        batch = self._generate(rng, ids, int(n))
        if not with_labels:
            del batch["labels"]
        return batch

    def as_numpy_batches(
        self,
        split: str = "train",
        batch_size: int = 32,
        num_batches: int | None = None,
        seed: int = 0,
        with_labels: bool = False,
    ) -> Iterator[dict[str, np.ndarray]]:
        """Yields batches of numpy arrays (strings as `np.str_` arrays).

        Batch `i` comes from its own generator seeded by ``(dataset seed,
        split, seed, i)``, so batches are reproducible one by one.

        Args:
            split: ``"train"``, ``"held_out"`` or ``"all"``.
            batch_size: int >= 1.
            num_batches: int, or `None` for an endless stream.
            seed: int >= 0.
            with_labels: bool. Also yield ``"labels"`` (int32 class
                indices); the preprocessor takes batches without them.

        Example:

        ```python
        for batch in ShapeQuestions().as_numpy_batches(num_batches=2):
            x, y, sample_weight = preprocessor(batch)
        ```
        """
        self._check_batches(split, batch_size, num_batches, seed)
        index = 0
        while num_batches is None or index < num_batches:
            yield self._batch(split, batch_size, seed, index, with_labels)
            index += 1

    def as_tf_dataset(
        self,
        split: str = "train",
        batch_size: int = 32,
        num_batches: int | None = None,
        seed: int = 0,
        with_labels: bool = False,
    ):
        """The batches of `as_numpy_batches` as a `tf.data.Dataset`.

        Elements are dicts of ``tf.uint8`` images ``[B, S, S, 3]`` and
        tf.string ``[B]`` prompts, responses, task and lang (plus tf.int32
        ``[B]`` labels with `with_labels`), drawn in numpy on parallel
        threads, in order; ready for ``.map(preprocessor)``. The arguments
        are those of `as_numpy_batches`.

        Example:

        ```python
        data = ShapeQuestions(image_size=32)
        train = data.as_tf_dataset("train", batch_size=64, num_batches=100)
        train = train.map(preprocessor)
        ```
        """
        self._check_batches(split, batch_size, num_batches, seed)
        keys = ["images", "prompts", "responses", "task", "lang"]
        keys += ["labels"] if with_labels else []
        return numpy_batches_as_tf_dataset(
            lambda index: self._batch(split, batch_size, seed, index, True),
            keys,
            num_batches,
        )

    def __repr__(self) -> str:
        ds = self.shapes_dataset
        return (
            f"ShapeQuestions(image_size={ds.image_size}, colors={ds.colors}, "
            f"shapes={ds.shapes}, held_out={ds.held_out_classes}, "
            f"tasks={self.tasks}, languages={self.languages}, "
            f"seed={ds.seed})"
        )

    # --- Internals ----------------------------------------------------------

    def _split_ids(self, split: str) -> np.ndarray:
        if split not in _SPLITS:
            raise ValueError(
                f"`split` must be one of {list(_SPLITS)}, got {split!r}."
            )
        ids = self.shapes_dataset.class_ids(split)
        if len(ids) == 0:
            raise ValueError(
                f"`split={split!r}` has no classes (nothing is held out)."
            )
        return ids

    def _check_batches(self, split, batch_size, num_batches, seed) -> None:
        self._split_ids(split)
        if not isinstance(batch_size, int | np.integer) or batch_size < 1:
            raise ValueError(
                f"`batch_size` must be an int >= 1, got {batch_size!r}."
            )
        if num_batches is not None and (
            not isinstance(num_batches, int | np.integer) or num_batches < 0
        ):
            raise ValueError(
                f"`num_batches` must be an int >= 0 or None, got "
                f"{num_batches!r}."
            )
        _check_seed(seed, "seed")

    def _batch(
        self, split, batch_size, seed, index, with_labels
    ) -> dict[str, np.ndarray]:
        rng = np.random.default_rng(
            [self.shapes_dataset.seed, _SPLITS[split], seed, 4, index]
        )
        batch = self._generate(rng, self._split_ids(split), batch_size)
        for key in ("prompts", "responses", "task", "lang"):
            batch[key] = np.array(batch[key], dtype=np.str_)
        if not with_labels:
            del batch["labels"]
        return batch

    def _generate(
        self, rng: np.random.Generator, ids: np.ndarray, n: int
    ) -> dict[str, Any]:
        ds = self.shapes_dataset
        size = ds.image_size
        labels = ids[rng.integers(len(ids), size=n)].astype(np.int32)
        color_ids = labels // len(ds.shapes)
        shape_ids = labels % len(ds.shapes)
        layouts = random_layouts(
            rng, self._rgb[color_ids], size, ds.radius_range
        )
        # Drawn after the layouts and before the pixel noise: this order
        # fixes which examples each seed gives.
        task_ids = rng.integers(len(self.tasks), size=n)
        lang_ids = rng.integers(len(self.languages), size=n)
        images = render_shapes(rng, layouts, shape_ids, ds.shapes, size)
        examples = {"prompts": [], "responses": [], "task": [], "lang": []}
        for c, s, t, g, x, y in zip(
            color_ids,
            shape_ids,
            task_ids,
            lang_ids,
            layouts["cx"],
            layouts["cy"],
            strict=True,
        ):
            task, lang = self.tasks[t], self.languages[g]
            row, col = _third(y / size), _third(x / size)
            examples["prompts"].append(prompt(task, lang))
            examples["responses"].append(
                answer(task, ds.colors[c], ds.shapes[s], lang, row, col)
            )
            examples["task"].append(task)
            examples["lang"].append(lang)
        return {"images": images, **examples, "labels": labels}


def _check_names(colors, shapes, languages) -> None:
    for values, known, name in (
        (colors, _FRENCH_COLORS, "colors"),
        (shapes, _FRENCH_SHAPES, "shapes"),
        (languages, LANGUAGES, "languages"),
    ):
        unknown = [v for v in values if v not in known]
        if unknown:
            raise ValueError(
                f"`{name}` must be names from {list(known)}; got unknown "
                f"{unknown}."
            )


def _check_choice(values, known, name) -> list[str]:
    if isinstance(values, str):
        values = [values]
    values = list(values)
    unknown = [v for v in values if v not in known]
    if unknown or not values or len(set(values)) != len(values):
        raise ValueError(
            f"`{name}` must be a non-empty list of distinct names from "
            f"{list(known)}, got {values!r}."
        )
    return values


def _check_seed(seed, name: str) -> None:
    if not isinstance(seed, int | np.integer) or seed < 0:
        raise ValueError(f"`{name}` must be an int >= 0, got {seed!r}.")
