"""The house's walls, read from the source with ``ast``: imports point one way (commands ->
library; the lesson may use the porter, never the reverse), no import cycles, library
modules import at the top, and importing the porter loads no lesson dependency."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT

PKG = ROOT / "torch_rnnsin"
PORTER = ("port", "export", "common")  # torch_rnnsin/<these>/** : the porter and what it uses
HEAVY_FOR_PORTER = ("lightning", "pandas", "matplotlib", "keras", "tensorflow")
ENTRY = ("torch_rnnsin.cli", "torch_rnnsin.__main__")


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> list[tuple[str, int, bool]]:
    """(absolute module imported, line, at the top level of the module) for every import."""
    tree = ast.parse(path.read_text(), str(path))
    name = module_name(path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    top = {id(n) for n in tree.body}
    top |= {id(n) for n in ast.walk(tree) if isinstance(n, ast.Try) for n in n.body}
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(a.name, node.lineno, id(node) in top) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(base + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            # `from . import x` / `from .pkg import mod` may name a module: count both
            found.append((base, node.lineno, id(node) in top))
            found += [(f"{base}.{a.name}", node.lineno, id(node) in top) for a in node.names]
    return found


def sources(*folders: str) -> list[Path]:
    return sorted(p for f in folders for p in (PKG / f).rglob("*.py"))


ALL = sorted(PKG.rglob("*.py"))
MODULES = {module_name(p) for p in ALL}


def test_the_porter_never_imports_the_lesson_the_commands_or_their_dependencies():
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {mod}"
        for p in sources(*PORTER)
        for mod, line, _ in imports(p)
        if mod.startswith(("torch_rnnsin.lesson", "torch_rnnsin.commands"))
        or mod.split(".")[0] in HEAVY_FOR_PORTER
    ]
    assert bad == []


def test_only_the_entry_points_import_the_commands():
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {mod}"
        for p in ALL
        if not module_name(p).startswith(("torch_rnnsin.commands", *ENTRY))
        for mod, line, _ in imports(p)
        if mod.startswith("torch_rnnsin.commands")
    ]
    assert bad == []


def test_library_modules_import_at_the_top():
    """Lazy imports only in commands/ (the porter's port/ is being rewritten: not yet)."""
    bad = [
        f"{p.relative_to(ROOT)}:{line} imports {mod} inside a function"
        for p in sources("lesson", "export", "common")
        for mod, line, top in imports(p)
        if not top
    ]
    assert bad == []


def test_no_import_cycles():
    """Between the package's modules (a package's __init__ aside: importing a.b runs a)."""
    graph = {
        module_name(p): {m for m, _, _ in imports(p) if m in MODULES and m != module_name(p)}
        for p in ALL
    }
    for name in graph:  # `from .lesson import x` reaches lesson/__init__ only: no edge to it
        graph[name] = {m for m in graph[name] if not (PKG / Path(*m.split(".")[1:])).is_dir()}
    seen, cycles = {}, []

    def visit(node: str, path: list[str]) -> None:
        seen[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if seen.get(nxt) == "open":
                cycles.append(" -> ".join([*path[path.index(nxt) :], nxt]))
            elif nxt not in seen:
                visit(nxt, [*path, nxt])
        seen[node] = "done"

    for node in sorted(graph):
        if node not in seen:
            visit(node, [node])
    assert cycles == []


@pytest.mark.parametrize("module", ["torch_rnnsin.port", "torch_rnnsin.port.model"])
def test_importing_the_porter_loads_no_lesson_dependency(module):
    probe = (
        f"import sys, {module}\n"
        "print(sorted({m.split('.')[0] for m in sys.modules}"
        " & {'lightning', 'pandas', 'matplotlib', 'keras', 'tensorflow'}))"
    )
    r = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip() == "[]"


def test_the_ast_reader_sees_what_it_looks_for():
    """The checks above could pass by reading nothing: what they look for is found."""
    found = imports(Path(__file__))
    assert any(m == "subprocess" and top for m, _, top in found)
    assert any(m == "conftest.ROOT" for m, _, _ in found)
    train = imports(PKG / "commands" / "train.py")  # delays the lesson's heavy imports
    assert ("torch_rnnsin.lesson.preflight", False) in {(m, top) for m, _, top in train}
    lesson_imports = {m for p in sources("lesson") for m, _, _ in imports(p)}
    assert "torch_rnnsin.port.io" in lesson_imports  # a relative import, resolved
    assert "torch_rnnsin.common.errors.Refused" in lesson_imports


def test_readme_lists_every_layer_kind():
    """The supported-layer table names every registered Keras class ("MaxPooling1D/2D/3D"
    names three; the op layers Keras records for masks are listed by name too)."""
    import re

    from torch_rnnsin.port.kinds import KINDS

    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("**Supported layers**") : readme.index("**Refused**")]
    names = set(re.findall(r"[A-Z][A-Za-z0-9]+", table))
    for stem, first, more in re.findall(r"([A-Z][A-Za-z]+?)([123]D)((?:/[123]D)+)", table):
        names |= {stem + d for d in [first, *more.strip("/").split("/")]}
    names |= {f"{n}Equal" for n in ("Greater", "Less") if f"{n}(Equal)" in table}
    missing = sorted(set(KINDS) - names)
    assert not missing, missing
