"""Checkpoint format readers and naming helpers.

Readers for flat npz checkpoints (big_vision, vision_transformer) and
Hugging Face folders (safetensors, PyTorch state dicts), plus helpers that
copy parameters into plain Keras layers. The mapping onto each keras_vl
model lives next to the model, in `keras_vl.models.<family>.<family>_convert`.
"""

from keras_vl.convert.big_vision import linen_names, read_config
from keras_vl.convert.checkpoint import CheckpointReader, load_npz_checkpoint
from keras_vl.convert.huggingface import (
    load_transformers_checkpoint,
    read_safetensors,
)

__all__ = [
    "CheckpointReader",
    "linen_names",
    "load_npz_checkpoint",
    "load_transformers_checkpoint",
    "read_config",
    "read_safetensors",
]
