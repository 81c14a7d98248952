"""mT5 decoding against the caches: token by token equals the whole
decoder, with kernels fetched and joined or left to the layers, quantized
or not."""

import keras
import numpy as np
import pytest
from conftest import to_numpy
from pali_fixtures import tiny_language

from keras_vl.models.pali.pali_language_model import padding_bias

LENGTH, SOURCE = 5, 6


@pytest.fixture(scope="module")
def case():
    """A tiny language model, embedded decoder tokens and encoder outputs
    whose last position is padding."""
    keras.utils.set_random_seed(0)
    language = tiny_language()
    rng = np.random.default_rng(0)
    tokens = language.embed(rng.integers(0, 100, (2, LENGTH)).astype("int32"))
    encoded = rng.normal(size=(2, SOURCE, 32)).astype("float32")
    mask = np.arange(SOURCE)[None].repeat(2, 0) < SOURCE - 1
    return language, tokens, encoded, mask


def whole(language, tokens, encoded, mask):
    return to_numpy(
        language.decoder(
            tokens, encoder_outputs=encoded, encoder_padding_mask=mask
        )
    )


def token_by_token(language, tokens, encoded, mask, fused):
    decoder = language.decoder
    cache = decoder.start_cache(keras.ops.convert_to_tensor(encoded), LENGTH)
    table = decoder.causal_bias_table(LENGTH)
    weights = decoder.decoding_weights(fused=fused)
    steps = []
    for i in range(LENGTH):
        hidden, cache = decoder.decode(
            tokens[:, i : i + 1], cache, i, table, padding_bias(mask), weights
        )
        steps.append(to_numpy(hidden))
    return np.concatenate(steps, axis=1)


@pytest.mark.parametrize("fused", [True, False], ids=["fused", "layers"])
def test_token_by_token_equals_whole_decoder(case, fused):
    expected = whole(*case)
    np.testing.assert_allclose(
        token_by_token(*case, fused=fused), expected, atol=1e-5
    )


def test_quantized_projections_go_through_their_layers(case):
    language, tokens, encoded, mask = case
    quantized = tiny_language()
    quantized.set_weights(language.get_weights())
    block = quantized.decoder.blocks[0]
    # One of each kind: a joined kernel, an output and a feed-forward one.
    for layer in (
        block.self_attention.key,
        block.cross_attention.output_dense,
        block.mlp_output,
    ):
        layer.quantize("int8")
    expected = whole(quantized, tokens, encoded, mask)
    # The int8 layers change the outputs, and decoding follows them.
    assert np.abs(expected - whole(*case)).max() > 1e-4
    np.testing.assert_allclose(
        token_by_token(quantized, tokens, encoded, mask, fused=True),
        expected,
        atol=1e-5,
    )


def test_generation_methods_need_a_decoder(case):
    encoder = case[0].encoder
    with pytest.raises(ValueError, match="`start_cache` is for a decoder"):
        encoder.start_cache(case[2], LENGTH)
