"""The `make demo` job: train a small CLIPPO from scratch on coloured shapes.

One ViT reads both the images of `keras_vl.data.ShapesDataset` and their
captions rendered as images, and learns to match them with the contrastive
loss alone. Some colour x shape combinations never appear in training; the
demo measures zero-shot top-1 accuracy on seen and on those held-out
combinations (the classifier always chooses among all of them), and
text-to-image recall@1, saves the model as a preset and draws a PNG of the
image-text similarities. Nothing is downloaded.

What lets a model name a red circle it has never seen is in the training
batches, not the model. Captions also name colour or shape alone ("a red
shape", "a circle"), shapes also come in hues no caption names, and the
target of `fit` is the batch's positives matrix
(`ShapesDataset.caption_positives`), so "a red shape" counts as a match
for every red image rather than a negative. The image features of colour
and of shape then stand on their own, and a new combination reuses both.
The zero-shot classifier asks for both the same way: it describes each
class by its colour-only and shape-only captions, never by a phrase naming
the combination, which the model has not read for held-out classes.

Example:

```python
from keras_vl.demo import run_demo

metrics = run_demo("demo_output", quick=True)
metrics["held_out_top1"]
```
"""

from __future__ import annotations

import dataclasses
import os
import time
from typing import Any

import numpy as np

#: Name of the preset folder written under `output_dir`.
PRESET_NAME = "clippo_shapes"
#: Name of the similarity figure written under `output_dir`.
FIGURE_NAME = "similarity.png"


#: Short caption phrasings for the demo: each fits a 48-pixel rendering,
#: so no caption loses its colour or shape word off the bottom edge.
DEMO_CAPTION_TEMPLATES: tuple[str, ...] = (
    "a {color} {shape}",
    "{color} {shape}",
    "a photo of a {color} {shape}",
    "an image of a {color} {shape}",
    "there is a {color} {shape}",
    "the {shape} is {color}",
    "{size} {color} {shape}",
)

#: Captions naming only the colour or only the shape, mixed into the
#: training captions. With the positives of `caption_positives` they ask
#: for image features of colour and of shape on their own, which a new
#: colour-shape combination can reuse.
DEMO_PARTIAL_CAPTION_TEMPLATES: tuple[str, ...] = (
    "a {color} shape",
    "something {color}",
    "a {shape}",
    "the {shape}",
)

#: Captions of the shapes drawn in unnamed hues: the shape alone.
UNNAMED_HUE_TEMPLATES: tuple[str, ...] = (
    "a {shape}",
    "the {shape}",
    "a {size} {shape}",
)


