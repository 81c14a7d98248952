"""Runs Python code in a fresh process where TensorFlow cannot be imported,
as on an accelerator host that has only JAX (or torch) and pure-Python
wheels."""

import os
import subprocess
import sys

from conftest import REPO_ROOT

_BLOCKER = """
import importlib.machinery
import sys

class _PathFinderWithoutTensorFlow(importlib.machinery.PathFinder):
    # Finds nothing for TensorFlow, as if it were not installed; the
    # standard path finder it replaces finds everything else.
    @classmethod
    def find_spec(cls, name, path=None, target=None):
        if name.split(".")[0] in ("tensorflow", "tensorflow_text", "tf_keras"):
            return None
        return super().find_spec(name, path, target)

sys.meta_path[:] = [
    _PathFinderWithoutTensorFlow
    if finder is importlib.machinery.PathFinder
    else finder
    for finder in sys.meta_path
]
"""

_CHECK = """
imported = sorted(m for m in sys.modules if m.split(".")[0] == "tensorflow")
print("TENSORFLOW_MODULES", len(imported))
"""


def run_without_tensorflow(
    code: str, timeout: int = 600, env: dict[str, str] | None = None
) -> str:
    """Runs `code` with TensorFlow unimportable; returns its stdout.

    The last line printed is `TENSORFLOW_MODULES <count>`: how many
    TensorFlow modules ended up imported (an import of it fails as if it
    were not installed, which a library may catch, so the count is what
    proves none got in). `env` adds to (or overrides) the environment.
    """
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT), **(env or {})}
    result = subprocess.run(
        [sys.executable, "-c", _BLOCKER + code + _CHECK],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return result.stdout
