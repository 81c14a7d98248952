"""Backbones and tasks."""

from keras_vl.models.clippo.clippo import Clippo
from keras_vl.models.clippo.clippo_backbone import ClippoBackbone
from keras_vl.models.clippo.clippo_preprocessor import ClippoPreprocessor
from keras_vl.models.contrastive import ContrastiveModel
from keras_vl.models.vit.vit_backbone import ViTBackbone

__all__ = [
    "Clippo",
    "ClippoBackbone",
    "ClippoPreprocessor",
    "ContrastiveModel",
    "ViTBackbone",
]
