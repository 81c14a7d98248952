"""TextTransformer: keras-hub's contract, pooling, head, bad arguments."""

import keras
import numpy as np
import pytest
from conftest import to_numpy
from model_contract import ContractTestCase, tiny_text_kwargs

from keras_vl.models import TextTransformer

VOCAB, LENGTH, WIDTH = 50, 8, 32


class TextTransformerContractTest(ContractTestCase):
    def test_backbone_contract(self):
        init_kwargs = tiny_text_kwargs(pool_type="map", num_classes=8)
        token_ids = np.arange(8, dtype="int32").reshape(2, 4)
        self.run_backbone_contract(
            TextTransformer,
            init_kwargs,
            token_ids,
            (2, 8),
            # The learned position embedding has exactly `sequence_length`
            # rows (as in big_vision), so only full-length batches apply.
            variable_length_data=[token_ids],
        )


def tiny_text(**kwargs):
    config = dict(
        vocab_size=VOCAB,
        sequence_length=LENGTH,
        width=WIDTH,
        depth=1,
        num_heads=2,
        mlp_dim=64,
    )
    return TextTransformer(**{**config, **kwargs})


def token_batch(batch=3, seed=0):
    rng = np.random.default_rng(seed)
    return rng.integers(0, VOCAB, (batch, LENGTH)).astype("int32")


def encoded_tokens(model, tokens):
    """The tokens after the final LayerNorm, before pooling."""
    encoder = keras.Model(model.input, model.encoder.output)
    return to_numpy(encoder(tokens))


@pytest.mark.parametrize("pool_type", ["last", "first", "mean", "max"])
def test_pooling_types(pool_type):
    model = tiny_text(pool_type=pool_type)
    tokens = token_batch()
    pooled = to_numpy(model(tokens))
    sequence = encoded_tokens(model, tokens)
    expected = {
        "last": sequence[:, -1],
        "first": sequence[:, 0],
        "mean": sequence.mean(axis=1),
        "max": sequence.max(axis=1),
    }[pool_type]
    assert pooled.shape == (3, WIDTH)
    np.testing.assert_allclose(pooled, expected, atol=1e-5)


def test_map_pooling_and_head():
    model = tiny_text(pool_type="map", num_classes=12)
    tokens = token_batch()
    sequence = encoded_tokens(model, tokens)
    probe = to_numpy(model.map_head(sequence))
    expected = probe @ to_numpy(model.head.kernel) + to_numpy(model.head.bias)
    out = to_numpy(model(tokens))
    assert out.shape == (3, 12) and model.output_dim == 12
    np.testing.assert_allclose(out, expected, atol=1e-5)


def test_no_attention_mask_so_padding_matters():
    # big_vision's tower attends to every position (sticky EOS padding is
    # part of the text), so changing a "pad" token changes the output.
    model = tiny_text()
    tokens = token_batch(1)
    changed = tokens.copy()
    changed[0, 0] = (changed[0, 0] + 1) % VOCAB
    assert (
        np.abs(to_numpy(model(tokens)) - to_numpy(model(changed))).max() > 1e-4
    )


def test_from_variant():
    model = TextTransformer.from_variant(
        "mu/16", vocab_size=VOCAB, sequence_length=LENGTH, num_classes=8
    )
    config = model.get_config()
    assert (config["width"], config["depth"], config["mlp_dim"]) == (32, 1, 128)
    assert config["num_heads"] == 2 and model.output_dim == 8
    assert tuple(model(token_batch()).shape) == (3, 8)
    with pytest.raises(ValueError, match="variant"):
        TextTransformer.from_variant("XXL")


def test_bad_arguments():
    with pytest.raises(ValueError, match="pool_type"):
        tiny_text(pool_type="cls")
    with pytest.raises(ValueError, match="vocab_size"):
        tiny_text(vocab_size=0)
    with pytest.raises(ValueError, match="sequence_length"):
        tiny_text(sequence_length=2.5)
    with pytest.raises(ValueError, match="num_heads"):
        tiny_text(num_heads=3)
    model = tiny_text()
    with pytest.raises(ValueError):
        model(np.zeros((2, LENGTH + 1), "int32"))
