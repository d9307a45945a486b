"""What the anomaly model is built from and what runs in production, read from the source
(an import inside a function counts too): the model is trained on real recordings and the
database only, never on generated tracks, and the evaluation with its cheat generators is
never imported by the worker, the dashboard or the ingest server."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]
OURS = ("core", "dashboard", "realtime")
EVALUATION_ONLY = {"core.anomaly.evaluation", "core.anomaly.vehicle_evaluation", "core.anomaly.cheats",
                   "core.anomaly.heldout_cheats"}


def module_path(name: str) -> Path | None:
    base = ROOT.joinpath(*name.split("."))
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path
    return None


def direct_imports(name: str) -> set[str]:
    """The project's modules that ``name`` imports anywhere in it, with their packages."""
    path = module_path(name)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[:len(parts) - node.level + 1] + ([node.module] if node.module else []))
            else:
                base = node.module or ""
            found.add(base)
            found.update(f"{base}.{alias.name}" for alias in node.names)
    out = set()
    for module in found:
        if module.split(".")[0] not in OURS:
            continue
        parts = module.split(".")
        out.update(".".join(parts[:k]) for k in range(1, len(parts) + 1) if module_path(".".join(parts[:k])))
    return out


def closure(roots) -> set[str]:
    """Every project module that importing ``roots`` can load."""
    seen, todo = set(), list(roots)
    while todo:
        name = todo.pop()
        if name in seen or module_path(name) is None:
            continue
        seen.add(name)
        todo.extend(direct_imports(name) - seen)
    return seen


def modules_under(package: str) -> list[str]:
    return [".".join(p.relative_to(ROOT).with_suffix("").parts).removesuffix(".__init__")
            for p in sorted((ROOT / package).rglob("*.py"))]


@pytest.mark.parametrize("module", ["core.anomaly.training", "core.anomaly.registry"])
def test_the_model_is_built_without_generated_tracks_or_the_evaluation(module):
    loaded = closure([module])
    assert not {m for m in loaded if m == "core.synthetic" or m.startswith("core.synthetic.")}
    assert not loaded & EVALUATION_ONLY


@pytest.mark.parametrize("package", ["core/jobs", "dashboard", "realtime"])
def test_the_worker_dashboard_and_ingest_server_never_load_the_evaluation(package):
    assert not closure(modules_under(package)) & EVALUATION_ONLY


def test_the_check_follows_imports_inside_functions():
    assert "core.anomaly.evaluation" in closure(["core.cli.anomaly"])
