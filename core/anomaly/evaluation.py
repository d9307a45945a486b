"""The labelled evaluation: real recordings, clean and with realistic cheats injected. Only the
``python -m core anomaly evaluate`` command and the tests import it, never the worker, the
dashboard or the ingest server.

Clean: every outdoor run and ride with GPS in ``../shared/data/tracks``. Cheats, each made
from those same recordings so they carry real GPS noise, real sampling and real terrain
(see ``core.anomaly.cheats``): ``vehicle`` (a stretch driven), ``compressed`` (the whole
recording sped up), ``ride_as_run`` (a ride uploaded as a run), ``teleport`` (a spoofed
location or a shortcut), ``ebike`` (climbs ridden with a motor's help), ``copy`` (another
athlete's recording re-uploaded in disguise) and ``real_vehicle``: the corpus's own car drive
(uploaded as a run and as a ride) and a run that ends in a car (see
``training.REAL_POSITIVES``).

The population model is cross-validated: recordings are split into folds, and a sample is
scored by a model trained without the recording it came from. Each athlete's history is
the recording's own figures (average speed, distance per heartbeat, 5-minute power,
climbing rate, watts per heartbeat, climb-to-flat speed) varied by 7%, 5%, 8%, 12%, 6% and
12% over eight past outings.
"""

from __future__ import annotations

import math
import random
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.activities.tables import SPORTS
from core.anomaly.cheats import compressed, copy_of, ebike, finite, teleport, vehicle
from core.anomaly.detector import assess, fingerprint_of
from core.anomaly.features import track_features
from core.anomaly.model import Baseline, PopulationModel
from core.anomaly.training import REAL_POSITIVES, feature_rows, population, real_recordings
from core.tracks.formats import load_track
from core.tracks.geo import segment_lengths_m
from core.tracks.track import Track

KINDS = ("vehicle", "compressed", "ride_as_run", "teleport", "ebike", "copy", "real_vehicle")
# How much an athlete's figures vary between outings (log scale).
HISTORY_SD = {"log_avg_speed": 0.07, "m_per_beat": 0.05, "wkg_300": 0.08, "vam_5min": 0.12, "w_per_beat": 0.06,
              "climb_flat_ratio": 0.12}
HISTORY_COUNT = 8
CLEAN_BUDGET = 0.03  # at most this share of clean recordings flagged


@dataclass
class Sample:
    name: str
    kind: str  # "clean" or one of KINDS
    track: Track
    sport: str
    origin: str  # the recording it came from (for the folds)
    athlete: str  # whose history and whose other activities
    cheat: bool = True
    verdict: dict = field(default_factory=dict)


def build_samples(real: list[tuple[str, Track]], shared: Path, seed: int = 2026) -> list[Sample]:
    """The clean recordings and their cheating copies, labelled."""
    rng = random.Random(seed)
    samples: list[Sample] = []
    by_sport = {sport: [n for n, t in real if t.sport == sport] for sport in SPORTS}
    for name, track in real:
        samples.append(Sample(name, "clean", track, track.sport, name, name, cheat=False))
        samples.append(Sample(f"{name}+vehicle", "vehicle", vehicle(track, rng), track.sport, name, name))
        samples.append(Sample(f"{name}+compressed", "compressed", compressed(track, rng), track.sport, name, name))
        samples.append(Sample(f"{name}+teleport", "teleport", teleport(track, rng, shortcut=len(samples) % 2 == 0),
                              track.sport, name, name))
        # (A file that names itself a run though tagged a ride is not a ride to upload as a run.)
        if track.sport == "ride" and "running" not in name.lower():
            runner = rng.choice(by_sport["run"])
            samples.append(Sample(f"{name}+as-run", "ride_as_run", track, "run", name, runner))
            assisted = ebike(track, rng)
            if assisted is not None:
                samples.append(Sample(f"{name}+ebike", "ebike", assisted, "ride", name, name))
        thief = rng.choice([n for n in by_sport[track.sport] if n != name])
        samples.append(Sample(f"{name}+copy", "copy", copy_of(track, rng), track.sport, name, thief))
    for file_name in REAL_POSITIVES:
        path = next(iter(sorted(Path(shared).glob(f"*/{file_name}"))), None)
        if path is None:
            continue
        track = load_track(path)
        sports = SPORTS if track.sport not in SPORTS else (track.sport,)
        for sport in sports:
            athlete = rng.choice(by_sport[sport])
            samples.append(Sample(f"{path.parent.name}/{file_name} as {sport}", "real_vehicle", track, sport,
                                  file_name, athlete))
    return samples


def _histories(real: list[tuple[str, Track]], seed: int) -> dict[str, Baseline]:
    """Each recording's athlete: eight past outings around the recording's own figures."""
    rng = random.Random(seed)
    out = {}
    for name, track in real:
        values = track_features(track, track.sport).values
        past = []
        for _ in range(HISTORY_COUNT):
            row = {}
            for feature, sd in HISTORY_SD.items():
                value = values.get(feature, math.nan)
                if not math.isfinite(value):
                    continue
                row[feature] = value + rng.gauss(0, sd) if feature == "log_avg_speed" \
                    else value * math.exp(rng.gauss(0, sd))
            past.append(row)
        out[name] = Baseline.from_history(past)
    return out


def max_raw_speed(track: Track) -> float:
    """The fastest point-to-point speed in the file (what a fixed speed limit looks at)."""
    track = finite(track)
    d = segment_lengths_m(track.lat, track.lon)
    dt = np.diff(track.t)
    ok = dt > 0
    return float((d[ok] / dt[ok]).max()) if ok.any() else 0.0


