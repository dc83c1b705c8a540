"""The layer rules, read off the import graph of `src/rairl` (every `import`/`from ... import`, also inside
functions): only `rairl.cli` imports `rairl.commands`; every registered command lives in `rairl.commands`; no two
sub-packages import each other both ways. And the tests mirror the package: each folder under tests/ is named after a
sub-package of `src/rairl` (tests/benchmarks/ tests the scripts in benchmarks/)."""

from __future__ import annotations

import ast
from pathlib import Path

from rairl.cli import COMMANDS

SRC = Path(__file__).resolve().parents[1] / "src"
TESTS = Path(__file__).resolve().parent


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> set[str]:
    """The `rairl...` modules `path` imports (a `from rairl.x import y` counts as `rairl.x.y` and `rairl.x`)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{a.name}" for a in node.names)
    return {name for name in found if name == "rairl" or name.startswith("rairl.")}


def graph() -> dict[str, set[str]]:
    return {module_name(p): imports(p) for p in sorted((SRC / "rairl").rglob("*.py"))}


def subpackage(module: str) -> str | None:
    """`rairl.inference.rerank` → `rairl.inference`; top-level modules (`rairl.cli`) are in none."""
    parts = module.split(".")
    return ".".join(parts[:2]) if len(parts) > 2 or (SRC / Path(*parts) / "__init__.py").is_file() else None


def test_the_graph_is_read() -> None:
    edges = graph()
    assert "rairl.commands.rerank" in edges["rairl.cli"] or "rairl.demo.runs" in edges
    assert "rairl.inference.rerank" in edges["rairl.commands.rerank"]
    assert "rairl.trainers.sft" in edges["rairl.demo.runs"]


def test_only_the_cli_imports_commands() -> None:
    offenders = {
        module: sorted(i for i in imported if i.startswith("rairl.commands"))
        for module, imported in graph().items()
        if module != "rairl.cli" and not module.startswith("rairl.commands")
    }
    assert {m: i for m, i in offenders.items() if i} == {}


def test_every_command_is_in_the_commands_package() -> None:
    modules = {module for module, _ in COMMANDS.values()}
    assert {m for m in modules if not m.startswith("rairl.commands.")} == set()
    assert all((SRC / Path(*m.split("."))).with_suffix(".py").is_file() for m in modules)


def test_no_two_subpackages_import_each_other() -> None:
    edges: dict[str, set[str]] = {}
    for module, imported in graph().items():
        if (a := subpackage(module)) is None:
            continue
        edges.setdefault(a, set()).update(b for i in imported if (b := subpackage(i)) not in (None, a))
    both = sorted((a, b) for a in edges for b in edges[a] if a < b and a in edges.get(b, set()))
    assert both == []


def test_every_test_folder_mirrors_a_subpackage() -> None:
    folders = {p.name for p in TESTS.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))}
    assert folders, "no test folders found"
    subpackages = {p.parent.name for p in (SRC / "rairl").glob("*/__init__.py")}
    strays = sorted(folders - subpackages - {"benchmarks"})
    named = ", ".join(f"tests/{name}/" for name in strays)
    assert not strays, f"{named}: no such sub-package of src/rairl ({', '.join(sorted(subpackages))}); rename or move"