@dataclasses.dataclass(frozen=True)
class DemoConfig:
    """Model size, schedule and evaluation sizes of one demo run.

    Attributes:
        image_size: Side of images and rendered captions.
        radius_range: Shape radii as fractions of the image size (see
            `keras_vl.data.ShapesDataset`). The demo draws larger shapes
            than the dataset's default (0.12-0.30): at 48 pixels the
            smallest would be under 6 pixels across a radius, and shape,
            not colour, is what the model learns slowly; with 0.18-0.30
            seen-class accuracy (softmax loss) rises from about 65 % to
            81-86 % in the same 1000 steps.
        font_size: Line height of the rendered captions; 12 px gives four
            lines of about nine characters at 48 px, enough for every
            demo caption.
        caption_templates: Caption phrasings naming colour and shape (see
            `keras_vl.data.CAPTION_TEMPLATES`); the evaluation's captions
            use these only.
        partial_caption_templates: Phrasings naming only the colour or
            only the shape, added to the training captions. Without the
            colour-only ones held-out accuracy stayed near 19 %.
        unnamed_hue_fraction: Share of each batch showing the shapes in
            one of `num_unnamed_hues` hues spread around the colour
            wheel, captioned by shape alone ("a circle"). A ViT that
            only ever sees circles in three colours learns circle
            features tied to those colours, and a red circle then looks
            like any red shape: the held-out images land nearest a seen
            class of their colour. Shapes in every hue make the shape
            features colour-blind. No image is captioned with a held-out
            combination.
        num_unnamed_hues: Hues of those shapes.
        patch_size: ViT patch size. With 16-pixel patches on these small
            images the ViT learns shapes several times more slowly (a
            supervised shape classifier stays near 45 % after 400 steps,
            where 8-pixel patches reach 75 % after 200).
        width: ViT width.
        depth: Number of transformer blocks.
        num_heads: Attention heads.
        mlp_dim: Hidden size of the MLP blocks.
        out_dim: Embedding size (the ViT's linear head).
        posemb: ViT position embedding, `"learn"` or `"sincos2d"`.
        pool_type: ViT pooling; CLIPPO's is `"map"`.
        sequence_length: Code points kept per caption; longer captions do
            not fit into the rendered image anyway.
        text_pair_fraction: Share of each batch made of text-text pairs
            (two captions of different images of one class, the first
            rendered in place of the image), as CLIPPO's `image_texts`.
        batch_size: Image-caption pairs per step.
        steps: Training steps.
        loss: `"softmax"` (CLIP, the CLIPPO paper's) or `"sigmoid"`
            (SigLIP). With the positives matrix as target, softmax spreads
            each image's target over all captions that describe it; over
            1000 steps it reached higher seen-class accuracy than sigmoid
            with these batches (88 % against 78 % with partial captions).
        temperature_init: Initial logit scale of the contrastive loss.
        learning_rate: Peak learning rate.
        warmup_steps: Linear warmup steps before the cosine decay.
        weight_decay: AdamW decoupled weight decay.
        eval_every: Steps between evaluations (Keras "epochs").
        num_evals: Evaluations at the end of training; the held-out
            accuracy reported is their mean, since it fluctuates.
        num_seen_test: Test images of seen combinations.
        num_held_out_test: Test images of held-out combinations.
        retrieval_pool: Image-caption pairs one text query ranks.
        num_retrieval_pools: Pools averaged for recall@1.
    """

    image_size: int = 48
    radius_range: tuple[float, float] = (0.18, 0.30)
    font_size: int = 12
    caption_templates: tuple[str, ...] = DEMO_CAPTION_TEMPLATES
    partial_caption_templates: tuple[str, ...] = DEMO_PARTIAL_CAPTION_TEMPLATES
    unnamed_hue_fraction: float = 0.3
    num_unnamed_hues: int = 24
    patch_size: int = 8
    width: int = 128
    depth: int = 2
    num_heads: int = 4
    mlp_dim: int = 256
    out_dim: int = 128
    posemb: str = "learn"
    pool_type: str = "map"
    sequence_length: int = 48
    text_pair_fraction: float = 0.25
    batch_size: int = 64
    steps: int = 1200
    loss: str = "softmax"
    temperature_init: float = 10.0
    learning_rate: float = 2e-3
    warmup_steps: int = 100
    weight_decay: float = 1e-4
    eval_every: int = 100
    num_evals: int = 3
    num_seen_test: int = 960
    num_held_out_test: int = 512
    retrieval_pool: int = 64
    num_retrieval_pools: int = 8

    def __post_init__(self):
        if self.steps < 1 or self.eval_every < 1 or self.num_evals < 1:
            raise ValueError(
                "`steps`, `eval_every` and `num_evals` must be positive."
            )
        if self.steps % self.eval_every:
            raise ValueError(
                f"`steps` ({self.steps}) must be a multiple of `eval_every` "
                f"({self.eval_every}): fit runs one epoch per interval."
            )
        if not 0.0 <= self.text_pair_fraction < 1.0:
            raise ValueError(
                "`text_pair_fraction` must be in [0, 1). Received: "
                f"{self.text_pair_fraction}"
            )
        if not 0.0 <= self.unnamed_hue_fraction < 1.0 or (
            self.text_pair_fraction + self.unnamed_hue_fraction >= 1.0
        ):
            raise ValueError(
                "`unnamed_hue_fraction` must be in [0, 1) and leave room "
                "for the text pairs: text_pair_fraction + "
                "unnamed_hue_fraction < 1. Received: "
                f"{self.unnamed_hue_fraction}"
            )


