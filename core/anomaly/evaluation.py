"""The labelled evaluation: real recordings, clean and with realistic cheats injected. Only the
``python -m core anomaly evaluate`` command and the tests import it, never the worker, the
dashboard or the ingest server.

Clean: every outdoor run and ride with GPS in ``../shared/data/tracks``. Cheats come in two
families made from those same recordings (so they carry real GPS noise, real sampling and
real terrain), each by its own code and its own parameter ranges:

- ``development`` (``core.anomaly.cheats``): what the detector was developed against;
- ``held-out`` (``core.anomaly.heldout_cheats``): written apart from it; no number in the
  detector is chosen by looking at it. Its table is the one to believe.

Both make the same kinds (see ``KINDS``): a stretch driven at vehicle speed, a car in
stop-and-go town traffic inside a ride, a lift hidden in a recording gap of a run, the
recording sped up, a ride uploaded as a run, spoofed jumps, a motor up the climbs, and
another athlete's recording re-uploaded. ``real_vehicle`` adds the corpus's own car drive
(as a run and as a ride) and a run that ends in a car (``training.REAL_POSITIVES``).

The learned vehicle model (``core.anomaly.vehicle``) is also reported alone: on the samples
above, and on the real drives in ``../shared/data/vehicles`` against the recordings, in
grouped folds (a drive or recording wholly on one side).

Nothing a sample is scored with has seen the sample:
- Folds group by recording (a CRC of its name, so the same on every run): a sample is
  scored by a population model trained without the recording it was made from.
- The athlete's history is drawn from other recordings of the sport whose average speed is
  closest to the athlete's usual (similar athletes, other days and routes), never from the
  recording the sample was made from; the athlete's usual is their recording's speed over a
  drawn "day factor" of 1 to 1.25, so that race days are among the clean samples.
- Copy candidates are the other athletes' recordings: the recording a sample was made from
  is the uploader's own and never a candidate, except for ``copy``, whose whole point is
  that the original belongs to someone else.
- The vehicle model of each fold is trained on the real drives and on the clean recordings
  outside the fold.
- The fixed-speed baseline's limits are chosen on the development family's training folds
  and applied to the held-out fold.
- The detector's threshold and weights are constants of ``core.anomaly.model``.
"""

from __future__ import annotations

import importlib
import math
import random
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.activities.tables import SPORTS
from core.anomaly import cheats
from core.anomaly.cheats import finite
from core.anomaly.detector import assess, fingerprint_of
from core.anomaly.features import track_features
from core.anomaly.model import Baseline, PopulationModel
from core.anomaly.training import REAL_POSITIVES, feature_rows, population, real_recordings
from core.anomaly.vehicle import VehicleModel, training_rows, vehicle_examples
from core.anomaly.vehicle_evaluation import grouped_evaluation
from core.anomaly.vehicle_evaluation import report as vehicle_report
from core.tracks.formats import load_track
from core.tracks.geo import segment_lengths_m
from core.tracks.track import Track

CHEAT_KINDS = cheats.KINDS
KINDS = (*CHEAT_KINDS, "real_vehicle")
FAMILIES = {"development": "core.anomaly.cheats", "held-out": "core.anomaly.heldout_cheats"}
HISTORY_COUNT = 8
HISTORY_SPEED_RANGE = 0.12  # "similar": average speed within 12% (log scale) of the athlete's
# The recording that stands for the uploader was this much faster than their usual outing (a
# race or a good day is up to a quarter faster than training): their history is drawn around
# its speed divided by this, so that honest fast days are part of the test.
DAY_FACTOR = (1.0, 1.25)
CLEAN_BUDGET = 0.02  # at most this share of clean recordings flagged
DETECTORS = ("ours", "fixed_speed", "forest", "vehicle_model")
Z95 = 1.959964


@dataclass
class Sample:
    name: str
    kind: str  # "clean" or one of KINDS
    family: str  # "" for clean recordings and real drives
    track: Track
    sport: str
    origin: str  # the recording it came from (for the folds)
    athlete: str  # the recording that stands for the uploader (history around its speed)
    own: frozenset  # the uploader's own recordings: never history, never a copy candidate
    cheat: bool = True
    day: float = 1.0  # how much faster than the athlete's usual this outing was (a race day)
    verdict: dict = field(default_factory=dict)


