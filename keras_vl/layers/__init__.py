"""Reusable Keras layers. Layers know nothing of models."""

from keras_vl.layers.map_head import MAPHead
from keras_vl.layers.mlp_block import MlpBlock
from keras_vl.layers.patch_embedding import PatchEmbedding
from keras_vl.layers.position_embedding import PositionEmbedding
from keras_vl.layers.text_renderer import TextRenderer, render_text
from keras_vl.layers.transformer import TransformerEncoderBlock

__all__ = [
    "MAPHead",
    "MlpBlock",
    "PatchEmbedding",
    "PositionEmbedding",
    "TextRenderer",
    "TransformerEncoderBlock",
    "render_text",
]