#: The full demo (`make demo`): about 3.5 minutes on 2 CPU cores.
DEFAULT_CONFIG = DemoConfig()
#: A smoke test: a handful of steps, for `--quick` and the test suite.
QUICK_CONFIG = DemoConfig(
    width=32,
    depth=1,
    num_heads=2,
    mlp_dim=64,
    out_dim=32,
    batch_size=16,
    steps=4,
    warmup_steps=1,
    eval_every=2,
    num_evals=2,
    num_seen_test=32,
    num_held_out_test=16,
    retrieval_pool=16,
    num_retrieval_pools=1,
)


def build_model(config: DemoConfig, seed: int = 0):
    """Builds and compiles a randomly initialised small CLIPPO.

    Args:
        config: Model size and optimiser settings.
        seed: Seed of the weight initialisation.

    Returns:
        A compiled `keras_vl.models.Clippo`.
    """
    import keras

    from keras_vl.layers.text_renderer import TextRenderer
    from keras_vl.models import (
        Clippo,
        ClippoBackbone,
        ClippoPreprocessor,
        ViTBackbone,
    )

    keras.utils.set_random_seed(seed)
    vit = ViTBackbone(
        image_size=config.image_size,
        patch_size=config.patch_size,
        width=config.width,
        depth=config.depth,
        num_heads=config.num_heads,
        mlp_dim=config.mlp_dim,
        posemb=config.posemb,
        pool_type=config.pool_type,
        num_classes=config.out_dim,
        head_zeroinit=False,
    )
    renderer = TextRenderer(
        image_size=config.image_size,
        font_size=config.font_size,
    )
    backbone = ClippoBackbone(vit, renderer)
    preprocessor = ClippoPreprocessor(
        image_size=config.image_size,
        sequence_length=config.sequence_length,
    )
    model = Clippo(
        backbone,
        preprocessor,
        loss=config.loss,
        temperature_init=config.temperature_init,
    )
    warmup = min(config.warmup_steps, config.steps - 1)
    # Linear warmup to the peak, then cosine decay to zero at the end.
    schedule = keras.optimizers.schedules.CosineDecay(
        initial_learning_rate=0.0,
        decay_steps=max(config.steps - warmup, 1),
        warmup_target=config.learning_rate,
        warmup_steps=warmup,
    )
    model.compile(learning_rate=schedule, weight_decay=config.weight_decay)
    return model


def attribute_prompts(dataset, templates) -> list[list[str]]:
    """Each class of `dataset` described by its colour and its shape alone.

    Args:
        dataset: A `ShapesDataset`.
        templates: Format strings with `{color}` or `{shape}` (or both).

    Returns:
        One list of prompts per class, in label order, e.g. for a red
        circle `["a red shape", ..., "a circle", ...]`.
    """
    return [
        [t.format(color=color, shape=shape) for t in templates]
        for color, shape in dataset.classes
    ]


