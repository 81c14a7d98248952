"""Backbones and tasks."""

from keras_vl.models.clippo.clippo import Clippo
from keras_vl.models.clippo.clippo_backbone import ClippoBackbone
from keras_vl.models.clippo.clippo_preprocessor import ClippoPreprocessor
from keras_vl.models.contrastive import ContrastiveModel
from keras_vl.models.limoe.limoe import LIMoE
from keras_vl.models.limoe.limoe_backbone import LIMoEBackbone
from keras_vl.models.limoe.limoe_preprocessor import LIMoEPreprocessor
from keras_vl.models.lit.lit import LiT
from keras_vl.models.lit.lit_backbone import LiTBackbone
from keras_vl.models.lit.lit_preprocessor import LiTPreprocessor
from keras_vl.models.lit.text_transformer import TextTransformer
from keras_vl.models.pali.pali import PaLI
from keras_vl.models.pali.pali_backbone import PaLIBackbone
from keras_vl.models.pali.pali_language_model import PaLILanguageModel
from keras_vl.models.pali.pali_preprocessor import PaLIPreprocessor
from keras_vl.models.preset_files import PresetError
from keras_vl.models.skip_non_finite_optimizer import SkipNonFiniteOptimizer
from keras_vl.models.vit.vit_backbone import ViTBackbone

__all__ = [
    "Clippo",
    "ClippoBackbone",
    "ClippoPreprocessor",
    "ContrastiveModel",
    "LIMoE",
    "LIMoEBackbone",
    "LIMoEPreprocessor",
    "LiT",
    "LiTBackbone",
    "LiTPreprocessor",
    "PaLI",
    "PaLIBackbone",
    "PaLILanguageModel",
    "PaLIPreprocessor",
    "PresetError",
    "SkipNonFiniteOptimizer",
    "TextTransformer",
    "ViTBackbone",
]
