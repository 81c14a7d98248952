"""Reusable Keras layers. Layers know nothing of models."""

from keras_vl.layers.layer_norm import LayerNorm
from keras_vl.layers.map_head import MAPHead
from keras_vl.layers.mlp_block import MlpBlock
from keras_vl.layers.moe_router import MoeRouter
from keras_vl.layers.patch_embedding import PatchEmbedding
from keras_vl.layers.position_embedding import (
    PositionEmbedding,
    resample_position_embedding,
)
from keras_vl.layers.remat import rematerialized_call
from keras_vl.layers.rms_norm import RMSNorm
from keras_vl.layers.sparse_moe_mlp import SparseMoeMlp
from keras_vl.layers.text_renderer import TextRenderer, render_text
from keras_vl.layers.transformer_encoder import (
    ENCODER_SIZES,
    TransformerEncoder,
    encoder_size,
)
from keras_vl.layers.transformer_encoder_block import TransformerEncoderBlock

__all__ = [
    "ENCODER_SIZES",
    "LayerNorm",
    "MAPHead",
    "MlpBlock",
    "MoeRouter",
    "PatchEmbedding",
    "PositionEmbedding",
    "RMSNorm",
    "SparseMoeMlp",
    "TextRenderer",
    "TransformerEncoder",
    "TransformerEncoderBlock",
    "encoder_size",
    "rematerialized_call",
    "render_text",
    "resample_position_embedding",
]