class Evaluator:
    """Zero-shot top-1 (seen and held-out classes) and recall@1.

    Test images are drawn once, fresh (never trained on), so every
    evaluation of a run scores the same examples.

    The zero-shot classifier describes every class by its colour-only and
    shape-only captions ("a red shape", "a circle", from
    `DemoConfig.partial_caption_templates`): their mean embedding points at
    images with both attributes, whether or not any caption ever named the
    combination. Class-name prompts ("a red circle", `name_*` metrics)
    depend on how the model reads a phrase it never trained on: over eleven
    runs (seeds and settings) they scored 11-40 % on held-out combinations,
    the attribute prompts 40-61 % on the same models, and both score seen
    combinations alike (82-95 % and 87-97 %).

    Args:
        dataset: The `ShapesDataset` the model trains on.
        config: Evaluation sizes.
        seed: Seed of the test samples.
    """

    def __init__(self, dataset, config: DemoConfig, seed: int = 0):
        self.dataset = dataset
        self.config = config
        # Seeds far from the training stream's, drawn by `sample`.
        self.seen = dataset.sample(
            config.num_seen_test, split="train", seed=10_000 + seed
        )
        self.held_out = dataset.sample(
            config.num_held_out_test, split="held_out", seed=20_000 + seed
        )
        pairs = config.retrieval_pool * config.num_retrieval_pools
        self.retrieval = dataset.sample(pairs, split="all", seed=30_000 + seed)

    def __call__(self, model) -> dict[str, float]:
        """Evaluates `model`; returns floats in [0, 1]."""
        from keras_vl.evaluation import ZeroShotClassifier, retrieval_recall

        # Thousands of examples: `encode_*` run them compiled, in batches.
        by_name = ZeroShotClassifier(
            model,
            self.dataset.class_names,
            templates=self.dataset.prompt_templates,
        )
        classifier = ZeroShotClassifier(
            model,
            self.dataset.class_names,
            class_prompts=attribute_prompts(
                self.dataset, self.config.partial_caption_templates
            ),
        )
        metrics = {}
        for prefix, zero_shot in (("", classifier), ("name_", by_name)):
            for split in ("seen", "held_out"):
                test = getattr(self, split)
                metrics[f"{prefix}{split}_top1"] = zero_shot.evaluate(
                    test["images"], test["labels"], ks=(1,)
                )["top1"]
        images = model.encode_images(self.retrieval["images"])
        texts = model.encode_texts(self.retrieval["captions"])
        # How well captions alone are classified: whether the text side
        # reads both words, whatever the images do.
        predictions = np.argmax(texts @ classifier.class_embeddings.T, -1)
        metrics["text_top1"] = float(
            np.mean(predictions == self.retrieval["labels"])
        )
        pool = self.config.retrieval_pool
        recalls = [
            retrieval_recall(
                images[lo : lo + pool], texts[lo : lo + pool], ks=(1,)
            )
            for lo in range(0, len(images), pool)
        ]
        for key, name in (
            ("text_to_image/recall@1", "t2i_recall1"),
            ("image_to_text/recall@1", "i2t_recall1"),
        ):
            metrics[name] = float(np.mean([r[key] for r in recalls]))
        return metrics


