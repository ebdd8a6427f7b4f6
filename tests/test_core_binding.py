"""The compiled extension ``embspace._core`` against its stub and its error mapping.

The stub checks read ``_core.pyi`` with :mod:`ast` and compare it with the
imported module by :mod:`inspect` (independent of mypy's stubtest, which the
Makefile's ``lint`` runs too). The error checks give each core error kind bad
input through a real ``_core`` function and compare the class and the whole
message with what the input makes it say.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from embspace import _core, errors

STUB = Path(_core.__file__).with_name("_core.pyi")


def _stub() -> ast.Module:
    return ast.parse(STUB.read_text(encoding="utf-8"), filename=str(STUB))


def _stub_parameters(fn: ast.FunctionDef) -> list[tuple[str, Any, Any]]:
    """(name, kind, default) of each parameter of a stub function, in order."""
    a = fn.args
    empty = inspect.Parameter.empty
    positional = [(p, inspect.Parameter.POSITIONAL_ONLY) for p in a.posonlyargs]
    positional += [(p, inspect.Parameter.POSITIONAL_OR_KEYWORD) for p in a.args]
    defaults = [empty] * (len(positional) - len(a.defaults)) + [
        ast.literal_eval(d) for d in a.defaults
    ]
    out = [(p.arg, kind, d) for (p, kind), d in zip(positional, defaults, strict=True)]
    if a.vararg is not None:
        out.append((a.vararg.arg, inspect.Parameter.VAR_POSITIONAL, empty))
    for p, d in zip(a.kwonlyargs, a.kw_defaults, strict=True):
        default = empty if d is None else ast.literal_eval(d)
        out.append((p.arg, inspect.Parameter.KEYWORD_ONLY, default))
    if a.kwarg is not None:
        out.append((a.kwarg.arg, inspect.Parameter.VAR_KEYWORD, empty))
    return out


def _runtime_parameters(fn: Any) -> list[tuple[str, Any, Any]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(fn).parameters.values()]


def _stub_names() -> dict[str, ast.stmt]:
    """Every name the stub declares, with its statement; fails on any other statement."""
    names: dict[str, ast.stmt] = {}
    for node in _stub().body:
        if isinstance(node, ast.FunctionDef | ast.ClassDef):
            names[node.name] = node
        elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
            names[node.target.id] = node
        elif isinstance(node, ast.Assign) and [ast.unparse(t) for t in node.targets] == ["__all__"]:
            names["__all__"] = node
        else:
            assert isinstance(node, ast.Import | ast.ImportFrom) or (
                isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant)
            ), f"the stub test does not know {ast.unparse(node)!r}"
    return names


def test_every_function_of_the_stub_exists_with_its_parameters():
    functions = [n for n in _stub().body if isinstance(n, ast.FunctionDef)]
    assert {fn.name for fn in functions} == {
        n
        for n in _core.__all__
        if callable(getattr(_core, n)) and not isinstance(getattr(_core, n), type)
    }
    for fn in functions:
        runtime = getattr(_core, fn.name, None)
        assert callable(runtime), fn.name
        got, want = _runtime_parameters(runtime), _stub_parameters(fn)
        if not any(ast.unparse(d) == "overload" for d in fn.decorator_list):
            assert got == want, fn.name
            continue
        # an overload narrows a parameter's type, so it may drop its default
        assert [(n, k) for n, k, _ in got] == [(n, k) for n, k, _ in want], fn.name
        for (name, _, default), (_, _, stub_default) in zip(got, want, strict=True):
            assert stub_default in (default, inspect.Parameter.empty), (fn.name, name)
    overloaded = [fn.name for fn in functions if fn.decorator_list]
    assert all(overloaded.count(name) >= 2 for name in overloaded)


def test_every_class_of_the_stub_exists_with_its_methods_and_properties():
    classes = [n for n in _stub_names().values() if isinstance(n, ast.ClassDef)]
    assert {c.name for c in classes} == {
        n for n in _core.__all__ if isinstance(getattr(_core, n), type)
    }
    for cls in classes:
        runtime = getattr(_core, cls.name)
        members = [n for n in cls.body if isinstance(n, ast.FunctionDef)]
        public = {n for n in vars(runtime) if not n.startswith("_")}
        assert {m.name for m in members} - {"__new__"} == public, cls.name
        for m in members:
            where = f"{cls.name}.{m.name}"
            if any(ast.unparse(d) == "property" for d in m.decorator_list):
                assert inspect.isgetsetdescriptor(vars(runtime)[m.name]), where
                continue
            # the constructor's signature is the class's; methods drop self (cls)
            target = runtime if m.name == "__new__" else getattr(runtime, m.name)
            params = _runtime_parameters(target)
            if m.name != "__new__":
                params = params[1:]
            assert params == _stub_parameters(m)[1:], where


def test_every_annotated_name_of_the_stub_has_its_type():
    annotated = [n for n in _stub_names().values() if isinstance(n, ast.AnnAssign)]
    assert [ast.unparse(n) for n in annotated] == ["__version__: str"]
    for node in annotated:
        assert isinstance(node.annotation, ast.Name) and isinstance(node.target, ast.Name)
        expected = getattr(builtins, node.annotation.id)
        assert isinstance(getattr(_core, node.target.id), expected), node.target.id


def test_the_stub_and_the_module_declare_the_same_names():
    names = _stub_names()
    public = {n for n in dir(_core) if not n.startswith("_")} | {"__version__"}
    assert set(names) - {"__all__"} == public
    all_node = names["__all__"]
    assert isinstance(all_node, ast.Assign)
    stub_all = ast.literal_eval(all_node.value)
    assert sorted(stub_all) == sorted(_core.__all__) == sorted(public)


def test_the_stub_test_sees_a_wrong_default():
    """The comparison itself can fail: a stub default that differs is caught."""
    fn = next(n for n in _stub().body if isinstance(n, ast.FunctionDef) and n.name == "knn")
    fn.args.defaults[0] = ast.Constant("euclidean")  # metric = "cosine" at run time
    assert _runtime_parameters(_core.knn) != _stub_parameters(fn)


# --- every core error kind, raised through the binding -----------------------


def _i64(*v):
    return np.asarray(v, dtype=np.int64)


def _f32(*v):
    return np.asarray(v, dtype=np.float32)


def _raise(call) -> BaseException:
    with pytest.raises(errors.EmbspaceError) as info:
        call()
    return info.value


CASES = [
    pytest.param(
        lambda: _core.knn(np.eye(3, dtype=np.float32), 1, "nope"),
        errors.InvalidParameterError,
        'unknown metric "nope": expected one of cosine, euclidean, dot',
        id="InvalidParameter",
    ),
    pytest.param(
        # 3 rows: each query has 2 other rows, so k = 3 is one too many
        lambda: _core.knn(np.eye(3, dtype=np.float32), 3),
        errors.InvalidParameterError,
        "k = 3 is larger than the 2 other rows (n = 3); k must lie in [1, n - 1]",
        id="InvalidParameter-k",
    ),
    pytest.param(
        lambda: _core.csr_from_coo(2, 2, _i64(0, 1), _i64(0), _f32(1, 1)),
        errors.ShapeMismatchError,
        "rows, cols and values must have the same length (got 2, 1, 2)",
        id="ShapeMismatch",
    ),
    pytest.param(
        # a column slice is not C-contiguous: refused by the binding, not copied
        lambda: _core.wals_gramian(np.ones((4, 3), dtype=np.float32)[:, :2]),
        errors.ShapeMismatchError,
        "factors must be a C-contiguous 2-D array",
        id="ShapeMismatch-contiguity",
    ),
    pytest.param(
        lambda: _core.csr_from_coo(2, 2, _i64(0, 1), _i64(0, 1), _f32(1, np.nan)),
        errors.NonFiniteError,
        "value NaN at position 1 (row 1, column 1) is not finite",
        id="NonFinite",
    ),
    pytest.param(
        lambda: _core.csr_from_coo(2, 2, _i64(1, 1), _i64(0, 0), _f32(1, 2)),
        errors.DuplicateEntryError,
        "duplicate entry (row 1, column 0) at input positions 0 and 1",
        id="DuplicateEntry",
    ),
    pytest.param(
        lambda: _core.csr_from_coo(2, 2, _i64(0, 2), _i64(0, 0), _f32(1, 2)),
        errors.IndexOutOfRangeError,
        "row index 2 at position 1 is outside [0, 2)",
        id="IndexOutOfRange",
    ),
    pytest.param(
        lambda: _core.knn(np.eye(3, dtype=np.float32), 1, queries=_i64(0, 3)),
        errors.IndexOutOfRangeError,
        "query index 3 at position 1 is outside [0, 3)",
        id="IndexOutOfRange-query",
    ),
    pytest.param(
        # One rating (row 0, column 0), fixed row v = (1, 2), no unobserved
        # weight, no regularization: the normal matrix is c v v^T = c [[1, 2], [2, 4]],
        # of rank 1. Cholesky: pivot 0 is c > 0, pivot 1 is 4c - (2 sqrt c)^2 = 0.
        lambda: _core.wals_half_sweep(
            _i64(0, 1),
            np.asarray([0], dtype=np.int32),
            _f32(3),
            2,
            np.asarray([[1, 2], [3, 5]], dtype=np.float32),
            np.zeros((1, 2), dtype=np.float32),
            unobserved_weight=0.0,
            regularization=0.0,
        ),
        errors.NumericalError,
        "the normal equations of row 0 (1 ratings) are singular at pivot 1: "
        "use regularization > 0 (or unobserved_weight > 0)",
        id="Numerical",
    ),
]


@pytest.mark.parametrize(("call", "cls", "message"), CASES)
def test_each_core_error_raises_its_class_with_its_message(call, cls, message):
    err = _raise(call)
    assert type(err) is cls
    assert err.args == (message,)
    assert str(err) == message


def test_every_core_error_kind_is_exercised():
    """One case per variant of ``embspace_core::Error`` (rust/core/src/error.rs)."""
    source = (Path(__file__).parents[1] / "rust" / "core" / "src" / "error.rs").read_text()
    body = source[source.index("pub enum Error {") : source.index("\n}\n")]
    lines = [line.strip() for line in body.splitlines()[1:]]
    variants = {line.split("(")[0] for line in lines if line and line[0] not in "/#"}
    assert len(variants) == 6
    assert {c.id.split("-")[0] for c in CASES} == variants
    assert {c.values[1].__name__ for c in CASES} == {f"{v}Error" for v in variants}


def test_a_missing_error_class_makes_the_import_fail_naming_it():
    """``embspace.errors`` without ``NumericalError``: importing the extension
    is an ImportError naming the class, not a silent fallback."""
    package_parent = str(Path(_core.__file__).parents[1])
    errors_py = str(Path(errors.__file__))
    code = textwrap.dedent(
        f"""
        import importlib.util, sys
        spec = importlib.util.spec_from_file_location("embspace.errors", {errors_py!r})
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        del module.NumericalError
        sys.modules["embspace.errors"] = module
        try:
            import embspace
        except ImportError as e:
            print(type(e).__name__, "|", e, "|", type(e.__cause__).__name__)
            print("_core imported:", "embspace._core" in sys.modules)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONPATH": package_parent},
    ).stdout.splitlines()
    assert out == [
        "ImportError | embspace._core needs the exception class "
        "embspace.errors.NumericalError | AttributeError",
        "_core imported: False",
    ]


