"""Tiny PaLI models and inputs shared by the PaLI tests."""

import numpy as np

from keras_vl.models import PaLIBackbone, PaLILanguageModel, ViTBackbone

VOCAB = 100
WIDTH = 32
IMAGE = 16
NUM_IMAGE_TOKENS = 4  # 16 px images in 8 px patches
PROMPT, RESPONSE = 6, 5


def tiny_vision(**overrides) -> ViTBackbone:
    kwargs = dict(
        image_size=IMAGE, patch_size=8, width=24, depth=1, num_heads=2
    )
    return ViTBackbone(**{**kwargs, "pool_type": "none", **overrides})


def tiny_language(**overrides) -> PaLILanguageModel:
    kwargs = dict(
        vocabulary_size=VOCAB,
        hidden_dim=WIDTH,
        intermediate_dim=48,
        num_heads=4,
        num_encoder_layers=2,
        num_decoder_layers=2,
    )
    return PaLILanguageModel(**{**kwargs, **overrides})


def tiny_backbone(language=None, **overrides) -> PaLIBackbone:
    kwargs = dict(max_encoder_length=NUM_IMAGE_TOKENS + PROMPT + 2)
    language = language or tiny_language()
    return PaLIBackbone(tiny_vision(), language, **{**kwargs, **overrides})


def tiny_inputs(batch=2, seed=0, prompt=PROMPT, response=RESPONSE) -> dict:
    """Model inputs; the second prompt is padded after 4 tokens."""
    rng = np.random.default_rng(seed)
    prompt_mask = np.ones((batch, prompt), bool)
    if batch > 1:
        prompt_mask[1, 4:] = False
    prompt_ids = rng.integers(1, VOCAB, (batch, prompt)) * prompt_mask
    decoder_ids = rng.integers(1, VOCAB, (batch, response))
    decoder_ids[:, 0] = 0  # the start token
    return {
        "images": rng.uniform(-1, 1, (batch, IMAGE, IMAGE, 3)).astype("f4"),
        "encoder_token_ids": prompt_ids.astype("int32"),
        "encoder_padding_mask": prompt_mask,
        "decoder_token_ids": decoder_ids.astype("int32"),
        "decoder_padding_mask": np.ones((batch, response), bool),
    }