def _evaluation_callback(evaluator: Evaluator, config: DemoConfig, history):
    """A Keras callback evaluating after each of the last `num_evals`
    epochs and appending `(step, metrics)` to `history`."""
    import keras

    num_epochs = config.steps // config.eval_every
    first = max(num_epochs - config.num_evals, 0)

    class EvaluateLast(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch < first:
                return
            metrics = evaluator(self.model)
            step = (epoch + 1) * config.eval_every
            history.append((step, metrics))
            # The progress bar prints `logs` after this callback, so the
            # scores appear on the epoch's line.
            if logs is not None:
                logs.update(metrics)

    return EvaluateLast()


def _partner_captions(texts: np.ndarray, labels: np.ndarray, count: int):
    """For the first `count` rows, the caption of the next row of the same
    class (cyclically; the row itself if it is its class's only one); empty
    strings for the other rows."""
    partners = np.full(len(texts), b"", dtype=object)
    for i in range(min(count, len(texts))):
        same = np.flatnonzero(labels == labels[i])
        position = np.searchsorted(same, i)
        partners[i] = texts[same[(position + 1) % len(same)]]
    return partners.astype(np.bytes_)


def training_datasets(dataset, config: DemoConfig):
    """The two generators of the training stream.

    Args:
        dataset: The demo's `ShapesDataset` (evaluation captions).
        config: Caption phrasings and unnamed hues.

    Returns:
        `(captioned, unnamed)`: `dataset`'s classes and images with the
        training captions (full and partial), and the same shapes in
        `config.num_unnamed_hues` hues with shape-only captions.
    """
    import colorsys

    from keras_vl.data import ShapesDataset

    common = dict(
        image_size=dataset.image_size,
        radius_range=dataset.radius_range,
        seed=dataset.seed,
    )
    captioned = ShapesDataset(
        colors=dataset.palette,
        shapes=dataset.shapes,
        held_out=dataset.held_out_classes or None,
        caption_templates=(
            config.caption_templates + config.partial_caption_templates
        ),
        **common,
    )
    hues = {
        f"hue {k}": tuple(
            round(255 * v)
            for v in colorsys.hsv_to_rgb(k / config.num_unnamed_hues, 0.8, 0.9)
        )
        for k in range(config.num_unnamed_hues)
    }
    unnamed = ShapesDataset(
        colors=hues,
        shapes=dataset.shapes,
        held_out=None,
        caption_templates=UNNAMED_HUE_TEMPLATES,
        **common,
    )
    return captioned, unnamed


def _training_batch(dataset, unnamed, count, captioned, hued):
    """Joins a captioned and an unnamed-hue batch (numpy dicts) into the
    model's inputs and the positives target of `caption_positives`."""
    image_texts = _partner_captions(
        captioned["texts"], captioned["labels"], count
    )
    # What each image slot shows: a partner caption (text pairs), a class,
    # or a shape in a hue no caption names.
    shown = [
        image_texts[i] if image_texts[i] else int(label)
        for i, label in enumerate(captioned["labels"])
    ] + [(None, unnamed.classes[label][1]) for label in hued["labels"]]
    texts = np.concatenate([captioned["texts"], hued["texts"]])
    inputs = {
        "images": np.concatenate([captioned["images"], hued["images"]]),
        "texts": texts,
        "image_texts": np.concatenate(
            [image_texts, np.full(len(hued["texts"]), b"", np.bytes_)]
        ),
    }
    positives = dataset.caption_positives(shown, texts)
    # A text pair whose first text is partial ("a red shape") does not
    # name all its partner names, but is a pair all the same.
    positives |= np.eye(len(texts), dtype=bool)
    return inputs, positives


def training_data(dataset, config: DemoConfig, seed: int = 0):
    """The endless `tf.data` stream of training batches for `fit`.

    Each batch holds `config.batch_size` pairs: images of the training
    classes with full and partial captions (the first
    `text_pair_fraction` of them as text-text pairs), then shapes in
    unnamed hues. The target is the batch's positives matrix.

    Args:
        dataset: The `ShapesDataset`.
        config: Batch composition and captions.
        seed: Seed of the stream.

    Returns:
        A `tf.data.Dataset` of `(inputs, positives)`: dicts `images`,
        `texts` and `image_texts`, and a bool `[B, B]` matrix.
    """
    import tensorflow as tf

    batch = config.batch_size
    num_hued = round(config.unnamed_hue_fraction * batch)
    count = round(config.text_pair_fraction * batch)
    captioned, unnamed = training_datasets(dataset, config)
    keys = ("images", "texts", "labels")
    parts = [
        captioned.as_tf_dataset(
            "train", batch - num_hued, seed=seed, with_labels=True
        )
    ]
    if num_hued:
        parts.append(
            unnamed.as_tf_dataset("all", num_hued, seed=seed, with_labels=True)
        )

    def join(*arrays):
        # Without unnamed hues, an empty slice of the captioned batch.
        hued = arrays[3:] or [array[:0] for array in arrays]
        inputs, positives = _training_batch(
            dataset,
            unnamed,
            count,
            dict(zip(keys, arrays[:3], strict=True)),
            dict(zip(keys, hued, strict=True)),
        )
        return (
            inputs["images"],
            inputs["texts"],
            inputs["image_texts"],
            positives,
        )

    def to_inputs(*batches):
        arrays = [part[key] for part in batches for key in keys]
        images, texts, image_texts, positives = tf.numpy_function(
            join,
            arrays,
            [tf.uint8, tf.string, tf.string, tf.bool],
            stateful=False,
        )
        size = dataset.image_size
        images.set_shape([batch, size, size, 3])
        texts.set_shape([batch])
        image_texts.set_shape([batch])
        positives.set_shape([batch, batch])
        inputs = {"images": images, "texts": texts, "image_texts": image_texts}
        return inputs, positives

    data = tf.data.Dataset.zip(*parts) if num_hued else parts[0]
    return data.map(to_inputs, num_parallel_calls=tf.data.AUTOTUNE)


def train(
    model,
    dataset,
    config: DemoConfig,
    evaluator: Evaluator,
    seed: int = 0,
    verbose: int = 1,
) -> list[tuple[int, dict[str, float]]]:
    """Trains `model` for `config.steps` steps with `fit`.

    Args:
        model: A compiled `Clippo`.
        dataset: The `ShapesDataset`.
        config: Steps, batch size and evaluation schedule.
        evaluator: An `Evaluator` run at the last evaluation points.
        seed: Seed of the training stream.
        verbose: `fit` verbosity: 1 for a progress bar, 2 for one line per
            evaluation interval.

    Returns:
        The `(step, metrics)` of each evaluation, in order.
    """
    train_data = training_data(dataset, config, seed)
    history: list[tuple[int, dict[str, float]]] = []
    num_epochs = config.steps // config.eval_every
    # One Keras epoch per evaluation interval; the stream is endless and
    # `fit` keeps iterating it across epochs, so no batch repeats.
    model.fit(
        train_data,
        epochs=num_epochs,
        steps_per_epoch=config.eval_every,
        callbacks=[_evaluation_callback(evaluator, config, history)],
        shuffle=False,
        verbose=verbose,
    )
    return history


# --- Figure -------------------------------------------------------------------

# Viridis-like anchors for the similarity heat map, dark to bright.
_COLORMAP = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]],
    np.float32,
)


