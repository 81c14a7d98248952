"""The `keras-vl` command line."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO_ROOT, load_npz, require_fixtures, to_numpy
from PIL import Image

from keras_vl import cli
from keras_vl.layers import render_text
from keras_vl.models import ViTBackbone, convert_cli
from keras_vl.version import __version__


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


def run_python(code: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
    )


def test_help_imports_no_framework_and_logs_nothing():
    done = run_python(
        "import sys\n"
        "from keras_vl.cli import build_parser, main\n"
        "build_parser()\n"
        "heavy = ('keras', 'keras_hub', 'tensorflow', 'jax', 'torch')\n"
        "print(sorted(m for m in heavy if m in sys.modules))\n"
        "main(['zero-shot', '--help'])\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("[]\nusage: keras-vl zero-shot")
    assert "--labels" in done.stdout and done.stderr == ""


def test_top_level_help_and_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    for command in ("demo", "render", "convert", "zero-shot", "--version"):
        assert command in out
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out == f"keras-vl {__version__}\n"


def test_convert_choices_are_the_converters():
    assert cli.BIG_VISION_MODELS == tuple(
        sorted(convert_cli.BIG_VISION_CONVERTERS)
    )


@pytest.fixture
def files(tmp_path):
    (tmp_path / "config.json").write_text('{"variant": "Ti/16"}')
    (tmp_path / "labels.txt").write_text("only one\n")
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "x.png")
    return tmp_path


def convert_argv(checkpoint, config):
    return ["convert", "--model", "vit", "--checkpoint", str(checkpoint)] + [
        "--config",
        str(config),
        "--output",
        "unused",
    ]


USER_ERRORS = {
    "json as checkpoint": (
        lambda d: convert_argv(d / "config.json", d / "config.json"),
        "Checkpoint '{d}/config.json' is not a readable .npz file",
    ),
    "missing checkpoint": (
        lambda d: convert_argv(d / "vit.npz", d / "config.json"),
        "Checkpoint '{d}/vit.npz' does not exist.",
    ),
    "missing config": (
        lambda d: convert_argv(d / "x.png", d / "nothing.json"),
        "`--config` file '{d}/nothing.json' does not exist.",
    ),
    "config not json": (
        lambda d: convert_argv(d / "x.png", d / "x.png"),
        "Config '{d}/x.png' is not a JSON file",
    ),
    "unknown model": (
        lambda d: ["convert", "--model", "bert", "--checkpoint", "c"],
        "argument --model: invalid choice: 'bert'",
    ),
    "render without image extension": (
        lambda d: ["render", "hi", "-o", str(d / "hi.txt")],
        "`--output` '{d}/hi.txt' needs an image extension such as .png",
    ),
    "bad image size": (
        lambda d: ["render", "hi", "-o", "x.png", "--image-size", "-3"],
        "argument --image-size: must be an int >= 1, got '-3' "
        "(see `keras-vl render --help`)",
    ),
    "one label": (
        lambda d: (
            ["zero-shot", "--preset", "p", "--labels", f"@{d}/labels.txt"]
            + [str(d / "x.png")]
        ),
        "`--labels` needs at least two labels, file '{d}/labels.txt' has 1",
    ),
    "empty label": (
        lambda d: ["zero-shot", "--preset", "p", "--labels", "a,,b", "x"],
        "`--labels` has an empty label: 'a,,b'",
    ),
    "repeated label": (
        lambda d: ["zero-shot", "--preset", "p", "--labels", "b,a,b,a", "x"],
        "`--labels` repeats a, b",
    ),
    "bad top-k": (
        lambda d: (
            ["zero-shot", "--preset", "p", "--labels", "a,b"]
            + ["--top-k", "0", "x"]
        ),
        "argument --top-k: must be an int >= 1, got '0'",
    ),
    "missing image": (
        lambda d: ["zero-shot", "--preset", "p", "--labels", "a,b", "x.jpg"],
        "no image file at 'x.jpg'",
    ),
    "unknown preset": (
        lambda d: (
            ["zero-shot", "--preset", "no_such_preset", "--labels"]
            + ["a,b", str(d / "x.png")]
        ),
        "Unknown converted preset 'no_such_preset'. Known: [",
    ),
    "missing preset directory": (
        lambda d: (
            ["zero-shot", "--preset", str(d / "preset"), "--labels"]
            + ["a,b", str(d / "x.png")]
        ),
        "Preset directory '{d}/preset' does not exist.",
    ),
}


@pytest.mark.parametrize("case", sorted(USER_ERRORS))
def test_user_errors_are_one_line_with_status_2(case, files, capsys):
    argv, expected = USER_ERRORS[case]
    assert cli.main(argv(files)) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("keras-vl: error: ") and err.count("\n") == 1
    assert expected.format(d=files) in err


def test_verbose_shows_the_traceback(files, capsys):
    argv = convert_argv(files / "config.json", files / "missing.json")
    assert cli.main(["--verbose", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert "FileNotFoundError" in err
    assert err.endswith(
        f"keras-vl: error: `--config` file '{files}/missing.json' does not "
        "exist.\n"
    )
    # Also accepted after the command.
    assert cli.main([*argv, "--verbose"]) == 2
    assert "Traceback" in capsys.readouterr().err


def test_a_bug_keeps_its_traceback(files, monkeypatch):
    def broken(args):
        raise RuntimeError("a bug, not a user error")

    monkeypatch.setattr(convert_cli, "run_big_vision", broken)
    argv = convert_argv(files / "config.json", files / "config.json")
    with pytest.raises(RuntimeError, match="a bug"):
        cli.main(argv)