def fold_of(name: str, folds: int) -> int:
    """A recording's fold: the same on every run and every machine."""
    return zlib.crc32(name.encode()) % folds


def build_samples(real: list[tuple[str, Track]], shared: Path, seed: int = 2026,
                  families=tuple(FAMILIES)) -> list[Sample]:
    """The clean recordings, each family's cheats made from them, and the real drives."""
    samples: list[Sample] = []
    by_sport = {sport: [n for n, t in real if t.sport == sport] for sport in SPORTS}
    for name, track in real:
        samples.append(Sample(name, "clean", "", track, track.sport, name, name, frozenset({name}), cheat=False))
    for family in families:
        maker = importlib.import_module(FAMILIES[family])
        rng = random.Random(f"{seed}:{family}")
        for name, track in real:
            for kind in CHEAT_KINDS:
                if kind == "ride_as_run" and "running" in name.lower():
                    continue  # a file that names itself a run is no ride to upload as a run
                made = maker.make(kind, track, rng)
                if made is None or len(made) < 12:
                    continue
                sport = "run" if kind == "ride_as_run" else track.sport
                if kind == "copy":  # uploaded by another athlete of the sport
                    athlete = rng.choice([n for n in by_sport[sport] if n != name])
                    own = frozenset({athlete})
                elif kind == "ride_as_run":  # uploaded by someone whose history is runs
                    athlete = rng.choice(by_sport["run"])
                    own = frozenset({name, athlete})
                else:
                    athlete, own = name, frozenset({name})
                samples.append(Sample(f"{name}+{kind}", kind, family, made, sport, name, athlete, own))
    rng = random.Random(f"{seed}:real")
    for file_name in REAL_POSITIVES:
        path = next(iter(sorted(Path(shared).glob(f"*/{file_name}"))), None)
        if path is None:
            continue
        track = load_track(path)
        sports = SPORTS if track.sport not in SPORTS else (track.sport,)
        for sport in sports:
            athlete = rng.choice(by_sport[sport])
            samples.append(Sample(f"{path.parent.name}/{file_name} as {sport}", "real_vehicle", "", track, sport,
                                  file_name, athlete, frozenset({file_name, athlete})))
    for sample in samples:
        sample.day = random.Random(f"{seed}:day:{sample.name}").uniform(*DAY_FACTOR)
    return samples


def history_names(sample: Sample, values: dict[str, dict], sports: dict[str, str]) -> list[str]:
    """The recordings that make the uploader's history: up to HISTORY_COUNT of the sample's
    sport closest in average speed to the uploader's usual (the speed of the recording that
    stands for them over ``sample.day``; within HISTORY_SPEED_RANGE), none of the uploader's
    own and not the recording the sample was made from."""
    reference = values.get(sample.athlete, {}).get("log_avg_speed", math.nan) - math.log(sample.day)
    if not math.isfinite(reference):
        return []
    pool = [n for n, sport in sports.items()
            if sport == sample.sport and n not in sample.own and n != sample.origin
            and abs(values[n].get("log_avg_speed", math.nan) - reference) <= HISTORY_SPEED_RANGE]
    pool.sort(key=lambda n: (abs(values[n]["log_avg_speed"] - reference), n))
    return pool[:HISTORY_COUNT]


def history_for(sample: Sample, values: dict[str, dict], sports: dict[str, str]) -> Baseline | None:
    """The uploader's history (``history_names``); None, a new athlete, with fewer than three."""
    return Baseline.from_history([values[n] for n in history_names(sample, values, sports)])


def max_raw_speed(track: Track) -> float:
    """The fastest point-to-point speed in the file (what a fixed speed limit looks at)."""
    track = finite(track)
    d = segment_lengths_m(track.lat, track.lon)
    dt = np.diff(track.t)
    ok = dt > 0
    return float((d[ok] / dt[ok]).max()) if ok.any() else 0.0


