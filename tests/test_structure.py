"""The package's shape, checked on its source: no import cycle (function-local imports
included), the one-way flow (the engine, the diagnosis and the renderers never import a front
end, pytest, torch or wandb), modules a reader can hold in mind, and the engine's front door."""

from __future__ import annotations

import ast
import subprocess
import sys
from graphlib import CycleError, TopologicalSorter
from pathlib import Path

import pytest

PACKAGE = Path(__file__).parents[1] / "pytest_spawnhang"
MAX_LINES = 300
# Packages that must stay independent of the front ends and of what they watch.
CORE = ("pytest_spawnhang.engine", "pytest_spawnhang.diagnosis", "pytest_spawnhang.render",
        "pytest_spawnhang.model", "pytest_spawnhang.values", "pytest_spawnhang.vocabulary")
FORBIDDEN_IN_CORE = ("pytest", "_pytest", "torch", "wandb", "pytest_spawnhang.plugin",
                     "pytest_spawnhang.cli")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, anywhere in it (function bodies, TYPE_CHECKING)."""
    name = module_name(path)
    package = name.split(".") if path.name == "__init__.py" else name.split(".")[:-1]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *([node.module] if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


MODULES = {module_name(p): p for p in PACKAGE.rglob("*.py")}


def test_no_import_cycle() -> None:
    graph = {name: {i for i in imports(path) if i in MODULES and i != name}
             for name, path in MODULES.items()}
    try:
        tuple(TopologicalSorter(graph).static_order())
    except CycleError as exc:
        pytest.fail(f"import cycle: {' -> '.join(exc.args[1])}")


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith(CORE)))
def test_core_imports_no_front_end(name: str) -> None:
    bad = {i for i in imports(MODULES[name])
           if any(i == f or i.startswith(f + ".") for f in FORBIDDEN_IN_CORE)}
    assert not bad, f"{name} imports {sorted(bad)}"


def test_front_ends_use_the_engine_through_its_front_door() -> None:
    for name, path in MODULES.items():
        if name.startswith(("pytest_spawnhang.plugin", "pytest_spawnhang.cli")):
            inner = {i for i in imports(path) if i.startswith("pytest_spawnhang.engine.")
                     and i.rsplit(".", 1)[0] != "pytest_spawnhang.engine"}
            assert not inner, f"{name} reaches past the engine's front door: {sorted(inner)}"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_module_is_short(name: str) -> None:
    lines = len(MODULES[name].read_text().splitlines())
    assert lines <= MAX_LINES, f"{name} has {lines} lines"


def test_front_door_names_load() -> None:
    """Every name the engine's front door promises is there, each from the module named its
    home, in a fresh interpreter (so a lazy name that points nowhere fails here, not in use)."""
    code = ("import pytest_spawnhang.engine as e, sys; "
            "assert 'psutil' not in sys.modules, 'the front door alone imported psutil'; "
            "assert sorted(e.__all__) == sorted(e._HOMES); "
            "[getattr(e, n) for n in e.__all__]; print(len(e.__all__))")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
