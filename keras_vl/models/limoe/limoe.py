"""LIMoE: multimodal contrastive learning with a mixture of experts.

Mustafa, Riquelme, Puigcerver et al., NeurIPS 2022. One sparse
mixture-of-experts transformer encodes images and texts; image and text
tokens are routed jointly, and LIMoE's per-modality entropy losses keep
the routing of both modalities healthy.
"""

import keras
import numpy as np
from keras import ops

from keras_vl.models.contrastive import ContrastiveModel
from keras_vl.models.limoe.limoe_backbone import LIMoEBackbone
from keras_vl.models.limoe.limoe_moe_mlp import MODALITIES
from keras_vl.models.limoe.limoe_preprocessor import LIMoEPreprocessor
from keras_vl.models.preprocessing import text_batch


@keras.saving.register_keras_serializable(package="keras_vl")
class LIMoE(ContrastiveModel):
    """LIMoE task: contrastive training of a `LIMoEBackbone`.

    `fit` takes dicts of raw pixels and strings (see `LIMoEPreprocessor`).
    `compute_loss` is the contrastive loss (softmax by default, sigmoid
    available) plus every loss the sparse MLPs add: the routers' auxiliary
    (importance, load, ...) losses and LIMoE's entropy losses. Besides the
    loss and the in-batch accuracies, `fit` shows, averaged over the sparse
    layers:

    - `{image,text}_experts`: the effective number of experts a modality
      uses, `exp(H(u))` with `u` the share of its tokens each expert
      processed (per-expert shares are in `routing_summary`);
    - `{image,text}_dropped`: the share of its expert choices that found
      no slot;
    - `moe_auxiliary_loss` and `moe_entropy_loss`: the weighted router and
      entropy losses, summed over the sparse layers.

    Args:
        backbone: A `LIMoEBackbone`.
        preprocessor: A `LIMoEPreprocessor`; defaults to one without a
            tokenizer (images only) matching the backbone.
        loss: `"softmax"` (LIMoE's) or `"sigmoid"`.
        temperature_init: Initial logit scale `exp(t)`.
        bias_init: Initial sigmoid bias; defaults to -10 for the sigmoid
            loss.
        **kwargs: See `ContrastiveModel`.

    Example:

    ```python
    backbone = keras_vl.models.LIMoEBackbone(
        vocabulary_size=len(vocab), sequence_length=16, image_size=224,
        patch_size=16, width=384, depth=12, num_heads=6, out_dim=384,
        num_experts=8, local_entropy_weight=0.01,
        global_entropy_weight=0.01,
    )
    preprocessor = keras_vl.models.LIMoEPreprocessor(
        keras_hub.tokenizers.WordPieceTokenizer(vocabulary=vocab),
        sequence_length=16, image_size=224,
    )
    model = keras_vl.models.LIMoE(backbone, preprocessor)
    model.compile()
    model.fit({"images": images, "texts": captions}, batch_size=256)
    logits = model.similarity(images, ["a photo of a cat", "a dog"])
    ```
    """

    backbone_cls = LIMoEBackbone
    preprocessor_cls = LIMoEPreprocessor

    def __init__(
        self,
        backbone: LIMoEBackbone,
        preprocessor: LIMoEPreprocessor | None = None,
        loss: str = "softmax",
        temperature_init: float = 10.0,
        bias_init: float | None = None,
        **kwargs,
    ):
        self.check_backbone(backbone)
        if preprocessor is None:
            preprocessor = LIMoEPreprocessor(
                sequence_length=backbone.sequence_length,
                image_size=backbone.image_size,
            )
        if preprocessor.sequence_length != backbone.sequence_length:
            raise ValueError(
                "The preprocessor's `sequence_length` "
                f"({preprocessor.sequence_length}) must equal the "
                f"backbone's ({backbone.sequence_length})."
            )
        kwargs.setdefault("name", "limoe")
        super().__init__(
            backbone,
            preprocessor=preprocessor,
            loss=loss,
            temperature_init=temperature_init,
            bias_init=bias_init,
            **kwargs,
        )
        self.routing_metrics = {
            name: keras.metrics.Mean(name=name)
            for name in (
                *(f"{m}_experts" for m in MODALITIES),
                *(f"{m}_dropped" for m in MODALITIES),
                "moe_auxiliary_loss",
                "moe_entropy_loss",
            )
        }

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        """The contrastive loss plus the sparse layers' auxiliary and
        entropy losses (see `ContrastiveModel.compute_loss`); in training
        steps it also updates the routing metrics."""
        loss = super().compute_loss(
            x=x,
            y=y,
            y_pred=y_pred,
            sample_weight=sample_weight,
            training=training,
        )
        if training:
            self._update_routing_metrics()
        return loss

    def _update_routing_metrics(self):
        layers = self.backbone.moe_mlps
        if not layers:
            return
        values = {name: 0.0 for name in self.routing_metrics}
        for layer in layers:
            utilization = ops.cast(layer.utilization_stat, "float32")
            dropped = ops.cast(layer.dropped_stat, "float32")
            for m, name in enumerate(MODALITIES):
                share = utilization[m]
                share = share / ops.maximum(ops.sum(share), 1e-9)
                safe = ops.where(share > 0, share, 1.0)
                entropy = -ops.sum(share * ops.log(safe))
                values[f"{name}_experts"] += ops.exp(entropy) / len(layers)
                values[f"{name}_dropped"] += dropped[m] / len(layers)
            values["moe_auxiliary_loss"] += ops.cast(
                layer.auxiliary_loss_stat, "float32"
            )
            values["moe_entropy_loss"] += ops.cast(
                layer.entropy_loss_stat, "float32"
            )
        for name, value in values.items():
            self.routing_metrics[name].update_state(value)

    # --- Inference ---------------------------------------------------------

    # `encode_images`, `encode_texts` and `similarity` come from
    # `ContrastiveModel`: each batch is routed on its own (images without
    # texts, texts without images). `encode_texts` also takes a dict of
    # model-ready `token_ids` and `padding_mask`. A batch padded to its
    # bucket routes the copies of its last row with it: only when experts
    # overflow can they change which of that row's tokens are dropped.

    def routing_summary(
        self, images, texts, preprocessed: bool = False
    ) -> dict:
        """Where each modality's tokens were routed, per sparse layer.

        Runs one evaluation forward pass on the pairs `(images[i],
        texts[i])`, routed jointly as in training, and records the routing
        of every token.

        Args:
            images: `[B, H, W, C]` raw pixels (or model-ready with
                `preprocessed=True`).
            texts: `B` strings, or a dict of model-ready `token_ids` and
                `padding_mask`.
            preprocessed: Whether `images` are already model-ready.

        Returns:
            A dict with `layers` (the sparse blocks' indices, `[M]`) and, per
            modality `"image"` and `"text"`, a dict of numpy arrays with a
            leading `[M]` layer axis: `expert` (int `[M, B, N]`, each token's
            top-1 expert), `gate` (`[M, B, N]`, its gate value), `probs`
            (`[M, B, N, E]`, the whole routing distribution), `dropped`
            (bool `[M, B, N]`, the expert had no slot left for it), `mask`
            (bool `[B, N]`, real tokens; text padding is False) and
            `counts` (`[M, E]`, how many of the modality's real tokens each
            expert processed).

        Example:

        ```python
        summary = model.routing_summary(images, captions)
        plt.imshow(summary["image"]["counts"])  # layers x experts
        ```
        """
        images = self._model_images(images, preprocessed)
        text_inputs = self._model_texts(texts)
        if len(images) != len(text_inputs["token_ids"]):
            raise ValueError(
                "`images` and `texts` must have the same batch size. "
                f"Received {len(images)} images and "
                f"{len(text_inputs['token_ids'])} texts."
            )
        layers = self.backbone.moe_mlps
        records = []
        for layer in layers:
            object.__setattr__(layer, "_recorder", records)
        try:
            self.backbone({"images": images, **text_inputs}, training=False)
        finally:
            for layer in layers:
                object.__setattr__(layer, "_recorder", None)
        num_image = self.backbone.num_image_tokens
        num_experts = self.backbone.num_experts
        masks = {
            "image": np.ones((len(images), num_image), bool),
            "text": np.asarray(text_inputs["padding_mask"], bool),
        }
        summary = {"layers": np.asarray(self.backbone.moe_layer_indices)}
        for name, cut in (
            ("image", slice(0, num_image)),
            ("text", slice(num_image, None)),
        ):
            entry = {
                key: np.stack([record[key][:, cut] for record in records])
                for key in ("expert", "gate", "probs", "dropped")
            }
            mask = masks[name]
            entry["mask"] = mask
            kept = mask[None] & ~entry["dropped"]
            entry["counts"] = np.stack(
                [
                    np.bincount(
                        entry["expert"][i][kept[i]], minlength=num_experts
                    )
                    for i in range(len(records))
                ]
            ).reshape(len(records), num_experts)
            summary[name] = entry
        return summary

    def _model_texts(self, texts) -> dict:
        if isinstance(texts, dict):
            missing = {"token_ids", "padding_mask"} - set(texts)
            if missing:
                raise ValueError(
                    f"The `texts` dict misses {sorted(missing)}; expected "
                    "'token_ids' and 'padding_mask'."
                )
            inputs = {
                "token_ids": np.asarray(texts["token_ids"], "int32"),
                "padding_mask": np.asarray(texts["padding_mask"], bool),
            }
            return self._checked_text_inputs(inputs)
        texts = list(text_batch(texts))
        if not texts or not all(isinstance(t, str | bytes) for t in texts):
            raise TypeError(
                "`texts` must be a non-empty list of strings or a dict of "
                "'token_ids' and 'padding_mask'."
            )
        outputs = self.preprocessor({"texts": np.asarray(texts, object)})
        return {
            "token_ids": ops.convert_to_numpy(outputs["token_ids"]),
            "padding_mask": ops.convert_to_numpy(outputs["padding_mask"]),
        }
