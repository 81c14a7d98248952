"""Backbones and tasks."""

from keras_vl.models.vit.vit_backbone import ViTBackbone

__all__ = ["ViTBackbone"]
