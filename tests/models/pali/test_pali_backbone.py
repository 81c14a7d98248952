"""PaLIBackbone: keras-hub's contract, the forward pass spelled out, the
ViT lock, mixed precision and bad input."""

import keras
import numpy as np
import pytest
from conftest import to_numpy
from model_contract import ContractTestCase
from pali_fixtures import (
    IMAGE,
    NUM_IMAGE_TOKENS,
    PROMPT,
    RESPONSE,
    WIDTH,
    tiny_backbone,
    tiny_inputs,
    tiny_language,
    tiny_vision,
)

from keras_vl.models import PaLIBackbone, PaLILanguageModel


@pytest.fixture(scope="module")
def backbone():
    return tiny_backbone()


class PaLIBackboneContractTest(ContractTestCase):
    def test_backbone_contract(self):
        init_kwargs = dict(
            vision=tiny_vision(),
            language=tiny_language(),
            max_encoder_length=NUM_IMAGE_TOKENS + PROMPT,
        )
        self.run_backbone_contract(
            PaLIBackbone,
            init_kwargs,
            tiny_inputs(),
            {
                "encoder_sequence_output": (
                    2,
                    NUM_IMAGE_TOKENS + PROMPT,
                    WIDTH,
                ),
                "decoder_sequence_output": (2, RESPONSE, WIDTH),
            },
            # Quantization is checked on the language model below and on
            # the ViT in its own tests; the projection adds nothing new.
            run_quantization_check=False,
        )


class PaLILanguageModelContractTest(ContractTestCase):
    def test_backbone_contract(self):
        x = tiny_inputs()
        x.pop("images")
        init_kwargs = tiny_language().get_config()
        for key in ("name", "trainable", "dtype"):
            init_kwargs.pop(key)
        self.run_backbone_contract(
            PaLILanguageModel,
            init_kwargs,
            x,
            {
                "encoder_sequence_output": (2, PROMPT, WIDTH),
                "decoder_sequence_output": (2, RESPONSE, WIDTH),
            },
        )


def test_forward_pass_spelled_out(backbone):
    """Projected image tokens go in front of the embedded prompt."""
    x = tiny_inputs()
    outputs = backbone(x)
    language = backbone.language_model
    image_tokens = backbone.image_projection(backbone.vision(x["images"]))
    prompt = language.token_embedding(x["encoder_token_ids"])
    embeddings = keras.ops.concatenate([image_tokens, prompt], axis=1)
    mask = np.concatenate(
        [np.ones((2, NUM_IMAGE_TOKENS), bool), x["encoder_padding_mask"]], 1
    )
    encoded = language.encoder(embeddings, padding_mask=mask)
    decoded = language.decoder(
        language.token_embedding(x["decoder_token_ids"]),
        padding_mask=x["decoder_padding_mask"],
        encoder_outputs=encoded,
        encoder_padding_mask=mask,
    )
    np.testing.assert_allclose(
        to_numpy(outputs["encoder_sequence_output"]),
        to_numpy(encoded),
        atol=1e-5,
    )
    np.testing.assert_allclose(
        to_numpy(outputs["decoder_sequence_output"]),
        to_numpy(decoded),
        atol=1e-5,
    )
    # The padded prompt tokens change nothing that reads them masked: the
    # decoder output is the same whatever ids the padding holds.
    other = dict(x, encoder_token_ids=x["encoder_token_ids"] + 7 * ~mask[:, 4:])
    np.testing.assert_allclose(
        to_numpy(backbone(other)["decoder_sequence_output"][1]),
        to_numpy(outputs["decoder_sequence_output"][1]),
        atol=1e-5,
    )


def test_freeze_vision():
    backbone = tiny_backbone(freeze_vision=True)
    vision_ids = {id(v) for v in backbone.vision.weights}
    assert backbone.freeze_vision
    assert not any(id(v) in vision_ids for v in backbone.trainable_weights)
    assert backbone.image_projection.trainable
    config = backbone.get_config()
    assert config["freeze_vision"] is True
    restored = PaLIBackbone.from_config(config)
    assert restored.freeze_vision
    assert not tiny_backbone().freeze_vision


def test_mixed_precision_forward_close_to_float32(backbone):
    x = tiny_inputs()
    reference = backbone(x)
    # Every part built under the policy, with the float32 model's weights.
    keras.config.set_dtype_policy("mixed_bfloat16")
    mixed = tiny_backbone()
    keras.config.set_dtype_policy("float32")
    mixed.set_weights(backbone.get_weights())
    outputs = mixed(x)
    for key, value in outputs.items():
        assert keras.backend.standardize_dtype(value.dtype) == "bfloat16"
        value = to_numpy(keras.ops.cast(value, "float32"))
        expected = to_numpy(reference[key])
        assert np.isfinite(value).all()
        # RMS-normed outputs are O(1); bfloat16 keeps about 3 digits.
        np.testing.assert_allclose(value, expected, atol=0.15, rtol=0.05)
    norm = mixed.language_model.encoder.final_norm
    assert norm.compute_dtype == "bfloat16"


def test_prompt_too_long(backbone):
    x = tiny_inputs(prompt=PROMPT + 3)
    with pytest.raises(ValueError, match="max_encoder_length"):
        backbone(x)


def test_wrong_image_size(backbone):
    x = tiny_inputs()
    x["images"] = np.zeros((2, IMAGE * 2, IMAGE * 2, 3), "float32")
    with pytest.raises(ValueError, match="images"):
        backbone(x)


def test_bad_parts():
    with pytest.raises(ValueError, match="pool_type='none'"):
        PaLIBackbone(tiny_vision(pool_type="gap"), tiny_language())
    with pytest.raises(TypeError, match="`language`"):
        PaLIBackbone(tiny_vision(), tiny_vision())
    with pytest.raises(ValueError, match="max_encoder_length"):
        PaLIBackbone(tiny_vision(), tiny_language(), max_encoder_length=3)
