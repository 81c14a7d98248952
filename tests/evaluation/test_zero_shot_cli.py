"""`keras-vl zero-shot` on a tiny saved CLIPPO preset (softmax) and a tiny
LiT preset with a WordPiece tokenizer and the sigmoid loss (SigLIP)."""

import json
import os
import subprocess
import sys

import keras
import keras_hub
import numpy as np
import pytest
from conftest import REPO_ROOT
from model_contract import tiny_text_kwargs, tiny_vit_kwargs
from PIL import Image

from keras_vl import cli
from keras_vl.evaluation import zero_shot_cli
from keras_vl.layers import TextRenderer
from keras_vl.models import (
    Clippo,
    ClippoBackbone,
    ClippoPreprocessor,
    LiT,
    LiTBackbone,
    LiTPreprocessor,
    TextTransformer,
    ViTBackbone,
)

LABELS = ["red circle", "blue square", "a green star"]
TEMPLATE = "a photo of a {}."
VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "a", "photo", "of", "."]
VOCAB += ["red", "circle", "blue", "square", "green", "star"]


@pytest.fixture(scope="module")
def image_files(tmp_path_factory):
    """Three PNGs of different sizes (the model resizes each)."""
    folder = tmp_path_factory.mktemp("images")
    rng = np.random.default_rng(0)
    paths = []
    for i, (height, width) in enumerate([(32, 32), (40, 56), (64, 48)]):
        pixels = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
        path = folder / f"image_{i}.png"
        Image.fromarray(pixels).save(path)
        paths.append(str(path))
    return paths


@pytest.fixture(scope="module")
def clippo_preset(tmp_path_factory):
    keras.utils.set_random_seed(1)
    vit = ViTBackbone(
        **tiny_vit_kwargs(pool_type="map", num_classes=8, head_zeroinit=False)
    )
    backbone = ClippoBackbone(vit, TextRenderer(image_size=32))
    model = Clippo(backbone, ClippoPreprocessor(32, 16))
    path = str(tmp_path_factory.mktemp("clippo"))
    model.save_to_preset(path)
    return path, model


@pytest.fixture(scope="module")
def siglip_preset(tmp_path_factory):
    keras.utils.set_random_seed(2)
    text = tiny_text_kwargs(vocab_size=len(VOCAB), sequence_length=8)
    backbone = LiTBackbone(
        ViTBackbone(**tiny_vit_kwargs()),
        TextTransformer(**text),
        image_projection_dim=8,
        text_projection_dim=8,
    )
    tokenizer = keras_hub.tokenizers.WordPieceTokenizer(vocabulary=VOCAB)
    preprocessor = LiTPreprocessor(tokenizer, sequence_length=8, image_size=32)
    model = LiT(backbone, preprocessor, loss="sigmoid", bias_init=-2.0)
    path = str(tmp_path_factory.mktemp("siglip"))
    model.save_to_preset(path)
    return path, model


def expected_logits(model, paths, template=TEMPLATE):
    """`model.similarity` of each image with the label prompts."""
    prompts = [template.format(label) for label in LABELS]
    return np.concatenate(
        [
            model.similarity(zero_shot_cli.read_image(path)[None], prompts)
            for path in paths
        ]
    )


def run_json(capsys, preset, paths, *extra):
    argv = ["zero-shot", "--preset", preset, "--labels", ",".join(LABELS)]
    assert cli.main([*argv, "--json", *extra, *paths]) == 0
    return json.loads(capsys.readouterr().out)


def ranked(result):
    return [(p["label"], p["probability"]) for p in result["predictions"]]


def test_clippo_softmax_probabilities(clippo_preset, image_files, capsys):
    path, model = clippo_preset
    # The label alone: a 32-pixel rendering shows the first 4 characters,
    # which "a photo of a {}." would make the same for every label.
    report = run_json(capsys, path, image_files, "--template", "{}")
    assert (report["model"], report["probability"]) == ("Clippo", "softmax")
    assert report["labels"] == LABELS and report["template"] == "{}"
    logits = expected_logits(model, image_files, "{}")
    # Distinct scores, so that the ranking below is a real check.
    assert (np.diff(np.sort(logits, axis=1), axis=1) > 1e-3).all()
    for row, result, image in zip(
        logits, report["results"], image_files, strict=True
    ):
        assert result["image"] == image
        probabilities = np.exp(row - row.max())
        probabilities /= probabilities.sum()
        order = np.argsort(-probabilities)
        assert ranked(result)[0][0] == LABELS[int(np.argmax(row))]
        assert [label for label, _ in ranked(result)] == [
            LABELS[i] for i in order
        ]
        got = [p for _, p in ranked(result)]
        np.testing.assert_allclose(got, probabilities[order], atol=1e-5)
        assert abs(sum(got) - 1.0) < 1e-5


