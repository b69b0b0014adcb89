"""The package's layout: the layering contract, deferred imports, the lazy namespace, registries."""
import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import amslib
from amslib.core.config import ConfigError, RunConfig
from amslib.core.registry import ENCODERS, SCHEMES, STRATEGIES, TEACHERS, Registry

ROOT = Path(__file__).resolve().parents[1]
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """import-linter's contracts of pyproject.toml, on the amslib package under `root`."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run([str(LINT_IMPORTS), "--config", str(root / "pyproject.toml"), "--no-cache"],
                          cwd=root, env=env, capture_output=True, text=True, timeout=300)


def test_layers_contract_holds():
    run = lint_imports(ROOT)
    assert run.returncode == 0, run.stdout + run.stderr
    assert "1 kept, 0 broken" in run.stdout


@pytest.mark.parametrize("module, upward", [
    ("core/metrics.py", "from amslib.sim import link  # noqa"),
    ("sim/link.py", "    from amslib.analysis import results  # deferred: an upward import all the same"),
])
def test_an_upward_import_breaks_the_contract(tmp_path, module, upward):
    """A copy of the package with one upward import (at the top, or inside a function) fails."""
    shutil.copytree(ROOT / "amslib", tmp_path / "amslib", ignore=shutil.ignore_patterns("assets", "__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "amslib" / module
    text = target.read_text()
    if upward.startswith(" "):
        text += f"\n\ndef _upward():\n{upward}\n    return results\n"
    else:
        text = text.replace("from __future__ import annotations\n", f"from __future__ import annotations\n{upward}\n", 1)
    target.write_text(text)
    run = lint_imports(tmp_path)
    assert run.returncode != 0
    assert "BROKEN" in run.stdout and "is not allowed to import" in run.stdout


def _function_imports(path: Path) -> list[tuple[int, str]]:
    """(line, source) of every import statement inside a function of `path`."""
    source = path.read_text()
    lines = source.splitlines()
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for inner in ast.walk(node):
                if isinstance(inner, (ast.Import, ast.ImportFrom)):
                    found.append((inner.lineno, lines[inner.lineno - 1]))
    return found


def test_imports_inside_functions_only_defer_slow_ones():
    """No import inside a function unless a comment there says it is deferred, and why."""
    undeclared = [f"{path.relative_to(ROOT)}:{line}: {text.strip()}"
                  for path in sorted((ROOT / "amslib").rglob("*.py"))
                  for line, text in _function_imports(path) if "deferred" not in text]
    assert not undeclared, "\n".join(undeclared)


def test_import_amslib_is_light():
    """`import amslib` loads neither TensorFlow nor pandas; the first use of a name does."""
    code = ("import sys, amslib as ams; heavy = [m for m in ('tensorflow', 'pandas', 'plotly') if m in sys.modules];"
            "c = ams.preset('laptop'); print(heavy, c.fps, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert out.stdout.split() == ["[]", "5.0", "False"]


def test_every_public_name_resolves():
    for name in amslib.__all__:
        assert getattr(amslib, name) is not None, name
    assert amslib.compare_schemes.__module__ == "amslib.analysis.runs"
    assert amslib.walkthrough.__name__ == "amslib.ui.walkthrough"
    with pytest.raises(AttributeError, match="no attribute 'engine_room'"):
        amslib.engine_room  # noqa: B018


@pytest.mark.parametrize("registry", [SCHEMES, STRATEGIES, ENCODERS, TEACHERS])
def test_every_registry_entry_loads(registry):
    for name in registry:
        assert registry.load(name) is not None


def test_registry_is_the_list_config_validates_against(monkeypatch):
    with pytest.raises(ConfigError, match="scheme must be one of none, one_time, ams, jit, remote_tracking"):
        RunConfig(scheme="teleport")
    extended = Registry("scheme", {**{n: SCHEMES._entries[n] for n in SCHEMES}, "teleport": "amslib.sim.schemes.base:Scheme"})
    monkeypatch.setattr("amslib.core.config.SCHEMES", extended)
    assert RunConfig(scheme="teleport").scheme == "teleport"  # one registry line adds a scheme


def test_registry_errors_name_the_choices():
    with pytest.raises(ValueError, match="strategy must be one of gradient_guided, full"):
        STRATEGIES.load("loudest")


def _imports_within(package: Path) -> dict[str, set[str]]:
    """{module: the modules of `package` it imports}, by file stem, counting every import
    statement: at the top, under `if TYPE_CHECKING:`, and inside functions."""
    parts = package.parts
    dotted = ".".join(parts[len(parts) - 1 - parts[::-1].index("amslib"):])  # amslib.data.synthetic
    names = {path.stem for path in package.glob("*.py") if path.stem != "__init__"}
    graph: dict[str, set[str]] = {}
    for name in names:
        found = set()
        for node in ast.walk(ast.parse((package / f"{name}.py").read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                module = node.module if node.level == 0 else f"{dotted}.{node.module}"
                found.add(module)
                found.update(f"{module}.{alias.name}" for alias in node.names)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
        graph[name] = {other for other in names if f"{dotted}.{other}" in found} - {name}
    return graph


def _a_cycle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of `graph` as [a, b, ..., a], or [] when its imports run one way."""
    done: set[str] = set()

    def visit(name: str, path: list[str]) -> list[str]:
        if name in path:
            return path[path.index(name):] + [name]
        if name in done:
            return []
        for other in sorted(graph[name]):
            if cycle := visit(other, [*path, name]):
                return cycle
        done.add(name)
        return []

    for name in sorted(graph):
        if cycle := visit(name, []):
            return cycle
    return []


def test_synthetic_street_modules_import_one_way():
    """No import circle among the modules of data/synthetic, counting annotation-only and
    deferred imports (each is a dependency a reader has to follow)."""
    graph = _imports_within(ROOT / "amslib" / "data" / "synthetic")
    assert {"street", "background", "sprites", "world", "scene"} <= set(graph)
    assert "background" in graph["street"]  # the graph sees the package's imports
    assert _a_cycle(graph) == [], " -> ".join(_a_cycle(graph))


@pytest.mark.parametrize("line", [
    "from amslib.data.synthetic.street import SyntheticStreet",
    "if TYPE_CHECKING:\n    from amslib.data.synthetic.street import SyntheticStreet",
    "def _f():\n    from amslib.data.synthetic import street  # deferred\n    return street",
])
def test_an_import_circle_is_found(tmp_path, line):
    """sprites importing street (which imports sprites) at the top, for annotations only, or
    inside a function is a circle."""
    package = tmp_path / "amslib" / "data" / "synthetic"
    shutil.copytree(ROOT / "amslib" / "data" / "synthetic", package, ignore=shutil.ignore_patterns("__pycache__"))
    with open(package / "sprites.py", "a") as sprites:
        sprites.write(f"\n{line}\n")
    assert _a_cycle(_imports_within(package)) == ["sprites", "street", "sprites"]


MAX_MODULE_LINES = 650  # "one job per file": a module past about 600 lines holds more than one


def test_every_module_is_short():
    """No module of amslib over MAX_MODULE_LINES lines (split it by job, as ui/widgets.py was)."""
    long = {str(path.relative_to(ROOT)): n for path in sorted((ROOT / "amslib").rglob("*.py"))
            if (n := len(path.read_text().splitlines())) > MAX_MODULE_LINES}
    assert not long, f"modules over {MAX_MODULE_LINES} lines: {long}"
