"""The labelled evaluation: real recordings, clean and with realistic cheats injected.

Clean: every outdoor run and ride with GPS in ``../shared/data/tracks``. Cheats, each made
from those same recordings so they carry real GPS noise, real sampling and real terrain:

- ``vehicle``: a stretch of 1.5-10 km driven: 40-75 km/h cruising, car-like acceleration and
  braking, stops at junctions, logged at the device's own interval, heart rate sinking as
  the athlete sits; the rest of the activity goes on after it.
- ``compressed``: the whole recording sped up 1.2-1.5 times, resampled back to the
  device's interval (heart rate and cadence left as recorded).
- ``ride_as_run``: a ride uploaded as a run.
- ``teleport``: a spoofed location: blocks of fixes moved 0.4-2 km away and back (distance
  gained), or a stretch of 0.5-2 km skipped in one step (a shortcut).
- ``ebike``: a ride whose climbs (over 3%) are ridden at an assisted 20-25 km/h (rides whose
  climbs give a motor less than 1.5 km or 2 minutes to gain are not used).
- ``copy``: another athlete's recording re-uploaded: new date, positions jittered by 1-2 m,
  every second or third fix kept, ends trimmed, timing scaled by up to 3%.
- ``real_vehicle``: the corpus's own car drive (uploaded as a run and as a ride) and a run
  that ends in a car (see ``training.REAL_POSITIVES``).

The population model is cross-validated: recordings are split into folds, and a sample is
scored by a model trained without the recording it came from. Each athlete's history is
the recording's own figures (average speed, distance per heartbeat, 5-minute power,
climbing rate, watts per heartbeat, climb-to-flat speed) varied by 7%, 5%, 8%, 12%, 6% and
12% over eight past outings.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from core.anomaly.detector import assess, fingerprint_of
from core.anomaly.features import track_features
from core.anomaly.model import Baseline, PopulationModel
from core.anomaly.training import REAL_POSITIVES, feature_rows, population, real_recordings
from core.tracks.cleaning import clock_glitch
from core.tracks.formats import load_track
from core.tracks.geo import segment_lengths_m
from core.tracks.track import COLUMNS, Track

KINDS = ("vehicle", "compressed", "ride_as_run", "teleport", "ebike", "copy", "real_vehicle")
# How much an athlete's figures vary between outings (log scale).
HISTORY_SD = {"log_avg_speed": 0.07, "m_per_beat": 0.05, "wkg_300": 0.08, "vam_5min": 0.12, "w_per_beat": 0.06,
              "climb_flat_ratio": 0.12}
HISTORY_COUNT = 8
CLEAN_BUDGET = 0.03
EBIKE_MIN_M = 1500.0  # assisted climbing needed to make an e-bike case of a ride
EBIKE_MIN_SAVED_S = 120.0  # at most this share of clean recordings flagged


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


def _finite(track: Track) -> Track:
    ok = np.isfinite(track.t) & np.isfinite(track.lat) & np.isfinite(track.lon)
    ok &= ~clock_glitch(track.t, ok)
    out = track.take(ok)
    order = np.argsort(out.t, kind="stable")
    return out.take(order)


def _median_dt(t: np.ndarray) -> float:
    d = np.diff(t)
    d = d[d > 0]
    return float(np.median(d)) if d.size else 1.0


def _cumdist(track: Track) -> np.ndarray:
    return np.concatenate([[0.0], np.cumsum(segment_lengths_m(track.lat, track.lon))])


def _resample(track: Track, interval: float) -> Track:
    """The track logged every ``interval`` seconds (values interpolated in time)."""
    t = track.t
    grid = np.arange(t[0], t[-1] + 1e-6, interval)
    cols = {"t": grid}
    for name in COLUMNS[1:]:
        values = getattr(track, name)
        ok = np.isfinite(values)
        cols[name] = np.interp(grid, t[ok], values[ok]) if ok.sum() >= 2 else np.full(grid.size, np.nan)
    return Track(**cols, sport=track.sport, name=track.name)


def _along(track: Track, dist: np.ndarray, where: np.ndarray) -> dict:
    """Columns interpolated at distances ``where`` along the track."""
    out = {}
    for name in ("lat", "lon", "ele", "hr", "cad"):
        values = getattr(track, name)
        ok = np.isfinite(values)
        out[name] = np.interp(where, dist[ok], values[ok]) if ok.sum() >= 2 else np.full(where.size, np.nan)
    return out


def _join(parts: list[dict], sport: str, name: str | None) -> Track:
    cols = {c: np.concatenate([p[c] for p in parts]) for c in COLUMNS}
    return Track(**cols, sport=sport, name=name)


def _slice(track: Track, a: int, b: int, shift: float = 0.0) -> dict:
    cols = {c: getattr(track, c)[a:b].copy() for c in COLUMNS}
    cols["t"] = cols["t"] + shift
    return cols


def _drive(rng: random.Random, length: float, step: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    """Time and distance of a car covering ``length`` metres with stops on the way."""
    cruise = rng.uniform(40, 75) / 3.6
    accel, brake = rng.uniform(1.5, 2.6), rng.uniform(2.0, 3.2)
    stops = []
    pos = rng.uniform(500, 1500)
    while pos < length - 300:
        stops.append(pos)
        pos += rng.uniform(700, 2200)
    stops.append(length)
    t, s, v = 0.0, 0.0, 0.0
    ts, ss = [0.0], [0.0]
    target = cruise
    for stop in stops:
        while s < stop - 0.5:
            remaining = stop - s
            if v * v / (2 * brake) >= remaining:
                v = max(v - brake * step, 0.5)
            elif v < target:
                v = min(v + accel * step * (1 - v / (target * 1.3)), target)
            else:
                target = cruise * rng.uniform(0.9, 1.1)
            s = min(s + v * step, stop)
            t += step
            ts.append(t)
            ss.append(s)
        wait = rng.uniform(3, 40) if stop < length else 0.0
        t += wait
        ts.append(t)
        ss.append(s)
        v = 0.0
    return np.asarray(ts), np.asarray(ss)


def vehicle(track: Track, rng: random.Random) -> Track:
    """A stretch of the route driven by car, the rest as recorded."""
    track = _finite(track)
    dist = _cumdist(track)
    total = dist[-1]
    lo, hi = (1500, 5000) if track.sport == "run" else (3000, 10000)
    length = min(rng.uniform(lo, hi), 0.45 * total)
    d0 = rng.uniform(0.25, 0.75) * (total - length)
    a = int(np.searchsorted(dist, d0))
    b = int(np.searchsorted(dist, d0 + length))
    if b - a < 5:
        return track
    interval = _median_dt(track.t)
    dt_drive, ds_drive = _drive(rng, float(dist[b] - dist[a]))
    sample_t = np.arange(0.0, dt_drive[-1], interval)
    where = dist[a] + np.interp(sample_t, dt_drive, ds_drive)
    mid = _along(track, dist, where)
    start = track.t[a]
    hr0 = mid["hr"][0] if np.isfinite(mid["hr"][0]) else np.nan
    hr = 85 + (hr0 - 85) * np.exp(-sample_t / 90.0) + rng.gauss(0, 2) if np.isfinite(hr0) else mid["hr"]
    drive = {"t": start + sample_t, "lat": mid["lat"], "lon": mid["lon"], "ele": mid["ele"],
             "acc": np.full(sample_t.size, np.nan), "hr": hr, "cad": np.full(sample_t.size, np.nan)}
    shift = (start + sample_t[-1] + interval) - track.t[b]
    return _join([_slice(track, 0, a), drive, _slice(track, b, len(track), shift)], track.sport, track.name)


def compressed(track: Track, rng: random.Random) -> Track:
    """The whole recording sped up, logged at the device's interval again."""
    track = _finite(track)
    k = rng.uniform(1.2, 1.5)
    interval = _median_dt(track.t)
    fast = replace(track, t=track.t[0] + (track.t - track.t[0]) / k)
    return _resample(fast, interval)


