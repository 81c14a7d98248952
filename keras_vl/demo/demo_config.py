"""`DemoConfig`: the captions, model size and schedule of a demo run."""

from __future__ import annotations

import dataclasses

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
            not colour, is what the model is slow to learn.
        font_size: Line height of the rendered captions; 12 px gives four
            lines of about nine characters at 48 px, enough for every
            demo caption.
        caption_templates: Caption phrasings naming colour and shape (see
            `keras_vl.data.CAPTION_TEMPLATES`); the evaluation's captions
            use these only.
        partial_caption_templates: Phrasings naming only the colour or
            only the shape, added to the training captions. They are what
            teaches colour and shape as separate features, and the
            zero-shot classifier describes each class with them.
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
        patch_size: ViT patch size. A 48-pixel image makes 36 tokens of
            8 pixels; with 16-pixel patches (9 tokens) the ViT learns
            shapes much more slowly on these small images.
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
            each image's target over all captions that describe it.
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

    Example:

    ```python
    import dataclasses

    config = dataclasses.replace(DEFAULT_CONFIG, steps=600, loss="sigmoid")
    ```
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


#: The full demo (`make demo`).
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
