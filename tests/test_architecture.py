"""The import layering of ARCHITECTURE.md holds: the import-linter contracts
in pyproject.toml pass, and no two keras_vl modules import each other, even
through a chain or lazily inside a function."""

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO_ROOT

PACKAGE = REPO_ROOT / "keras_vl"


def test_import_linter_contracts_pass():
    lint_imports = Path(sys.executable).with_name("lint-imports")
    if not lint_imports.exists():
        lint_imports = shutil.which("lint-imports")
    assert lint_imports, "import-linter is part of the dev extra"
    result = subprocess.run(
        [str(lint_imports), "--no-logo", "--no-cache"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr
    assert "0 broken" in result.stdout


def _module_name(path: Path) -> str:
    parts = path.relative_to(REPO_ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _imported_modules(path: Path, modules: set[str]) -> set[str]:
    """keras_vl modules imported anywhere in `path` (functions included)."""
    name = _module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            targets = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            # `from package import module` depends on the module alone;
            # `from module import name` on the module.
            targets = [
                f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base
                for a in node.names
            ]
        else:
            continue
        for target in targets:
            # The longest keras_vl module that the import names.
            while target and target not in modules:
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph() -> dict[str, set[str]]:
    paths = sorted(PACKAGE.rglob("*.py"))
    modules = {_module_name(path) for path in paths}
    return {_module_name(p): _imported_modules(p, modules) for p in paths}


def import_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected groups of more than one module (Tarjan).

    A package's `__init__` importing its own submodules is not a cycle;
    a submodule importing its package's `__init__` back makes one.
    """
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in graph.get(node, ()):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            if len(group) > 1:
                cycles.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return cycles


def test_graph_sees_lazy_imports():
    graph = import_graph()
    assert (
        "keras_vl.layers.transformer_encoder_block"
        in graph["keras_vl.layers.transformer_encoder"]
    )
    assert import_cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [
        ["a", "b", "c"]
    ]


def test_no_import_cycles():
    assert import_cycles(import_graph()) == []


def test_no_module_imports_a_private_name_of_another_package():
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        own = _module_name(path).rpartition(".")[0]
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if not isinstance(node, ast.ImportFrom) or node.level:
                continue
            source = node.module or ""
            if not source.startswith("keras_vl"):
                continue
            source_package = source.rpartition(".")[0]
            for alias in node.names:
                private = alias.name.startswith("_") and not (
                    alias.name.startswith("__") and alias.name.endswith("__")
                )
                if private and source_package != own:
                    offenders.append(f"{path.name}: {source}.{alias.name}")
    assert offenders == []


@pytest.mark.parametrize(
    "module", ["keras_vl.layers", "keras_vl.losses", "keras_vl.convert"]
)
def test_lower_layers_know_no_models(module):
    graph = import_graph()
    below = {m: t for m, t in graph.items() if m.startswith(module)}
    assert below, module
    upward = {
        m: sorted(t for t in targets if t.startswith("keras_vl.models"))
        for m, targets in below.items()
    }
    assert {m: t for m, t in upward.items() if t} == {}
