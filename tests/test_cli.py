"""The `keras-vl` command line."""

import json

import numpy as np
from conftest import load_npz, require_fixtures, to_numpy
from PIL import Image

from keras_vl import cli
from keras_vl.layers import render_text
from keras_vl.models import ViTBackbone


def test_render_writes_the_rendered_png(tmp_path):
    path = tmp_path / "hello.png"
    assert (
        cli.main(
            ["render", "Hello wörld", "-o", str(path), "--image-size", "64"]
        )
        == 0
    )
    written = np.asarray(Image.open(path))
    np.testing.assert_array_equal(
        written, render_text(["Hello wörld"], image_size=64)[0]
    )


def test_convert_writes_a_loadable_preset(tmp_path):
    root = require_fixtures("vit")
    config = json.loads((root / "configs.json").read_text())["models"]
    config = config["map_learn_nc10"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    cli.main(
        [
            "convert",
            "--model",
            "vit",
            "--checkpoint",
            str(root / config["params_file"]),
            "--config",
            str(tmp_path / "config.json"),
            "--output",
            str(tmp_path / "preset"),
        ]
    )
    vit = ViTBackbone.from_preset(str(tmp_path / "preset"))
    images = load_npz(root / "inputs.npz")["images"]
    expected = load_npz(root / config["io_file"])["out"]
    assert np.abs(to_numpy(vit(images)) - expected).max() <= 1e-4


def test_demo_passes_its_arguments_to_run_demo(tmp_path, monkeypatch):
    # The demo itself runs end to end in tests/demo/test_run.py.
    import keras_vl.demo

    calls = []
    monkeypatch.setattr(
        keras_vl.demo, "run_demo", lambda **kwargs: calls.append(kwargs)
    )
    args = ["demo", "--quick", "--output-dir", str(tmp_path), "--seed", "3"]
    assert cli.main(args) == 0
    assert calls == [{"output_dir": str(tmp_path), "quick": True, "seed": 3}]
