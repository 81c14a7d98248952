"""Contrastive image-text losses, their retrieval metrics, and LIMoE's
entropy losses on routing distributions."""

from keras_vl.losses.contrastive import (
    EXCHANGES,
    check_exchange,
    contrastive_accuracy,
    contrastive_logits,
    global_contrastive_accuracy,
    image_to_text_accuracy,
    logit_scale_from_log,
    positive_mask,
    sigmoid_contrastive_loss,
    sigmoid_contrastive_loss_and_accuracy,
    softmax_contrastive_loss,
    text_to_image_accuracy,
)
from keras_vl.losses.moe import (
    check_entropy_threshold,
    global_entropy_loss,
    local_entropy_loss,
    routing_entropy,
    thresholded_global_entropy_loss,
)

__all__ = [
    "EXCHANGES",
    "check_entropy_threshold",
    "check_exchange",
    "contrastive_accuracy",
    "contrastive_logits",
    "global_contrastive_accuracy",
    "global_entropy_loss",
    "image_to_text_accuracy",
    "local_entropy_loss",
    "logit_scale_from_log",
    "positive_mask",
    "routing_entropy",
    "sigmoid_contrastive_loss",
    "sigmoid_contrastive_loss_and_accuracy",
    "softmax_contrastive_loss",
    "text_to_image_accuracy",
    "thresholded_global_entropy_loss",
]
