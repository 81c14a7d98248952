"""Hugging Face SigLIP / CLIP checkpoints -> `LiT` presets.

Tiny random `transformers` models are saved with `save_pretrained` (nothing
is downloaded), converted with `tools/convert_transformers.py`, reloaded
with `LiT.from_preset` and compared logit for logit.
"""

import json

import numpy as np
import pytest
from conftest import to_numpy

from keras_vl.convert.huggingface import read_safetensors
from keras_vl.models.lit.lit_huggingface_convert import (
    convert_clip,
    convert_siglip,
)
from tools import convert_transformers

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOLERANCE = 1e-4
IMAGE, PATCH, LENGTH, VOCAB = 32, 8, 16, 99
TOWER = dict(
    hidden_size=32,
    intermediate_size=37,
    num_hidden_layers=2,
    num_attention_heads=4,
)


def perturb(model, scale=0.1):
    """Random init is tiny; larger weights make the comparison meaningful."""
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.add_(noise * scale)
    return model.eval()


def siglip_model():
    torch.manual_seed(0)
    config = transformers.SiglipConfig(
        text_config=dict(
            vocab_size=VOCAB, max_position_embeddings=LENGTH, **TOWER
        ),
        vision_config=dict(image_size=IMAGE, patch_size=PATCH, **TOWER),
    )
    model = perturb(transformers.SiglipModel(config))
    with torch.no_grad():
        # Trained SigLIPs pass CLIP's ceiling of 100 (B/16: about 118).
        model.logit_scale.fill_(np.log(118.0))
        model.logit_bias.fill_(-2.0)
    return model


def clip_model(eos_token_id=VOCAB - 1):
    torch.manual_seed(0)
    config = transformers.CLIPConfig(
        text_config=dict(
            vocab_size=VOCAB,
            max_position_embeddings=LENGTH,
            eos_token_id=eos_token_id,
            **TOWER,
        ),
        vision_config=dict(image_size=IMAGE, patch_size=PATCH, **TOWER),
        projection_dim=24,
    )
    return perturb(transformers.CLIPModel(config))


def inputs(eos_token_id=None, seed=0):
    rng = np.random.default_rng(seed)
    pixels = rng.standard_normal((3, 3, IMAGE, IMAGE)).astype("float32")
    top = VOCAB - 1 if eos_token_id else VOCAB
    tokens = rng.integers(3, top, (3, LENGTH)).astype("int32")
    if eos_token_id is not None:
        # BOS ... EOS, then EOS padding (CLIP's tokenizer pads with EOS).
        for row, length in enumerate((5, LENGTH, 9)):
            tokens[row, length - 1 :] = eos_token_id
    return pixels, tokens


def hf_logits(model, pixels, tokens):
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(tokens, dtype=torch.long),
            pixel_values=torch.tensor(pixels),
        )
    return out.logits_per_image.numpy()


def our_logits(model, pixels, tokens):
    y_pred = model.backbone(
        {"images": pixels.transpose(0, 2, 3, 1), "token_ids": tokens}
    )
    return to_numpy(
        model.logits(y_pred["image_embeddings"], y_pred["text_embeddings"])
    )


def convert_with_tool(name, source, tmp_path, extra=()):
    from keras_vl.models.lit.lit import LiT

    preset = tmp_path / f"{name}_preset"
    convert_transformers.main(
        [
            "--model", name,
            "--source", str(source),
            "--output", str(preset),
            *extra,
        ]
    )  # fmt: skip
    return LiT.from_preset(str(preset))


def test_siglip_logits_match_transformers(tmp_path):
    hf = siglip_model()
    hf.save_pretrained(tmp_path / "siglip")
    model = convert_with_tool("siglip", tmp_path / "siglip", tmp_path)
    pixels, tokens = inputs()
    expected = hf_logits(hf, pixels, tokens)
    logits = our_logits(model, pixels, tokens)
    assert np.abs(logits - expected).max() <= TOLERANCE
    assert model.loss_type == "sigmoid"
    # The towers are keras_vl's own: a MAP-pooled ViT, a TextTransformer.
    assert model.backbone.image_encoder.pool_type == "map"
    assert model.backbone.text_encoder.pool_type == "last"


def test_clip_logits_match_transformers(tmp_path):
    hf = clip_model()
    hf.save_pretrained(tmp_path / "clip")
    model = convert_with_tool("clip", tmp_path / "clip", tmp_path)
    pixels, tokens = inputs(eos_token_id=VOCAB - 1)
    expected = hf_logits(hf, pixels, tokens)
    logits = our_logits(model, pixels, tokens)
    assert np.abs(logits - expected).max() <= TOLERANCE
    assert model.loss_type == "softmax"


def test_clip_legacy_eos_takes_the_largest_id(tmp_path):
    # Configs with `eos_token_id == 2` pool at the argmax of the ids.
    hf = clip_model(eos_token_id=2)
    hf.save_pretrained(tmp_path / "clip_legacy")
    model = convert_clip(tmp_path / "clip_legacy")
    pixels, tokens = inputs()
    expected = hf_logits(hf, pixels, tokens)
    assert np.abs(our_logits(model, pixels, tokens) - expected).max() <= (
        TOLERANCE
    )


def test_single_state_dict_files(tmp_path):
    hf = siglip_model()
    hf.save_pretrained(tmp_path / "siglip")
    config = tmp_path / "siglip" / "config.json"
    pixels, tokens = inputs()
    expected = hf_logits(hf, pixels, tokens)
    # A .safetensors file with its config.json next to it.
    model = convert_siglip(tmp_path / "siglip" / "model.safetensors")
    assert np.abs(our_logits(model, pixels, tokens) - expected).max() <= (
        TOLERANCE
    )
    # A PyTorch .bin state dict elsewhere, config given explicitly.
    torch.save(hf.state_dict(), tmp_path / "weights.bin")
    model = convert_siglip(tmp_path / "weights.bin", config=str(config))
    assert np.abs(our_logits(model, pixels, tokens) - expected).max() <= (
        TOLERANCE
    )


def test_missing_and_unknown_parameters_are_named(tmp_path):
    from safetensors.numpy import save_file

    hf = siglip_model()
    hf.save_pretrained(tmp_path / "siglip")
    params = read_safetensors(tmp_path / "siglip" / "model.safetensors")
    config = str(tmp_path / "siglip" / "config.json")
    missing = {k: v for k, v in params.items() if "post_layernorm" not in k}
    save_file(missing, tmp_path / "missing.safetensors")
    with pytest.raises(ValueError, match="vision_model.post_layernorm"):
        convert_siglip(tmp_path / "missing.safetensors", config=config)
    extra = {**params, "text_model.extra.weight": np.zeros(3, "float32")}
    save_file(extra, tmp_path / "extra.safetensors")
    with pytest.raises(ValueError, match="text_model.extra.weight"):
        convert_siglip(tmp_path / "extra.safetensors", config=config)


def test_unsupported_configs_are_refused(tmp_path):
    hf = siglip_model()
    hf.save_pretrained(tmp_path / "siglip")
    config = json.loads((tmp_path / "siglip" / "config.json").read_text())
    config["vision_config"]["hidden_act"] = "relu"
    with pytest.raises(ValueError, match="vision_config.hidden_act='relu'"):
        convert_siglip(tmp_path / "siglip", config=config)
    with pytest.raises(ValueError, match="'clip' checkpoint"):
        convert_clip(tmp_path / "siglip")