def _elf_symbols(path: Path) -> set[str]:
    """The names in the ``.symtab`` of a little-endian ELF64 file (empty when
    it has none, as after ``strip``)."""
    data = path.read_bytes()
    assert data[:4] == b"\x7fELF" and data[4] == 2 and data[5] == 1, "a little-endian ELF64"
    (shoff,) = struct.unpack_from("<Q", data, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", data, 0x3A)
    sections = [
        struct.unpack_from("<IIQQQQIIQQ", data, shoff + i * shentsize) for i in range(shnum)
    ]
    names: set[str] = set()
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind != 2:  # SHT_SYMTAB
            continue
        strtab_offset = sections[link][4]
        for at in range(offset, offset + size, entsize):
            (name,) = struct.unpack_from("<I", data, at)
            end = data.index(b"\0", strtab_offset + name)
            names.add(data[strtab_offset + name : end].decode("ascii", "replace"))
    return names


@pytest.mark.skipif(
    not sys.platform.startswith("linux") or os.uname().machine != "x86_64",
    reason="reads the extension as an x86-64 ELF file",
)
def test_the_extension_calls_no_software_fma():
    """A ``mul_add`` built without the FMA target feature is a call to the
    software ``fma`` / ``fmaf`` of compiler-builtins (tens of cycles each):
    a kernel function the compiler left out of line from ``chunk_avx2``
    made the AVX2 half-sweeps 7 to 26 times slower than they are now,
    and slower than the portable ones. The linker keeps those functions
    only when something calls them, so their absence from the symbol table
    says that no code of the extension does."""
    names = _elf_symbols(Path(_core.__file__))
    # the check needs the full symbol table, not only the dynamic one
    assert any("embspace_core" in n for n in names), "the extension's .symtab was stripped"
    soft = sorted(n for n in names if n in ("fma", "fmaf") or "fma_with_fma" in n)
    assert soft == []