def run(shared: Path, folds: int = 5, seed: int = 2026, progress=None, families=tuple(FAMILIES),
        vehicle_table: bool = True) -> dict:
    """Score every sample with our detector and the baselines; return the tables (and, with
    ``vehicle_table``, the vehicle model's own grouped evaluation on the real drives)."""
    real = real_recordings(shared)
    if len(real) < 10:
        raise RuntimeError(f"the evaluation needs the real recordings in {shared}; found {len(real)}")
    samples = build_samples(real, shared, seed, families)
    clean_features = {name: track_features(track, track.sport) for name, track in real}
    values = {name: f.values for name, f in clean_features.items()}
    sports = {name: track.sport for name, track in real}
    prints = {name: fingerprint_of(f) for name, f in clean_features.items()}
    # The vehicle model: the real drives (never samples) against the clean recordings; each
    # fold's model leaves that fold's recordings out.
    drives = vehicle_examples(shared, humans=[])
    vehicle_rows = training_rows(drives + [(n, t, 0) for n, t in real]) if drives else None
    for k in range(folds):
        train = [(n, t) for n, t in real if fold_of(n, folds) != k]
        rows = feature_rows(population(train))
        model = PopulationModel.train({s: np.array(r) for s, r in rows.items()})
        if vehicle_rows is not None:
            model.vehicle = VehicleModel.train_without(vehicle_rows, {n for n, _ in real if fold_of(n, folds) == k})
        for sample in samples:
            if fold_of(sample.origin, folds) != k:
                continue
            candidates = [(n, fp) for n, fp in prints.items() if n not in sample.own]
            a = assess(sample.track, sample.sport, model, history_for(sample, values, sports), candidates,
                       now=float("inf"))
            sample.verdict = {"ours": a.verdict.flagged, "forest": a.verdict.forest >= 0.5,
                              "vehicle_model": bool(model.vehicle.stretches(sample.track)) if model.vehicle else False,
                              "score": a.verdict.score, "reasons": a.verdict.reasons,
                              "codes": sorted({h.code for h in a.verdict.hits}),
                              "max_speed": max_raw_speed(sample.track)}
        if progress:
            progress(k + 1, folds)
    # The fixed speed limit per sport, chosen on the other folds of the development family
    # (its best F1 there while flagging no more clean recordings than our own target).
    limits = {}
    for k in range(folds):
        tuning = [s for s in samples if fold_of(s.origin, folds) != k and s.family in ("", "development")]
        limits[k] = {sport: _best_limit([s for s in tuning if s.sport == sport]) for sport in SPORTS}
        for s in samples:
            if fold_of(s.origin, folds) == k:
                s.verdict["fixed_speed"] = s.verdict["max_speed"] > limits[k][s.sport]
    tables = {family: table([s for s in samples if s.family in ("", family)]) for family in families}
    # The vehicle model on its own data: drives against people's recordings, grouped folds.
    drives_table = (grouped_evaluation(drives + [(n, t, 0) for n, t in real], folds=folds)
                    if drives and vehicle_table else None)
    return {"samples": samples, "limits": limits, "tables": tables, "families": list(families),
            "vehicle": drives_table}


def _best_limit(subset: list[Sample]) -> float:
    clean = [s for s in subset if not s.cheat]
    best = (-1.0, -math.inf)
    for limit in sorted({s.verdict["max_speed"] for s in subset}):
        if sum(s.verdict["max_speed"] > limit for s in clean) > CLEAN_BUDGET * len(clean):
            continue
        f1 = _scores([(s.cheat, s.verdict["max_speed"] > limit) for s in subset])["f1"]
        best = max(best, (f1, -limit))
    return -best[1] if math.isfinite(best[1]) else math.inf


