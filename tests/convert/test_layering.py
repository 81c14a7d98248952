"""`keras_vl.convert` holds format readers only: it imports no model."""

import ast
from pathlib import Path

import keras_vl.convert

FORBIDDEN = ("keras_vl.models", "keras_vl.layers")


def imported_modules(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.append(node.module)
    return names


def test_convert_imports_no_model_or_layer():
    folder = Path(keras_vl.convert.__file__).parent
    files = sorted(folder.glob("*.py"))
    assert len(files) >= 4
    offending = {
        path.name: name
        for path in files
        for name in imported_modules(path)
        if name.startswith(FORBIDDEN)
    }
    assert offending == {}