def teleport(track: Track, rng: random.Random, shortcut: bool) -> Track:
    """Fixes spoofed far away and back, or a stretch skipped in one jump."""
    track = _finite(track)
    n = len(track)
    dist = _cumdist(track)
    if shortcut:
        length = min(rng.uniform(500, 2000), 0.3 * dist[-1])
        d0 = rng.uniform(0.2, 0.7) * (dist[-1] - length)
        a, b = int(np.searchsorted(dist, d0)), int(np.searchsorted(dist, d0 + length))
        shift = -(track.t[b] - track.t[a]) + _median_dt(track.t)
        return _join([_slice(track, 0, a), _slice(track, b, n, shift)], track.sport, track.name)
    out = {c: getattr(track, c).copy() for c in COLUMNS}
    for _ in range(rng.randint(2, 3)):
        size = rng.randint(15, 40)
        a = rng.randrange(int(n * 0.1), max(int(n * 0.1) + 1, int(n * 0.9) - size))
        metres, angle = rng.uniform(400, 2000), rng.uniform(0, 2 * math.pi)
        out["lat"][a:a + size] += metres * math.cos(angle) / 111_320
        out["lon"][a:a + size] += metres * math.sin(angle) / (111_320 * math.cos(math.radians(out["lat"][a])))
    return Track(**out, sport=track.sport, name=track.name)


