"""Backend-specific code lives in `keras_vl.distribute` only, and the bottom
layers import nothing above them (checked on the source, statically)."""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[2] / "keras_vl"
BACKEND_MODULES = {"jax", "jaxlib", "tensorflow", "torch"}
# Layers that must stay free of backend branches, and the bottom layers.
BACKEND_FREE = ["layers", "utils"]
BOTTOM = ["utils", "distribute"]
ABOVE_BOTTOM = {
    "layers",
    "losses",
    "models",
    "evaluation",
    "data",
    "convert",
    "cli",
    "demo",
}


def _sources(*packages):
    files = [p for pkg in packages for p in (PACKAGE / pkg).rglob("*.py")]
    assert files, packages
    return sorted(files)


def _imported_modules(tree):
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield node.lineno, alias.name
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            yield node.lineno, node.module or ""
            for alias in node.names:
                yield node.lineno, f"{node.module}.{alias.name}"


def _backend_queries(tree):
    """Lines calling `keras.backend.backend()` / `keras.config.backend()`."""
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr == "backend"
        ):
            yield node.lineno


@pytest.mark.parametrize(
    "path", _sources(*BACKEND_FREE), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_no_backend_branches_outside_distribute(path):
    tree = ast.parse(path.read_text("utf-8"))
    imports = [
        (line, name)
        for line, name in _imported_modules(tree)
        if name.split(".")[0] in BACKEND_MODULES
    ]
    assert imports == []
    assert list(_backend_queries(tree)) == []


@pytest.mark.parametrize(
    "path", _sources(*BOTTOM), ids=lambda p: str(p.relative_to(PACKAGE))
)
def test_bottom_layers_import_nothing_above_them(path):
    tree = ast.parse(path.read_text("utf-8"))
    upward = [
        (line, name)
        for line, name in _imported_modules(tree)
        if name.startswith("keras_vl.") and name.split(".")[1] in ABOVE_BOTTOM
    ]
    assert upward == []


def test_the_checks_see_what_they_look_for():
    # Guards the two checks above against silently matching nothing.
    tree = ast.parse(
        "import torch\n"
        "from jax import numpy\n"
        "from keras_vl.layers import TextRenderer\n"
        "def f():\n"
        "    import tensorflow as tf\n"
        "    return keras.backend.backend() == 'jax'\n"
    )
    names = [name for _, name in _imported_modules(tree)]
    assert names == [
        "torch",
        "jax",
        "jax.numpy",
        "keras_vl.layers",
        "keras_vl.layers.TextRenderer",
        "tensorflow",
    ]
    assert list(_backend_queries(tree)) == [6]
