"""Checkpoint conversion from other libraries' formats into keras_vl."""

from keras_vl.convert.checkpoint import CheckpointReader, load_npz_checkpoint

__all__ = ["CheckpointReader", "load_npz_checkpoint"]