def ebike(track: Track, rng: random.Random) -> Track | None:
    """Climbs ridden with a motor's help; None when the ride has too little climbing."""
    track = _finite(track)
    if np.isfinite(track.ele).sum() < 0.8 * len(track):
        return None
    dist = _cumdist(track)
    ok = np.isfinite(track.ele)
    ele = np.interp(dist, dist[ok], track.ele[ok])
    # Grade over 200 m around each fix.
    ahead = np.interp(dist + 100, dist, ele)
    behind = np.interp(dist - 100, dist, ele)
    grade = (ahead - behind) / 200.0
    steps = np.diff(dist)
    dts = np.diff(track.t)
    climbing = (grade[1:] > 0.03) & (dts > 0)
    if steps[climbing].sum() < 1000:
        return None
    assist = rng.uniform(20, 25) / 3.6
    speed = np.where(dts > 0, steps / np.maximum(dts, 1e-9), 0.0)
    boosted = climbing & (speed < assist) & (dts < 30)
    new_dts = np.where(boosted, steps / (assist * rng.uniform(0.95, 1.05)), dts)
    # A ride whose climbs were already near the assisted speed gains nothing from a motor:
    # no e-bike case to make of it.
    if steps[boosted].sum() < EBIKE_MIN_M or (dts - new_dts).sum() < EBIKE_MIN_SAVED_S:
        return None
    t = track.t[0] + np.concatenate([[0.0], np.cumsum(new_dts)])
    return _resample(replace(track, t=t), _median_dt(track.t))


def copy_of(track: Track, rng: random.Random) -> Track:
    """Someone else's recording re-uploaded with light disguise."""
    track = _finite(track)
    n = len(track)
    trim_a, trim_b = int(n * rng.uniform(0, 0.03)), int(n * rng.uniform(0, 0.03))
    keep = np.arange(trim_a, n - trim_b, rng.choice((1, 2, 3)) if _median_dt(track.t) <= 2 else 1)
    out = track.take(keep)
    noise = rng.uniform(1.0, 2.0)
    nrng = np.random.default_rng(rng.getrandbits(32))
    lat0 = float(out.lat[0])
    out.lat = out.lat + nrng.normal(0, noise, len(out)) / 111_320
    out.lon = out.lon + nrng.normal(0, noise, len(out)) / (111_320 * math.cos(math.radians(lat0)))
    scale = rng.uniform(0.97, 1.03)
    out.t = out.t[0] + (out.t - out.t[0]) * scale + rng.uniform(30, 400) * 86400
    return out


def build_samples(real: list[tuple[str, Track]], shared: Path, seed: int = 2026) -> list[Sample]:
    """The clean recordings and their cheating copies, labelled."""
    rng = random.Random(seed)
    samples: list[Sample] = []
    by_sport = {"run": [n for n, t in real if t.sport == "run"], "ride": [n for n, t in real if t.sport == "ride"]}
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
        sports = ("run", "ride") if track.sport not in ("run", "ride") else (track.sport,)
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
    track = _finite(track)
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
            if fold_of.get(sample.origin, hash(sample.origin) % folds) != k:
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
    for sport in ("run", "ride"):
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
