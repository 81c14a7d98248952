"""big_vision two-tower (LiT / SigLIP) checkpoints -> `LiT` presets."""

import json

import numpy as np
import pytest
from conftest import load_npz, require_fixtures, to_numpy

from keras_vl.models.lit.lit_convert import convert_lit
from tools import convert_big_vision

TOLERANCE = 1e-4


def lit_fixture():
    root = require_fixtures("lit")
    config = json.loads((root / "config.json").read_text())
    return root, config


@pytest.fixture(scope="module")
def converted(tmp_path_factory):
    root, _ = lit_fixture()
    preset = tmp_path_factory.mktemp("lit") / "preset"
    convert_big_vision.main(
        [
            "--model", "lit",
            "--checkpoint", str(root / "params.npz"),
            "--config", str(root / "config.json"),
            "--output", str(preset),
        ]
    )  # fmt: skip
    return root, preset


def test_fixture_parity(converted):
    from keras_vl.models.lit.lit import LiT

    root, preset = converted
    model = LiT.from_preset(str(preset))
    io = load_npz(root / "io.npz")

    # The image size and text length come from the checkpoint.
    y_pred = model.backbone({"images": io["images"], "token_ids": io["tokens"]})
    zimg = to_numpy(y_pred["image_embeddings"])
    ztxt = to_numpy(y_pred["text_embeddings"])
    assert np.abs(zimg - io["zimg"]).max() <= TOLERANCE
    assert np.abs(ztxt - io["ztxt"]).max() <= TOLERANCE

    assert model.loss_type == "sigmoid"
    t = float(to_numpy(model.logit_scale).reshape(()))
    b = float(to_numpy(model.logit_bias).reshape(()))
    assert abs(t - float(io["t"][0])) <= TOLERANCE
    assert abs(b - float(io["b"][0])) <= TOLERANCE
    logits = to_numpy(model.logits(y_pred["image_embeddings"], ztxt))
    assert np.abs(logits - io["logits"]).max() <= TOLERANCE
    loss = float(to_numpy(model.compute_loss(y_pred=y_pred)))
    assert abs(loss - float(io["loss"])) <= TOLERANCE

    # The towers' heads are the projections: their logits match too.
    image_logits = to_numpy(model.backbone.image_encoder(io["images"]))
    text_logits = to_numpy(model.backbone.text_encoder(io["tokens"]))
    assert np.abs(image_logits - io["img/logits"]).max() <= TOLERANCE
    assert np.abs(text_logits - io["txt/logits"]).max() <= TOLERANCE


def checkpoint_copy(tmp_path, edit):
    root, config = lit_fixture()
    params = load_npz(root / "params.npz")
    edit(params)
    path = tmp_path / "ckpt.npz"
    np.savez(path, **params)
    return path, config


def test_missing_parameter_is_named(tmp_path):
    path, config = checkpoint_copy(
        tmp_path, lambda p: p.pop("params/txt/Encoder_0/encoder_norm/scale")
    )
    with pytest.raises(ValueError, match="'params/txt/Encoder_0/encoder_norm"):
        convert_lit(path, config)


def test_unknown_parameter_is_named(tmp_path):
    def add(params):
        params["params/txt/Encoder_0/encoderblock_1/extra"] = np.zeros(2)

    path, config = checkpoint_copy(tmp_path, add)
    with pytest.raises(ValueError, match="encoderblock_1/extra"):
        convert_lit(path, config)


def test_doubled_text_posemb_is_summed(tmp_path):
    # Older checkpoints also hold a posemb under `Encoder_0`; big_vision
    # adds it to the top-level one. Splitting it in two halves must give
    # the same model.
    def split(params):
        posemb = params["params/txt/pos_embedding"]
        params["params/txt/pos_embedding"] = posemb * 0.25
        params["params/txt/Encoder_0/pos_embedding"] = posemb * 0.75

    path, config = checkpoint_copy(tmp_path, split)
    model = convert_lit(path, config)
    io = load_npz(lit_fixture()[0] / "io.npz")
    ztxt = to_numpy(
        model.backbone({"images": io["images"], "token_ids": io["tokens"]})[
            "text_embeddings"
        ]
    )
    assert np.abs(ztxt - io["ztxt"]).max() <= TOLERANCE


def test_softmax_checkpoint_without_bias(tmp_path):
    def drop_bias(params):
        params.pop("params/b")

    path, config = checkpoint_copy(tmp_path, drop_bias)
    kwargs = dict(config["model_kwargs"])
    del kwargs["bias_init"]
    model = convert_lit(path, {**config, "model_kwargs": kwargs})
    assert model.loss_type == "softmax"
    assert model.logit_bias is None


def test_sequence_length_must_match_checkpoint():
    root, config = lit_fixture()
    with pytest.raises(ValueError, match="sequence_length"):
        convert_lit(root / "params.npz", config, sequence_length=8)


def test_unsupported_text_model_is_refused():
    root, config = lit_fixture()
    kwargs = {**config["model_kwargs"], "text_model": "proj.flaxformer.bert"}
    with pytest.raises(ValueError, match="text_model"):
        convert_lit(root / "params.npz", {"model_kwargs": kwargs})


def test_other_image_size_resamples_the_image_posemb():
    ndimage = pytest.importorskip("scipy.ndimage")
    root, config = lit_fixture()
    model = convert_lit(root / "params.npz", config, image_size=96)
    assert model.backbone.image_size == (96, 96)
    posemb = load_npz(root / "params.npz")["params/img/pos_embedding"]
    expected = ndimage.zoom(
        posemb.reshape(4, 4, -1), (1.5, 1.5, 1), order=1
    ).reshape(1, 36, -1)
    embedding = model.backbone.image_encoder.position_embedding.embedding
    np.testing.assert_allclose(to_numpy(embedding), expected, atol=1e-6)
    zimg = model.encode_images(np.zeros((1, 96, 96, 3)), preprocessed=True)
    assert zimg.shape == (1, 32)
