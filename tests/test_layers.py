"""The package's floors: every module imports on its own, and nothing reaches
the package root for anything but the compiled core.

The floors themselves (which module may import which) are the import-linter
contract in pyproject.toml, run by ``make test`` (``lint-imports``); these tests
cover what that contract cannot see.
"""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import embspace
import pytest

PACKAGE = Path(embspace.__file__).parent


def _modules() -> list[str]:
    names = []
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        if parts[-1] == "__main__":
            continue
        names.append(".".join(parts))
    return names


MODULES = _modules()


def test_the_module_list_is_complete() -> None:
    # a guard on the discovery itself: the floors' main rooms are all found
    for name in ("embspace.errors", "embspace.device", "embspace.sweeps", "embspace.cli"):
        assert name in MODULES


#: Run in a fresh interpreter: the third-party libraries are imported once, then
#: every embspace module is imported in a forked child of its own (no embspace
#: module is loaded in the parent), so each import starts from an empty
#: ``embspace`` but the test does not pay numpy's import 60 times.
_IMPORT_EACH = """
import importlib, json, os, sys, traceback
for lib in ("numpy", "scipy.sparse", "scipy.linalg", "pandas", "sklearn.base", "matplotlib.figure",
            "tqdm.auto", "textual.app"):
    try:
        importlib.import_module(lib)
    except ImportError:
        pass
assert not [m for m in sys.modules if m.split(".")[0] == "embspace"]
failures = {}
for name in json.loads(sys.argv[1]):
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(read)
        try:
            importlib.import_module(name)
            code = 0
        except BaseException:
            os.write(write, traceback.format_exc()[-2000:].encode())
            code = 1
        os._exit(code)
    os.close(write)
    with os.fdopen(read, "rb") as f:
        message = f.read().decode()
    _, status = os.waitpid(pid, 0)
    if status != 0:
        failures[name] = message or f"exit status {status}"
print(json.dumps(failures))
"""


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_every_module_imports_on_its_own() -> None:
    """Each module imported first, alone: no module relies on another having
    been imported before it (import order, a cycle broken only by luck)."""
    proc = subprocess.run(
        [sys.executable, "-c", _IMPORT_EACH, json.dumps(MODULES)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == {}


def _root_imports(path: Path, module: str) -> list[str]:
    """Names that ``module`` imports from the package root ``embspace`` itself
    (not from a submodule)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = module.split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = package[: len(package) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target == "embspace":
                submodules = {m.split(".")[1] for m in MODULES if m.count(".") >= 1}
                found += [a.name for a in node.names if a.name not in submodules]
        elif isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name == "embspace"]
    return found


#: The top floor (the CLI, the demo, the terminal UI) may use the public facade
#: ``import embspace as es``: everything it reaches is below it.
TOP_FLOOR = ("embspace.cli", "embspace.demo", "embspace.tui")


@pytest.mark.parametrize(
    "module", [m for m in MODULES if m != "embspace" and not m.startswith(TOP_FLOOR)]
)
def test_nothing_but_the_compiled_core_comes_from_the_package_root(module: str) -> None:
    """``from embspace import Sweep`` inside the package would hide an upward
    import from the floors' contract (it sees only the root package)."""
    parts = module.split(".")[1:]
    path = PACKAGE.joinpath(*parts)
    path = path / "__init__.py" if path.is_dir() else path.with_suffix(".py")
    assert set(_root_imports(path, module)) <= {"_core"}


def test_the_root_check_sees_a_root_import(tmp_path: Path) -> None:
    # the checker itself: it must flag an attribute import from the root
    bad = tmp_path / "bad.py"
    bad.write_text("from embspace import Sweep\nfrom .. import _core\n")
    assert _root_imports(bad, "embspace.sweeps.bad") == ["Sweep", "_core"]


def _cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def test_the_cycle_finder_finds_a_cycle() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycles_between_modules() -> None:
    """No module imports itself through others, TYPE_CHECKING imports included.
    Imports of the package root are left out: ``from .. import _core`` reaches
    the compiled module, which the graph cannot see."""
    import grimp

    graph = grimp.build_graph("embspace", exclude_type_checking_imports=False)
    edges = {
        m: {t for t in graph.find_modules_directly_imported_by(m) if t != "embspace"}
        for m in graph.modules
        if m != "embspace"
    }
    assert _cycles(edges) == []
