"""Contrastive image-text losses and their retrieval metrics."""

from keras_vl.losses.contrastive import (
    contrastive_accuracy,
    contrastive_logits,
    image_to_text_accuracy,
    logit_scale_from_log,
    positive_mask,
    sigmoid_contrastive_loss,
    softmax_contrastive_loss,
    text_to_image_accuracy,
)

__all__ = [
    "contrastive_accuracy",
    "contrastive_logits",
    "image_to_text_accuracy",
    "logit_scale_from_log",
    "positive_mask",
    "sigmoid_contrastive_loss",
    "softmax_contrastive_loss",
    "text_to_image_accuracy",
]
