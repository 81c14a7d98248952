"""Hugging Face `MT5ForConditionalGeneration` -> `PaLILanguageModel`.

A tiny random mT5 is built in `transformers` from a config (nothing is
downloaded). transformers ties mT5's `lm_head` to the input embedding, which
would hide a wrong output projection, so the head is untied by hand with its
own random weights before converting.
"""

import json

import numpy as np
import pytest
from conftest import to_numpy
from safetensors.numpy import save_file

from keras_vl.models.convert_cli import HUGGINGFACE_CONVERTERS
from keras_vl.models.pali.pali_convert import convert_mt5
from keras_vl.models.pali.pali_language_model import PaLILanguageModel
from tools import convert_transformers

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

TOLERANCE = 1e-4
VOCAB, BATCH, ENCODER_LENGTH, DECODER_LENGTH = 99, 2, 11, 7
CONFIG = dict(
    vocab_size=VOCAB,
    d_model=32,
    d_kv=8,
    d_ff=48,
    num_layers=2,
    num_decoder_layers=3,
    num_heads=4,
    relative_attention_num_buckets=32,
    relative_attention_max_distance=128,
    dropout_rate=0.0,
    feed_forward_proj="gated-gelu",
    decoder_start_token_id=0,
)


@pytest.fixture(scope="module")
def hf_model():
    torch.manual_seed(0)
    model = transformers.MT5ForConditionalGeneration(
        transformers.MT5Config(**CONFIG)
    )
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():
        # Random init is tiny; larger weights make the comparison telling.
        for parameter in model.parameters():
            noise = torch.randn(parameter.shape, generator=generator)
            parameter.add_(noise * 0.2)
        head = 0.3 * torch.randn((VOCAB, 32), generator=generator)
        model.lm_head.weight = torch.nn.Parameter(head)
    assert not torch.equal(model.lm_head.weight, model.shared.weight)
    return model.eval()


@pytest.fixture(scope="module")
def inputs():
    rng = np.random.default_rng(0)
    encoder_ids = rng.integers(1, VOCAB, (BATCH, ENCODER_LENGTH))
    encoder_mask = np.ones((BATCH, ENCODER_LENGTH), bool)
    encoder_mask[1, 8:] = False  # a padded prompt
    decoder_ids = rng.integers(1, VOCAB, (BATCH, DECODER_LENGTH))
    decoder_ids[:, 0] = 0  # the start token
    return {
        "encoder_token_ids": encoder_ids.astype("int32"),
        "encoder_padding_mask": encoder_mask,
        "decoder_token_ids": decoder_ids.astype("int32"),
        "decoder_padding_mask": np.ones((BATCH, DECODER_LENGTH), bool),
    }


@pytest.fixture(scope="module")
def converted(hf_model):
    return convert_mt5(hf_model.state_dict(), hf_model.config.to_dict())


def hf_outputs(model, inputs, **encoder_input):
    with torch.no_grad():
        out = model(
            attention_mask=torch.tensor(inputs["encoder_padding_mask"]).long(),
            decoder_input_ids=torch.tensor(inputs["decoder_token_ids"]).long(),
            **encoder_input,
        )
    return out.encoder_last_hidden_state.numpy(), out.logits.numpy()


def keras_outputs(language, inputs):
    outputs = language(inputs)
    logits = language.logits(outputs["decoder_sequence_output"])
    return to_numpy(outputs["encoder_sequence_output"]), to_numpy(logits)


def assert_close(actual, expected, mask=None):
    if mask is not None:  # padded encoder positions are not compared
        actual, expected = actual[mask], expected[mask]
    np.testing.assert_allclose(actual, expected, atol=TOLERANCE, rtol=0)


def test_config_mapping(converted):
    assert isinstance(converted, PaLILanguageModel)
    assert converted.num_encoder_layers == 2
    assert converted.num_decoder_layers == 3
    assert converted.key_value_dim == 8
    assert converted.vocabulary_size == VOCAB


def test_token_parity(hf_model, converted, inputs):
    expected = hf_outputs(
        hf_model,
        inputs,
        input_ids=torch.tensor(inputs["encoder_token_ids"]).long(),
    )
    encoded, logits = keras_outputs(converted, inputs)
    assert_close(encoded, expected[0], inputs["encoder_padding_mask"])
    assert_close(logits, expected[1])
    # The logits come from the untied head, not from the embedding.
    tied = to_numpy(converted.token_embedding.embeddings)
    assert np.abs(to_numpy(converted.lm_head.kernel) - tied.T).max() > 0.1


def test_embeddings_parity(hf_model, converted, inputs):
    """The encoder takes embeddings that need not come from the table."""
    rng = np.random.default_rng(1)
    embeddings = rng.normal(size=(BATCH, ENCODER_LENGTH, 32)).astype("f4")
    expected = hf_outputs(
        hf_model, inputs, inputs_embeds=torch.tensor(embeddings)
    )
    encoded = converted.encoder(
        embeddings, padding_mask=inputs["encoder_padding_mask"]
    )
    decoded = converted.decoder(
        converted.token_embedding(inputs["decoder_token_ids"]),
        encoder_outputs=encoded,
        encoder_padding_mask=inputs["encoder_padding_mask"],
    )
    mask = inputs["encoder_padding_mask"]
    assert_close(to_numpy(encoded), expected[0], mask)
    assert_close(to_numpy(converted.logits(decoded)), expected[1])


def test_saved_folder_through_the_command(hf_model, inputs, tmp_path):
    """A safetensors folder (with the untied head) -> the conversion
    command -> `PaLILanguageModel.from_preset`."""
    assert "mt5" in HUGGINGFACE_CONVERTERS
    source = tmp_path / "mt5"
    source.mkdir()
    state = {
        k: v.detach().numpy().copy()
        for k, v in hf_model.state_dict().items()
        if not k.endswith("embed_tokens.weight")
    }
    save_file(state, str(source / "model.safetensors"))
    (source / "config.json").write_text(json.dumps(hf_model.config.to_dict()))
    output = tmp_path / "preset"
    convert_transformers.main(
        ["--model", "mt5", "--source", str(source), "--output", str(output)]
    )
    language = PaLILanguageModel.from_preset(str(output))
    expected = hf_outputs(
        hf_model,
        inputs,
        input_ids=torch.tensor(inputs["encoder_token_ids"]).long(),
    )
    encoded, logits = keras_outputs(language, inputs)
    assert_close(encoded, expected[0], inputs["encoder_padding_mask"])
    assert_close(logits, expected[1])


def test_rejects_other_feed_forward(hf_model):
    config = {**hf_model.config.to_dict(), "feed_forward_proj": "relu"}
    with pytest.raises(ValueError, match="feed_forward_proj"):
        convert_mt5(hf_model.state_dict(), config)


def test_rejects_unused_parameters(hf_model):
    state = dict(hf_model.state_dict())
    state["extra.weight"] = torch.zeros(3)
    with pytest.raises(ValueError, match="extra.weight"):
        convert_mt5(state, hf_model.config.to_dict())