def _colormap(values: np.ndarray) -> np.ndarray:
    """Values in [0, 1] -> uint8 RGB, by linear interpolation."""
    position = np.clip(values, 0.0, 1.0) * (len(_COLORMAP) - 1)
    low = np.minimum(np.floor(position).astype(int), len(_COLORMAP) - 2)
    frac = (position - low)[..., None]
    rgb = _COLORMAP[low] * (1.0 - frac) + _COLORMAP[low + 1] * frac
    return rgb.astype(np.uint8)


def _pick_examples(dataset, count: int, seed: int) -> dict[str, Any]:
    """Fresh test images of `count` different classes, half held out."""
    pool = dataset.sample(64 * count, split="all", seed=40_000 + seed)
    held = [dataset.classes.index(pair) for pair in dataset.held_out_classes]
    seen = [i for i in range(len(dataset.classes)) if i not in held]
    held = held[: count // 2]
    # Seen classes spread over the class list, so colours vary.
    stride = max(len(seen) // max(count - len(held), 1), 1)
    labels = held + seen[::stride][: count - len(held)]
    picked = []
    for label in labels:
        matches = np.flatnonzero(pool["labels"] == label)
        if len(matches):
            picked.append(int(matches[0]))
    return {
        "images": pool["images"][picked],
        "captions": [pool["captions"][i] for i in picked],
        "held_out": [int(pool["labels"][i]) in held for i in picked],
    }


def save_similarity_figure(
    model,
    dataset,
    path: str,
    count: int = 6,
    seed: int = 0,
) -> np.ndarray:
    """Draws test images, their rendered captions and the similarities.

    Row `i` is image `i`; column `j` is caption `j`, shown as the model sees
    it (rendered by `backbone.text_renderer`). Cells hold the cosine
    similarity; a correct model has the brightest cell of each row on the
    diagonal. Held-out combinations are framed in red.

    Args:
        model: A trained `Clippo`.
        dataset: The `ShapesDataset`.
        path: Where to write the PNG.
        count: Number of image-caption pairs.
        seed: Seed of the test images.

    Returns:
        The cosine similarities `[count, count]`.
    """
    from PIL import Image, ImageDraw, ImageFont

    examples = _pick_examples(dataset, count, seed)
    similarity = (
        model.encode_images(examples["images"])
        @ model.encode_texts(examples["captions"]).T
    )
    # Cut as in training, so the figure shows exactly what the model reads.
    rendered = _to_numpy(
        model.backbone.text_renderer(
            model.text_codepoints(examples["captions"])
        )
    )
    count = len(examples["captions"])
    cell, scale, margin, title = 128, 2, 8, 28
    side = cell * (count + 1)
    canvas = Image.new("RGB", (side + margin, side + title), (255, 255, 255))
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=14)
    draw.text(
        (margin, 6),
        "rows: test images, columns: their captions rendered as images; "
        "cells: cosine similarity (red frame: held-out combination)",
        fill=(0, 0, 0),
        font=font,
    )

    def paste(array: np.ndarray, x: int, y: int, framed: bool) -> None:
        tile = Image.fromarray(array).resize(
            (array.shape[1] * scale, array.shape[0] * scale), Image.NEAREST
        )
        canvas.paste(tile, (x, y))
        if framed:
            draw.rectangle(
                (x, y, x + tile.width - 1, y + tile.height - 1),
                outline=(220, 0, 0),
                width=3,
            )

    low, high = float(similarity.min()), float(similarity.max())
    colors = _colormap((similarity - low) / max(high - low, 1e-6))
    for i in range(count):
        framed = examples["held_out"][i]
        paste(examples["images"][i], 0, title + cell * (i + 1), framed)
        paste(rendered[i], cell * (i + 1), title, framed)
        for j in range(count):
            x, y = cell * (j + 1), title + cell * (i + 1)
            color = tuple(int(c) for c in colors[i, j])
            draw.rectangle((x, y, x + cell - 1, y + cell - 1), fill=color)
            bright = sum(color) > 380
            draw.text(
                (x + cell // 2, y + cell // 2),
                f"{similarity[i, j]:.2f}",
                fill=(0, 0, 0) if bright else (255, 255, 255),
                font=font,
                anchor="mm",
            )
    canvas.save(path)
    return similarity


def _to_numpy(x) -> np.ndarray:
    import keras

    return np.asarray(keras.ops.convert_to_numpy(x))


# --- Entry point --------------------------------------------------------------


def _print_summary(metrics: dict[str, Any], evals: list[float]) -> None:
    rows = [
        (
            f"zero-shot top-1, seen combinations ({metrics['num_seen']})",
            f"{metrics['seen_top1']:7.1%}",
        ),
        (
            f"zero-shot top-1, held-out combinations "
            f"({metrics['num_held_out']})",
            f"{metrics['held_out_top1']:7.1%}   (mean of "
            + ", ".join(f"{v:.1%}" for v in evals)
            + ")",
        ),
        (
            "  with class-name prompts: seen, held-out",
            f"{metrics['name_seen_top1']:7.1%}, "
            f"{metrics['name_held_out_top1']:.1%}",
        ),
        (
            f"text->image recall@1 (pools of {metrics['retrieval_pool']})",
            f"{metrics['t2i_recall1']:7.1%}",
        ),
        (
            f"chance: 1 / {metrics['num_classes']} classes",
            f"{metrics['chance']:7.1%}",
        ),
        (
            "training",
            f"{metrics['steps']} steps x {metrics['batch_size']} pairs",
        ),
        ("wall time", f"{metrics['wall_time_s']:7.1f} s"),
    ]
    width = max(len(name) for name, _ in rows)
    print("\n" + "=" * (width + 30))
    print("CLIPPO trained from scratch on coloured shapes")
    print("=" * (width + 30))
    for name, value in rows:
        print(f"{name:<{width}}  {value}")
    print("=" * (width + 30), flush=True)


def run_demo(
    output_dir: str = "demo_output", quick: bool = False, seed: int = 0
) -> dict[str, Any]:
    """Trains a small CLIPPO on coloured shapes and reports zero-shot scores.

    Writes `output_dir/clippo_shapes` (the trained model as a preset,
    reloadable with `keras_vl.models.Clippo.from_preset`) and
    `output_dir/similarity.png`, and prints a summary table.

    Args:
        output_dir: Folder for the preset and the figure.
        quick: Train a tiny model for a handful of steps only (a smoke
            test; its scores are near chance).
        seed: Seed of the dataset, the weights and the training stream.

    Returns:
        A dict with `seen_top1`, `held_out_top1` (mean of the last
        evaluations), `held_out_top1_last`, the same two with class-name
        prompts (`name_seen_top1`, `name_held_out_top1`, see `Evaluator`),
        `t2i_recall1`, `i2t_recall1`
        and `chance`, all in [0, 1], plus `wall_time_s`, `steps`,
        `batch_size`, `num_classes`, `num_seen`, `num_held_out` and
        `retrieval_pool`.
    """
    start = time.perf_counter()
    from keras_vl.data import ShapesDataset

    config = QUICK_CONFIG if quick else DEFAULT_CONFIG
    os.makedirs(output_dir, exist_ok=True)
    dataset = ShapesDataset(
        image_size=config.image_size,
        caption_templates=config.caption_templates,
        radius_range=config.radius_range,
        seed=seed,
    )
    print(
        f"Dataset: {len(dataset.classes)} colour x shape classes, "
        f"held out of training: "
        + ", ".join(" ".join(pair) for pair in dataset.held_out_classes)
    )
    model = build_model(config, seed)
    print(
        f"CLIPPO: ViT {config.width}w x {config.depth} blocks, patch "
        f"{config.patch_size}, {model.count_params():,} parameters; "
        f"{config.steps} steps of {config.batch_size} pairs "
        f"({config.unnamed_hue_fraction:.0%} shapes in unnamed hues), "
        f"{config.loss} loss over all matching pairs"
    )
    evaluator = Evaluator(dataset, config, seed)
    history = train(model, dataset, config, evaluator, seed)
    final = history[-1][1]
    held_out = [m["held_out_top1"] for _, m in history]

    preset = os.path.join(output_dir, PRESET_NAME)
    model.save_to_preset(preset)
    figure = os.path.join(output_dir, FIGURE_NAME)
    save_similarity_figure(model, dataset, figure, seed=seed)
    print(f"Wrote {preset} and {figure}")

    metrics = {
        "seen_top1": final["seen_top1"],
        "held_out_top1": float(np.mean(held_out)),
        "held_out_top1_last": final["held_out_top1"],
        "name_seen_top1": final["name_seen_top1"],
        "name_held_out_top1": float(
            np.mean([m["name_held_out_top1"] for _, m in history])
        ),
        "t2i_recall1": final["t2i_recall1"],
        "i2t_recall1": final["i2t_recall1"],
        "chance": 1.0 / len(dataset.classes),
        "wall_time_s": time.perf_counter() - start,
        "steps": config.steps,
        "batch_size": config.batch_size,
        "num_classes": len(dataset.classes),
        "num_seen": len(dataset.seen_classes),
        "num_held_out": len(dataset.held_out_classes),
        "retrieval_pool": config.retrieval_pool,
    }
    _print_summary(metrics, held_out)
    return metrics