def run(shared: Path, folds: int = 5, seed: int = 2026, progress=None) -> dict:
    """Score every sample with our detector and both baselines; return the table."""
    real = real_recordings(shared)
    if len(real) < 10:
        raise RuntimeError(f"the evaluation needs the real recordings in {shared}; found {len(real)}")
    samples = build_samples(real, shared, seed)
    histories = _histories(real, seed)
    prints = {name: fingerprint_of(track_features(track, track.sport)) for name, track in real}
    names = [name for name, _ in real]
    fold_of = {name: k % folds for k, name in enumerate(names)}
    for k in range(folds):
        train = [(n, t) for n, t in real if fold_of[n] != k]
        rows = feature_rows(population(train))
        model = PopulationModel.train({s: np.array(r) for s, r in rows.items()})
        for sample in samples:
            if fold_of.get(sample.origin, zlib.crc32(sample.origin.encode()) % folds) != k:  # stable across runs
                continue
            candidates = [(n, fp) for n, fp in prints.items() if n != sample.athlete]
            a = assess(sample.track, sample.sport, model, histories.get(sample.athlete), candidates,
                       now=float("inf"))
            sample.verdict = {"ours": a.verdict.flagged, "forest": a.verdict.forest >= 0.5,
                              "score": a.verdict.score, "reasons": a.verdict.reasons,
                              "max_speed": max_raw_speed(sample.track)}
        if progress:
            progress(k + 1, folds)
    # The fixed speed limit, at whichever limit per sport gives it the best F1 here while
    # flagging no more of the clean recordings than our own target allows.
    limits = {}
    for sport in SPORTS:
        subset = [s for s in samples if s.sport == sport]
        clean = [s for s in subset if not s.cheat]
        best = (-1.0, math.inf)
        for limit in sorted({s.verdict["max_speed"] for s in subset}):
            if sum(s.verdict["max_speed"] > limit for s in clean) > CLEAN_BUDGET * len(clean):
                continue
            f1 = _scores([(s.cheat, s.verdict["max_speed"] > limit) for s in subset])["f1"]
            best = max(best, (f1, -limit))
        limits[sport] = -best[1]
    for s in samples:
        s.verdict["fixed_speed"] = s.verdict["max_speed"] > limits[s.sport]
    return {"samples": samples, "limits": limits, "table": table(samples)}


def _scores(pairs) -> dict:
    tp = sum(1 for label, flag in pairs if label and flag)
    fp = sum(1 for label, flag in pairs if not label and flag)
    fn = sum(1 for label, flag in pairs if label and not flag)
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1, "n": tp + fn, "tp": tp, "fp": fp}


def table(samples: list[Sample]) -> dict:
    """Precision, recall and F1 per kind (against all clean samples) and overall, per detector."""
    out = {}
    clean = [s for s in samples if s.kind == "clean"]
    for detector in ("ours", "fixed_speed", "forest"):
        rows = {}
        for kind in KINDS:
            subset = clean + [s for s in samples if s.kind == kind]
            if len(subset) > len(clean):
                rows[kind] = _scores([(s.cheat, s.verdict[detector]) for s in subset])
        rows["overall"] = _scores([(s.cheat, s.verdict[detector]) for s in samples])
        rows["clean_flagged"] = {"rate": sum(s.verdict[detector] for s in clean) / max(len(clean), 1),
                                 "flagged": sum(s.verdict[detector] for s in clean), "of": len(clean)}
        out[detector] = rows
    return out


NAMES = {"ours": "our detector", "fixed_speed": "fixed maximum speed", "forest": "IsolationForest alone"}


def print_report(report: dict) -> None:
    """The evaluation as a plain-text table."""
    samples = report["samples"]
    clean = sum(1 for s in samples if s.kind == "clean")
    print(f"labelled evaluation set: {clean} clean real recordings, "
          f"{sum(1 for s in samples if s.cheat)} cheats ({', '.join(f'{k} {sum(1 for s in samples if s.kind == k)}' for k in KINDS)})")
    limits = report["limits"]
    print(f"fixed maximum speed baseline: run {limits['run'] * 3.6:.0f} km/h, ride {limits['ride'] * 3.6:.0f} km/h "
          f"(its best F1 on this set with at most {CLEAN_BUDGET:.0%} of clean recordings flagged)")
    for detector, rows in report["table"].items():
        print()
        print(NAMES[detector])
        print(f"  {'kind':<14}{'n':>5}{'precision':>11}{'recall':>8}{'F1':>7}")
        for kind in (*KINDS, "overall"):
            if kind in rows:
                r = rows[kind]
                print(f"  {kind:<14}{r['n']:>5}{r['precision']:>11.3f}{r['recall']:>8.3f}{r['f1']:>7.3f}")
        c = rows["clean_flagged"]
        print(f"  clean recordings flagged: {c['flagged']} of {c['of']} ({c['rate']:.1%})")
    ours, fixed = report["table"]["ours"]["overall"]["f1"], report["table"]["fixed_speed"]["overall"]["f1"]
    print()
    print(f"overall F1: ours {ours:.3f}, fixed speed {fixed:.3f} (difference {ours - fixed:+.3f}), "
          f"IsolationForest alone {report['table']['forest']['overall']['f1']:.3f}")
    missed = [s for s in samples if s.cheat and not s.verdict["ours"]]
    wrong = [s for s in samples if not s.cheat and s.verdict["ours"]]
    for s in wrong:
        print(f"  clean but flagged: {s.name} (score {s.verdict['score']:.2f}): {'; '.join(s.verdict['reasons'])}")
    if missed:
        print(f"  missed: {', '.join(s.name for s in missed)}")
