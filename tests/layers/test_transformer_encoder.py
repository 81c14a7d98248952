"""TransformerEncoder: per-block MLP factory, side input, config round trip."""

import keras
import numpy as np
import pytest
from conftest import to_numpy

from keras_vl.layers import (
    MlpBlock,
    TransformerEncoder,
    TransformerEncoderBlock,
    encoder_size,
)
from keras_vl.models import TextTransformer, ViTBackbone


@keras.saving.register_keras_serializable(package="keras_vl_tests")
class ScaleBySideInput(keras.layers.Layer):
    """A test MLP: `x * side_input[..., None]`, so the output shows whether
    (and which) side input arrived."""

    def call(self, x, side_input=None, training=None):
        if side_input is None:
            return x * 0.0
        return x * keras.ops.cast(side_input, x.dtype)[..., None]

    def compute_output_shape(self, input_shape):
        return input_shape


def tokens(batch=2, length=5, width=8, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, length, width))


def test_default_encoder_is_blocks_then_norm():
    keras.utils.set_random_seed(0)
    encoder = TransformerEncoder(depth=2, num_heads=2, mlp_dim=16)
    x = tokens().astype("float32")
    y = to_numpy(encoder(x))
    expected = x
    for block in encoder.blocks:
        expected = block(expected)
    expected = to_numpy(encoder.norm(expected))
    np.testing.assert_allclose(y, expected, atol=1e-6)
    assert [b.name for b in encoder.blocks] == [
        "encoderblock_0",
        "encoderblock_1",
    ]
    assert encoder.norm.name == "encoder_norm"
    assert encoder.norm.epsilon == 1e-6
    assert all(isinstance(b.mlp, MlpBlock) for b in encoder.blocks)


def test_factory_places_custom_mlps_and_side_input_reaches_them():
    encoder = TransformerEncoder(
        depth=3,
        num_heads=2,
        mlp_dim=16,
        mlp_factory=lambda i: ScaleBySideInput() if i == 1 else None,
    )
    x = tokens().astype("float32")
    side = np.array([[1, 2, 0, 1, 3]] * 2, "float32")
    encoder(x)
    kinds = [type(b.mlp).__name__ for b in encoder.blocks]
    assert kinds == ["MlpBlock", "ScaleBySideInput", "MlpBlock"]

    # Block 1 alone: its MLP output is LN(x') * side, visible in the result.
    block = encoder.blocks[1]
    with_side = to_numpy(block(x, side_input=side))
    without = to_numpy(block(x))
    after_attention = without  # the MLP adds 0 without a side input
    normed = to_numpy(block.norm_1(after_attention))
    np.testing.assert_allclose(
        with_side, after_attention + normed * side[..., None], atol=1e-5
    )
    # Dense MLPs ignore the side input.
    dense = encoder.blocks[0]
    np.testing.assert_allclose(
        to_numpy(dense(x, side_input=side)), to_numpy(dense(x)), atol=0
    )


def test_config_round_trip_keeps_custom_mlps_and_outputs():
    encoder = TransformerEncoder(
        depth=2,
        num_heads=2,
        mlp_dim=16,
        mlp_factory=[None, MlpBlock(32, name="wide")],
    )
    x = tokens().astype("float32")
    y = to_numpy(encoder(x))
    config = encoder.get_config()
    assert config["mlp_factory"][0] is None
    restored = TransformerEncoder.from_config(config)
    restored(x)
    assert restored.get_config() == config
    assert restored.blocks[1].mlp.mlp_dim == 32
    restored.set_weights(encoder.get_weights())
    np.testing.assert_allclose(to_numpy(restored(x)), y, atol=1e-6)
    # Without custom MLPs nothing is stored.
    plain = TransformerEncoder(depth=1, num_heads=2, mlp_dim=16)
    assert plain.get_config()["mlp_factory"] is None


def test_bad_arguments_name_themselves():
    with pytest.raises(ValueError, match="`depth`"):
        TransformerEncoder(depth=-1, num_heads=2, mlp_dim=8)
    with pytest.raises(ValueError, match="one entry per block"):
        TransformerEncoder(depth=2, num_heads=2, mlp_dim=8, mlp_factory=[None])
    with pytest.raises(TypeError, match="`mlp_factory`"):
        TransformerEncoder(depth=1, num_heads=2, mlp_dim=8, mlp_factory=3)
    with pytest.raises(TypeError, match=r"mlp_factory\(0\)"):
        TransformerEncoder(
            depth=1, num_heads=2, mlp_dim=8, mlp_factory=lambda i: "dense"
        )
    with pytest.raises(ValueError, match="`num_heads`"):
        TransformerEncoderBlock(3, 8)(tokens().astype("float32"))
    with pytest.raises(ValueError, match="Unknown `variant`"):
        encoder_size("XL/16")


def test_encoder_sizes_match_big_vision():
    assert encoder_size("So400m/14") == dict(
        width=1152, depth=27, mlp_dim=4304, num_heads=16, patch_size=14
    )
    assert encoder_size("B") == dict(
        width=768, depth=12, mlp_dim=3072, num_heads=12
    )


def test_backbones_take_an_mlp_factory_and_round_trip_it():
    vit = ViTBackbone(
        image_size=32,
        patch_size=16,
        width=16,
        depth=2,
        num_heads=2,
        mlp_factory=lambda i: MlpBlock(8) if i % 2 else None,
    )
    assert isinstance(vit.encoder.blocks[1].mlp, MlpBlock)
    assert vit.encoder.blocks[1].mlp.mlp_dim == 8
    restored = ViTBackbone.from_config(vit.get_config())
    assert restored.encoder.blocks[1].mlp.mlp_dim == 8
    assert restored.encoder.blocks[0].mlp.mlp_dim == 64

    text = TextTransformer(
        vocab_size=10,
        sequence_length=4,
        width=16,
        depth=2,
        num_heads=2,
        mlp_factory=[MlpBlock(8), None],
    )
    restored = TextTransformer.from_config(text.get_config())
    assert restored.encoder.blocks[0].mlp.mlp_dim == 8