def wilson(hits: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = hits / n
    centre = (p + Z95 ** 2 / (2 * n)) / (1 + Z95 ** 2 / n)
    half = Z95 * math.sqrt(p * (1 - p) / n + Z95 ** 2 / (4 * n * n)) / (1 + Z95 ** 2 / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def _scores(pairs) -> dict:
    tp = sum(1 for label, flag in pairs if label and flag)
    fp = sum(1 for label, flag in pairs if not label and flag)
    fn = sum(1 for label, flag in pairs if label and not flag)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "n": tp + fn, "tp": tp, "fp": fp,
            "recall_ci": wilson(tp, tp + fn)}


def table(samples: list[Sample]) -> dict:
    """Recall per kind (with its 95% interval), precision against all clean samples, and
    overall, per detector."""
    out = {}
    clean = [s for s in samples if s.kind == "clean"]
    for detector in DETECTORS:
        rows = {}
        for kind in KINDS:
            subset = clean + [s for s in samples if s.kind == kind]
            if len(subset) > len(clean):
                rows[kind] = _scores([(s.cheat, s.verdict[detector]) for s in subset])
        rows["overall"] = _scores([(s.cheat, s.verdict[detector]) for s in samples])
        flagged = sum(bool(s.verdict[detector]) for s in clean)
        rows["clean_flagged"] = {"rate": flagged / max(len(clean), 1), "flagged": flagged, "of": len(clean),
                                 "ci": wilson(flagged, len(clean))}
        out[detector] = rows
    return out


NAMES = {"ours": "our detector", "fixed_speed": "fixed maximum speed", "forest": "IsolationForest alone",
         "vehicle_model": "vehicle model alone"}


def print_report(report: dict) -> None:
    """The evaluation as plain-text tables, one per family."""
    samples = report["samples"]
    clean = [s for s in samples if s.kind == "clean"]
    print(f"labelled evaluation: {len(clean)} clean real recordings; "
          f"{sum(1 for s in samples if s.kind == 'real_vehicle')} real vehicle recordings; cheats made from the "
          f"recordings by two families ({', '.join(report['families'])}), scored by models that never saw "
          "the recording a sample came from")
    limits = report["limits"]
    for sport in SPORTS:
        chosen = sorted(v[sport] * 3.6 for v in limits.values())
        print(f"fixed maximum speed baseline, {sport}: {chosen[0]:.0f}-{chosen[-1]:.0f} km/h across folds "
              f"(best F1 on the development family's training folds, at most {CLEAN_BUDGET:.0%} clean flagged)")
    for family in report["families"]:
        tables = report["tables"][family]
        print()
        print(f"=== {family} family" + (" (never tuned on)" if family == "held-out" else "")
              + ": the clean recordings are the same in both families")
        for detector, rows in tables.items():
            print(f"{NAMES[detector]}")
            print(f"  {'kind':<13}{'n':>4}{'caught':>7}{'recall':>8}{'95% interval':>15}{'precision':>10}{'F1':>7}")
            for kind in (*KINDS, "overall"):
                if kind in rows:
                    r = rows[kind]
                    lo, hi = r["recall_ci"]
                    flagged = r["tp"] + r["fp"]
                    precision = f"{r['precision']:.3f}" if flagged else "-"  # nothing flagged: undefined
                    print(f"  {kind:<13}{r['n']:>4}{r['tp']:>7}{r['recall']:>8.3f}{f'{lo:.2f}-{hi:.2f}':>15}"
                          f"{precision:>10}{r['f1']:>7.3f}")
            c = rows["clean_flagged"]
            print(f"  clean recordings flagged: {c['flagged']} of {c['of']} ({c['rate']:.1%}, "
                  f"95% interval {c['ci'][0]:.1%}-{c['ci'][1]:.1%})")
        missed = [s for s in samples if s.family == family and s.cheat and not s.verdict["ours"]]
        if missed:
            print(f"  missed by our detector: {', '.join(s.name for s in missed)}")
    if report.get("vehicle"):
        print()
        print("=== the vehicle model on real drives against people's recordings")
        print(vehicle_report(report["vehicle"]))
    wrong = [s for s in clean if s.verdict["ours"]]
    print()
    for s in wrong:
        print(f"clean but flagged: {s.name} (score {s.verdict['score']:.2f}): {'; '.join(s.verdict['reasons'])}")
    real_missed = [s.name for s in samples if s.kind == "real_vehicle" and not s.verdict["ours"]]
    if real_missed:
        print(f"real vehicle recordings missed: {', '.join(real_missed)}")
