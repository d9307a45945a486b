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


# Inside core: what each package may import from core (docs/architecture.md draws the same
# table). A module's package is its first name under core/ (core/units.py is "units").
CORE_MAY_IMPORT = {
    "config": set(),
    "units": set(),
    "storage": {"config"},
    "text": set(),
    "tracks": {"config", "text", "units"},
    "accounts": {"storage", "text"},
    "activities": {"accounts", "config", "storage", "tracks", "text", "units"},
    "social": {"accounts", "activities", "storage", "text", "tracks"},
    "devices": {"accounts", "activities", "storage", "tracks", "text", "units", "config"},
    "anomaly": {"accounts", "activities", "devices", "storage", "tracks", "text", "units", "config"},
    "routes": {"activities", "social", "storage", "tracks", "units"},
    "recommend": {"accounts", "activities", "routes", "social", "storage", "text", "units"},
    "synthetic": {"accounts", "activities", "challenges", "social", "storage", "tracks"},
    "challenges": {"accounts", "activities", "anomaly", "config", "routes", "social", "storage", "units"},
    # Training on Spark: the anomaly features and the recommender's factors, above both.
    "spark": {"activities", "anomaly", "config", "recommend", "storage", "tracks"},
    "jobs": {"accounts", "activities", "anomaly", "challenges", "config", "devices", "recommend", "routes", "social", "spark", "storage", "tracks",
             "text", "units"},
    "cli": {"accounts", "activities", "anomaly", "challenges", "config", "devices", "jobs", "recommend", "routes", "social", "spark", "storage",
            "synthetic", "tracks", "text", "units"},
}
# The one module allowed above its package's floor: reads by viewer are filtered where the
# points are read, so the points module knows the tables and who may see what. The
# migrations' environment imports every table so that Alembic sees the whole schema.
CORE_EXCEPTIONS = {
    "core/storage/points.py": {"activities", "accounts", "social", "tracks"},
    "core/storage/tiers.py": {"activities"},
    "core/storage/point_tiers.py": {"activities"},
    "core/storage/partitions.py": {"activities"},
    "core/storage/migrations/env.py": {"accounts", "activities", "anomaly", "challenges", "devices", "recommend", "routes",
                                       "social"},
}
# Modules that exist for the command line and the tests only, and what may import them.
OFFLINE_ONLY = {"core.anomaly.evaluation": {"core/cli/anomaly.py", "core/anomaly/evaluation.py"},
                "core.anomaly.cheats": {"core/anomaly/evaluation.py", "core/anomaly/cheats.py"},
                "core.anomaly.heldout_cheats": {"core/anomaly/evaluation.py"},
                # The generated population evaluates suggestions; it never serves them.
                "core.recommend.population": {"core/recommend/evaluation.py", "core/recommend/population.py"},
                # The drop-off model's evaluation runs from the command line on generated populations.
                "core.challenges.churn_evaluation": {"core/cli/engagement.py", "core/challenges/churn_evaluation.py"},
                # The attacks on privacy zones run from their bench and the tests.
                "core.social.zone_attack": {"core/social/zone_attack.py"}}


def core_imports(path: Path) -> set[str]:
    """The ``core`` packages a module imports (``core.units`` counts as "units")."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        modules = []
        if isinstance(node, ast.Import):
            modules = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            modules = [node.module] if node.module != "core" else [f"core.{a.name}" for a in node.names]
        names.update(m.split(".")[1] for m in modules if m.startswith("core.") and m.count(".") >= 1)
    return names


def _package(path: Path) -> str:
    return path.relative_to(ROOT / "core").parts[0].removesuffix(".py")


def test_core_packages_import_only_the_floors_below():
    offenders = {}
    for path in sorted((ROOT / "core").rglob("*.py")):
        rel = str(path.relative_to(ROOT))
        package = _package(path)
        if package in ("__init__", "__main__") or "versions" in path.parts:
            continue
        allowed = CORE_MAY_IMPORT[package] | CORE_EXCEPTIONS.get(rel, set()) | {package}
        bad = core_imports(path) - allowed
        if bad:
            offenders[rel] = sorted(bad)
    assert offenders == {}


def test_evaluation_and_generated_tracks_stay_out_of_production():
    """The evaluation is imported only by its command; production training (anomaly) never
    imports the generated tracks of core.synthetic."""
    offenders = []
    for path in sorted(ROOT.glob("*/**/*.py")):
        rel = str(path.relative_to(ROOT))
        if rel.startswith(("tests/", "bench/", ".venv/")) or "static" in path.parts:
            continue
        text = path.read_text(encoding="utf-8")
        for module, users in OFFLINE_ONLY.items():
            # A package's own modules name it (core/anomaly/heldout_cheats/ is a package).
            if module in text and rel not in users and not rel.startswith(module.replace(".", "/") + "/"):
                offenders.append((rel, module))
        offline = ("core/anomaly/evaluation.py", "core/anomaly/cheats.py", "core/anomaly/heldout_cheats/")
        if rel.startswith("core/anomaly/") and not rel.startswith(offline) and "synthetic" in core_imports(path):
            offenders.append((rel, "core.synthetic"))
    assert offenders == []


def test_the_core_check_sees_a_package_imported_from_core(tmp_path):
    module = tmp_path / "m.py"
    module.write_text("from core import units\nimport core.storage.points\nfrom core.tracks.geo import haversine\n")
    assert core_imports(module) == {"units", "storage", "tracks"}