def test_siglip_sigmoid_probabilities_and_top_k(
    siglip_preset, image_files, capsys
):
    path, model = siglip_preset
    report = run_json(capsys, path, image_files[1:], "--top-k", "2")
    assert (report["model"], report["probability"]) == ("LiT", "sigmoid")
    logits = expected_logits(model, image_files[1:])
    assert (np.diff(np.sort(logits, axis=1), axis=1) > 1e-3).all()
    # The bias counts: a sigmoid of the unbiased logits would differ.
    assert abs(float(keras.ops.convert_to_numpy(model.logit_bias)[0])) > 1
    for row, result in zip(logits, report["results"], strict=True):
        order = np.argsort(-row)[:2]
        assert [label for label, _ in ranked(result)] == [
            LABELS[i] for i in order
        ]
        np.testing.assert_allclose(
            [p for _, p in ranked(result)],
            1 / (1 + np.exp(-row[order])),
            atol=1e-5,
        )


def test_text_output_and_labels_file(clippo_preset, image_files, capsys):
    path, _ = clippo_preset
    labels_file = os.path.join(os.path.dirname(image_files[0]), "labels.txt")
    with open(labels_file, "w", encoding="utf-8") as f:
        f.write("\n".join(LABELS) + "\n\n")
    argv = ["zero-shot", "--preset", path, "--labels", "@" + labels_file]
    assert cli.main([*argv, "--top-k", "9", image_files[0]]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith(f"Clippo preset {path!r}, 3 labels")
    assert "softmax" in lines[0]
    assert lines[1] == image_files[0]
    # --top-k above the number of labels shows them all.
    assert len(lines) == 5
    probabilities = [float(line.split()[0]) for line in lines[2:]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert {line.split(None, 1)[1] for line in lines[2:]} == set(LABELS)


def test_a_preset_of_another_family_is_a_user_error(tmp_path, capsys):
    ViTBackbone(**tiny_vit_kwargs()).save_to_preset(str(tmp_path / "vit"))
    image = tmp_path / "x.png"
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(image)
    argv = ["zero-shot", "--preset", str(tmp_path / "vit"), "--labels"]
    assert cli.main([*argv, "a,b", str(image)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("keras-vl: error: Preset ") and "\n" not in err
    assert "no contrastive image-text model" in err


def test_not_an_image_is_a_user_error(tmp_path, capsys):
    not_an_image = tmp_path / "notes.png"
    not_an_image.write_text("hello")
    argv = ["zero-shot", "--preset", "p", "--labels", "a,b"]
    assert cli.main([*argv, str(not_an_image)]) == 2
    assert capsys.readouterr().err == (
        f"keras-vl: error: {str(not_an_image)!r} is not an image file "
        "Pillow can read.\n"
    )


def test_subprocess_exit_code_and_quiet_start(clippo_preset, image_files):
    path, model = clippo_preset
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    argv = [sys.executable, "-m", "keras_vl.cli", "zero-shot", "--preset"]
    argv += [path, "--labels", ",".join(LABELS), "--template", "{}"]
    argv += ["--top-k", "1", "--json"]
    done = subprocess.run(
        [*argv, image_files[0]], capture_output=True, text=True, env=env
    )
    assert done.returncode == 0, done.stderr
    (result,) = json.loads(done.stdout)["results"]
    (row,) = expected_logits(model, image_files[:1], "{}")
    top = int(np.argmax(row))
    assert np.sort(row)[-1] - np.sort(row)[-2] > 1e-3
    assert ranked(result)[0][0] == LABELS[top]
    # TensorFlow's C++ start-up logs (imported by keras-hub) stay hidden.
    for log in ("port.cc", "cudart_stub", "absl::InitializeLog", "Traceback"):
        assert log not in done.stderr
