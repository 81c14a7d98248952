"""Every example in README.md runs as written, on tiny sizes.

The Python blocks run in order in one namespace, as a reader pasting them
into one session would run them. Model sizes are shrunk by the textual
substitutions in `TINY`, each of which must still match the README, so the
table cannot go stale silently. Names an example expects the reader to have
(`uint8_images`, `captions`) get tiny values. Released checkpoints are
served from 127.0.0.1, with the fixtures' tiny CLIPPO checkpoint standing
in for every one of them. Shell lines run in-process through the same entry
points, except the few listed in `SHELL_RUN_ELSEWHERE`.
"""

import json
import re
import shlex
import shutil

import numpy as np
import pytest
from conftest import REPO_ROOT, require_fixtures, serve_files
from PIL import Image

from keras_vl.data import shape_vocabulary_proto

README = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
BLOCKS = re.findall(r"^```(python|sh)\n(.*?)^```", README, re.M | re.S)
# Commands quoted in the prose, e.g. `keras-vl render "hi" -o hi.png`.
INLINE_COMMANDS = re.findall(r"`(keras-vl [^`]+)`", README)

# (as written, as run): the README's sizes, and the tiny ones tests use.
TINY = [
    ('"S/16"', '"Ti/16"'),
    ("image_size=224", "image_size=32"),
]

# Shell lines that other tests cover, with where.
SHELL_RUN_ELSEWHERE = {
    "make demo": "tests/demo runs the demo's quick mode",
    "make test": "this suite",
    "KERAS_BACKEND=torch .venv/bin/python my_script.py": "a placeholder",
    "KERAS_BACKEND=tensorflow make demo": "tests/demo, on every backend",
}


def _shrink(code: str) -> str:
    for written, tiny in TINY:
        code = code.replace(written, tiny)
    return code


def test_every_substitution_still_matches():
    for written, _ in TINY:
        assert written in README, f"TINY entry {written!r} matches nothing"


def _shell_lines(code: str) -> list[str]:
    # Joins `\`-continued lines and drops comments.
    joined = code.replace("\\\n", " ")
    lines = [line.split("  #")[0].strip() for line in joined.splitlines()]
    return [line for line in lines if line and not line.startswith("#")]


@pytest.fixture(scope="module")
def session(tmp_path_factory):
    """The README's namespace, run in a scratch directory with released
    checkpoints served from 127.0.0.1."""
    root = require_fixtures("clippo")
    work = tmp_path_factory.mktemp("readme")
    # Stand-ins for the files the shell examples name.
    shutil.copy(root / "params.npz", work / "clippo_b16_yfcc100m.npz")
    shutil.copy(root / "config.json", work / "clippo_config.json")
    rng = np.random.default_rng(0)
    namespace = {
        "uint8_images": rng.integers(0, 256, (4, 64, 64, 3), "uint8"),
        "captions": ["a red circle", "a blue square", "赤い丸", "un carré"],
    }
    # A vocabulary for the LiT example, and a photo for the command line.
    (work / "sentencepiece.model").write_bytes(shape_vocabulary_proto())
    Image.fromarray(namespace["uint8_images"][0]).save(work / "photo.jpg")

    from keras_vl.models.clippo import clippo_presets
    from keras_vl.models.lit import lit_presets

    lit_root = require_fixtures("lit")
    files = {
        "/clippo.npz": (root / "params.npz").read_bytes(),
        "/siglip.npz": (lit_root / "params.npz").read_bytes(),
        "/sentencepiece.model": shape_vocabulary_proto(),
    }
    monkeypatch = pytest.MonkeyPatch()
    with serve_files(files) as (base, _):
        monkeypatch.setenv("KERAS_VL_CACHE", str(work / "cache"))
        clippo = _config(root)
        for name, entry in clippo_presets.backbone_presets.items():
            tiny = {**entry, "url": base + "/clippo.npz", "config": clippo}
            monkeypatch.setitem(clippo_presets.backbone_presets, name, tiny)
        # Every LiT / SigLIP name: the fixtures' tiny SigLIP.
        siglip = {
            "metadata": {"description": "A tiny SigLIP.", "path": "lit"},
            "url": base + "/siglip.npz",
            "files": {"vocabulary": base + "/sentencepiece.model"},
            "source": "big_vision",
            "config": _config(lit_root),
            "text": {"rules": "siglip", "sequence_length": 16},
        }
        for name in lit_presets.backbone_presets:
            monkeypatch.setitem(lit_presets.backbone_presets, name, siglip)
        monkeypatch.chdir(work)
        yield namespace
    monkeypatch.undo()


def _config(root):
    """A fixture checkpoint's big_vision config, at its 64 px."""
    config = json.loads((root / "config.json").read_text())
    return {"model_kwargs": config["model_kwargs"], "image_size": 64}


@pytest.mark.parametrize(
    "index", range(len(BLOCKS)), ids=[f"block{i}" for i in range(len(BLOCKS))]
)
def test_readme_block(index, session):
    language, code = BLOCKS[index]
    if language == "python":
        exec(
            compile(_shrink(code), f"README.md block {index}", "exec"), session
        )
        return
    for line in _shell_lines(code):
        if line in SHELL_RUN_ELSEWHERE:
            continue
        _run_shell(line)


def _run_shell(line: str) -> None:
    argv = shlex.split(line)
    if argv[:2] == ["python", "tools/convert_big_vision.py"]:
        from tools import convert_big_vision

        convert_big_vision.main(argv[2:])
        output = argv[argv.index("--output") + 1]
        from keras_vl.models import ClippoBackbone

        assert ClippoBackbone.from_preset(output).count_params() > 0
        return
    if argv[0] == "keras-vl":
        from keras_vl.cli import main

        assert main(argv[1:]) == 0
        return
    pytest.fail(f"README shell line with no runner: {line!r}")


@pytest.mark.parametrize("line", INLINE_COMMANDS)
def test_readme_inline_command(line, session):
    _run_shell(line)


def test_every_block_was_found():
    # Guards the regular expression: the README has both kinds of block.
    assert {language for language, _ in BLOCKS} == {"python", "sh"}
    assert README.count("```python") == sum(
        language == "python" for language, _ in BLOCKS
    )
