"""Dependencies point one way: ``dashboard -> core <- realtime``. ``core`` imports neither
``dashboard``, ``realtime``, ``streamlit`` nor ``websockets``, and ``dashboard`` and
``realtime`` never import each other. Read from the source, so an import inside a function
counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FORBIDDEN = {
    "core": {"dashboard", "realtime", "streamlit", "websockets", "streamlit_folium"},
    "dashboard": {"realtime"},
    "realtime": {"dashboard", "streamlit"},
}


def imported_packages(path: Path) -> set[str]:
    """The top-level names a module imports, anywhere in it."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_package_imports_nothing_it_must_not(package):
    """Every module of the package, its migrations included, keeps to the layering."""
    offenders = {}
    for path in sorted((ROOT / package).rglob("*.py")):
        bad = imported_packages(path) & FORBIDDEN[package]
        if bad:
            offenders[str(path.relative_to(ROOT))] = sorted(bad)
    assert offenders == {}


def test_the_check_sees_an_import_inside_a_function(tmp_path):
    """A lazily imported module is an import all the same."""
    module = tmp_path / "lazy.py"
    module.write_text("def f():\n    from realtime.server import IngestServer\n    import streamlit as st\n")
    assert imported_packages(module) == {"realtime", "streamlit"}
