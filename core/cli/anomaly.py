"""Anomaly detection: score files, train, evaluate."""

from __future__ import annotations

import json
import sys

from core.activities.tables import SPORTS
from core.cli.admin import open_sessions
from core.cli.tracks import read_tracks
from core.config import load_settings


def _database_sessions():
    """A sessionmaker for the configured database, or None when it holds nothing yet."""
    from pathlib import Path

    settings = load_settings()
    url = settings.database_url
    if url.startswith("sqlite:///") and not Path(url[len("sqlite:///"):]).exists():
        return None
    try:
        return open_sessions()
    except Exception as exc:  # noqa: BLE001 - scoring files works without a database
        print(f"database unavailable ({exc.__class__.__name__}); scoring without it", file=sys.stderr)
        return None


def cmd_anomaly_score(args) -> int:
    """Score files on their own against the population model and the rules."""
    from core.anomaly.calibration import threshold
    from core.anomaly.detector import assess
    from core.anomaly.registry import ensure_model

    settings = load_settings()
    model = ensure_model(settings, _database_sessions())
    limit = threshold(settings)
    failed = 0
    for name, track in read_tracks(args.files):
        if track is None:
            failed += 1
            continue
        sport = args.sport or (track.sport if track.sport in SPORTS else None)
        if sport is None:
            failed += 1
            print(json.dumps({"file": name, "error": f"the file's sport is {track.sport!r}; "
                                                     "say --sport run or --sport ride"}), flush=True)
            continue
        verdict = assess(track, sport, model, threshold=limit).verdict
        print(json.dumps({"file": name, "sport": sport, "score": round(verdict.score, 4),
                          "flagged": verdict.flagged, "reasons": verdict.reasons}), flush=True)
    return 1 if failed else 0


def cmd_anomaly_train(_args) -> int:
    from core.anomaly.registry import train
    from core.spark.features import spark_rows

    settings = load_settings()
    model = train(settings, _database_sessions(), say=print, database_rows=spark_rows(settings))
    print(json.dumps(model.meta["validation"]))
    return 0


def cmd_anomaly_evaluate(args) -> int:
    from core.anomaly.evaluation import FAMILIES, print_report, run

    shared = load_settings().shared_tracks_dir
    if shared is None:
        print("the evaluation is built from the real recordings in ../shared/data/tracks "
              "(or TRACKER_SHARED_TRACKS); none found", file=sys.stderr)
        return 2
    report = run(shared, folds=args.folds, families=tuple(args.family or FAMILIES),
                 progress=lambda k, n: print(f"fold {k}/{n} scored", file=sys.stderr, flush=True))
    if args.json:
        print(json.dumps({"tables": report["tables"], "limits_mps": report["limits"],
                          "vehicle_model": report["vehicle"]}, indent=2))
    else:
        print_report(report)
    return 0


def add_commands(sub) -> None:
    p = sub.add_parser("anomaly", help="anomaly detection: score files, train the model, evaluate")
    anomaly = p.add_subparsers(dest="anomaly_command", required=True)
    q = anomaly.add_parser("score", help="score GPX, TCX or FIT files; one JSON line per file")
    q.add_argument("files", nargs="+")
    q.add_argument("--sport", choices=SPORTS, help="judge as this sport (default: the file's)")
    q.set_defaults(func=cmd_anomaly_score)
    q = anomaly.add_parser("train", help="retrain the population model now")
    q.set_defaults(func=cmd_anomaly_train)
    q = anomaly.add_parser("evaluate", help="print precision, recall and F1 on the labelled evaluation set")
    q.add_argument("--folds", type=int, default=5)
    q.add_argument("--json", action="store_true", help="print the table as JSON")
    q.add_argument("--family", action="append", choices=("development", "held-out"),
                   help="only this family of cheats (repeatable; default both)")
    q.set_defaults(func=cmd_anomaly_evaluate)
