"""Physical-limit rules: each hit names the stretch and the limit it breaks, in plain words.

A rule speaks only when the evidence is beyond doubt (faster than the world record, more
power than the best professionals, a jump of hundreds of metres in seconds, a recording gap
whose ends lie further apart than anyone covers in its time, a climb gained faster than the
best riders and runners climb); everything subtler is left to
the population model and the athlete's own history.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from core import units
from core.anomaly.features import Features, Series, reference_speed
from core.anomaly.limits import (
    ASSIST_GRADE_MAX,
    ASSIST_GRADE_SPREAD,
    ASSIST_MIN_CLIMB_S,
    ASSIST_MIN_MPS,
    ASSIST_MIN_WKG,
    ASSIST_SEVERITY,
    ASSIST_SPEED_RATIO,
    CLIMB_MIN_M,
    CLIMB_RATE_LIMIT_M_PER_H,
    GAP_HELD_FACTOR,
    GAP_HELD_MIN_RECORDED,
    GAP_HR_DROP,
    GAP_HR_MIN_MPS,
    GAP_HR_MIN_S,
    GAP_OWN_FACTOR,
    GAP_OWN_FLOOR_MPS,
    GAP_POSITION_ERROR_M,
    GAP_RIDE_RECORD_S,
    GAP_RUN_RECORD_S,
    LAUNCH_COUNT,
    LAUNCH_SPAN_M,
    LAUNCH_TO_MPS,
    LAUNCH_WKG,
    RIDE_FLAT_SPEED_MPS,
    RIDE_FLAT_SPEED_S,
    RIDE_LEVEL_MAX_DESCENT,
    RIDE_LEVEL_SPEED_MPS,
    RIDE_LEVEL_SPEED_S,
    RIDE_WKG_LIMIT,
    RUN_SUSTAINED_MPS,
    RUN_SUSTAINED_S,
    TOW_MAX_MPS,
    TOW_MIN_OTHERS,
    TOW_MIN_WKG,
    TOW_RATIO,
    WORLD_RECORD_TEXT,
)
from core.anomaly.signals import RIDER_KG, best_window, held_speed, speed_at_power, steady_power, stretches

NOUN = {"run": "runner", "ride": "rider"}
# A single jump shorter than this is a GPS slip, whatever its speed.
TELEPORT_TOTAL_M = 300.0

# Every reason code a hit can carry (the detector adds "copy" and "vehicle_model"), with the
# words a filter shows.
REASON_LABELS = {"faster_than_record": "faster than a world record", "vehicle_speed": "vehicle speed",
                 "beyond_human_power": "beyond human power", "teleport": "GPS jumps",
                 "gap_speed": "gap crossed too fast", "climb_rate": "climbed faster than anyone",
                 "launches": "pulls away like a car", "assisted_climb": "climbs ridden as with a motor",
                 "copy": "copy of another athlete",
                 "vehicle_model": "moves like a vehicle"}


@dataclass
class Hit:
    """One broken limit: a machine code, a sentence, how sure, and when it happened."""

    code: str
    reason: str
    severity: float
    t0: float | None = None
    t1: float | None = None

    def to_dict(self) -> dict:
        return {"code": self.code, "reason": self.reason, "severity": round(self.severity, 3),
                "t0": self.t0, "t1": self.t1}


def _stretch_hit(s: Series, a: int, b: int, code: str, why: str) -> Hit:
    metres = float(s.dist_m[b - 1] - s.dist_m[a])
    seconds = float(s.t[b - 1] - s.t[a])
    speed = metres / seconds * 3.6 if seconds > 0 else 0.0
    reason = f"{metres / 1000:.1f} km at {speed:.0f} km/h for {units.duration(seconds)} {_when(s, s.t[a])} ({why})"
    return Hit(code, reason, 1.0, float(s.t[a]), float(s.t[b - 1]))


def _when(series: Series, t: float) -> str:
    """Where a stretch starts, as time into the recording."""
    return f"from {units.duration(t - series.t[0])} in"


def check(f: Features) -> list[Hit]:
    """Every limit the activity breaks, most certain first."""
    if not f.usable:
        return []
    s = f.series
    step = float(s.t[1] - s.t[0]) if s.t.size > 1 else 1.0
    hits = _run_hits(f, step) if f.sport == "run" else _ride_hits(s, step)
    pulled = _launch_hit(f)
    if pulled is not None:
        hits.append(pulled)
    climbed = _climb_hit(f)
    if climbed is not None:
        hits.append(climbed)
    assisted = _assist_hit(f) or _tow_hit(f)
    if assisted is not None and climbed is None:
        hits.append(assisted)
    jumped = _teleport_hit(f)
    if jumped is not None:
        hits.append(jumped)
    hits.extend(_gap_hits(f, jumped is not None))
    return hits


def _run_hits(f: Features, step: float) -> list[Hit]:
    """A best effort faster than the world record; minutes at a speed no runner holds."""
    hits = []
    sport, noun, s = f.sport, NOUN[f.sport], f.series
    for metres, effort in sorted(f.efforts.items()):
        ref = reference_speed(sport, metres)
        speed = metres / effort["seconds"]
        if ref and speed > ref:
            hits.append(Hit(
                "faster_than_record",
                f"{units.effort_name(metres)} in {units.duration(effort['seconds'])} ({speed * 3.6:.0f} km/h) "
                f"{_when(s, effort['t0'])}, faster than "
                f"any {noun} has run it (world record {WORLD_RECORD_TEXT[sport][metres]})",
                1.0, effort["t0"], effort["t1"]))
            break
    fast = np.nan_to_num(s.speed_mps) > RUN_SUSTAINED_MPS
    for a, b in stretches(fast, int(RUN_SUSTAINED_S / step)):
        hits.append(_stretch_hit(s, a, b, "vehicle_speed",
                                 f"no {noun} holds {RUN_SUSTAINED_MPS * 3.6:.0f} km/h for a minute"))
    return hits


def _ride_hits(s: Series, step: float) -> list[Hit]:
    """Vehicle speed on level or rising road, and power beyond the best professionals'
    (with elevation); without elevation, vehicle speed anywhere."""
    hits = []
    noun = NOUN["ride"]
    if s.ele is not None:
        # Vehicle speed on level or rising road: descents are where riders go this fast.
        fast = np.nan_to_num(s.speed_mps) > RIDE_LEVEL_SPEED_MPS
        for a, b in stretches(fast, int(RIDE_LEVEL_SPEED_S / step)):
            metres = float(s.dist_m[b - 1] - s.dist_m[a])
            drop = float(s.ele[a] - s.ele[b - 1]) if np.isfinite(s.ele[[a, b - 1]]).all() else 0.0
            if metres > 0 and drop / metres <= RIDE_LEVEL_MAX_DESCENT:
                hits.append(_stretch_hit(s, a, b, "vehicle_speed",
                                         f"on level or rising road; no {noun} holds "
                                         f"{RIDE_LEVEL_SPEED_MPS * 3.6:.0f} km/h there for "
                                         f"{RIDE_LEVEL_SPEED_S:.0f} s"))
    if s.power_w is not None:
        for window, limit in RIDE_WKG_LIMIT.items():
            n = int(window / step)
            watts, a = best_window(s.power_w, n)
            if a >= 0 and watts / RIDER_KG > limit:
                b = a + n
                metres = float(s.dist_m[b - 1] - s.dist_m[a])
                hits.append(Hit(
                    "beyond_human_power",
                    f"{metres / 1000:.1f} km at {metres / window * 3.6:.0f} km/h for {units.duration(window)} "
                    f"{_when(s, s.t[a])} needs "
                    f"about {watts / RIDER_KG:.1f} W/kg, more than any {noun} holds ({limit:g} W/kg)",
                    1.0, float(s.t[a]), float(s.t[b - 1])))
                break
    else:
        fast = np.nan_to_num(s.speed_mps) > RIDE_FLAT_SPEED_MPS
        for a, b in stretches(fast, int(RIDE_FLAT_SPEED_S / step)):
            hits.append(_stretch_hit(s, a, b, "vehicle_speed",
                                     f"no {noun} holds {RIDE_FLAT_SPEED_MPS * 3.6:.0f} km/h for a minute"))
    return hits


# A pattern of launches, not one broken limit: flagged for a moderator, short of certain.
LAUNCH_SEVERITY = 0.9


def _launch_hit(f: Features) -> Hit | None:
    """LAUNCH_COUNT or more hard pull-aways from a standstill within LAUNCH_SPAN_M: the
    stretch with the most of them, in the words a moderator reads."""
    hard = [p for p in f.launches if p["wkg"] >= LAUNCH_WKG]
    best: list[dict] = []
    for k, first in enumerate(hard):
        run = [p for p in hard[k:] if p["metres"] - first["metres"] <= LAUNCH_SPAN_M]
        if len(run) > len(best):
            best = run
    if len(best) < LAUNCH_COUNT:
        return None
    span = best[-1]["metres"] - best[0]["metres"]
    top = np.median([p["speed"] for p in best])
    seconds = np.median([p["seconds"] for p in best])
    wkg = np.median([p["wkg"] for p in best])
    return Hit(
        "launches",
        f"pulled away from a standstill past {units.speed(LAUNCH_TO_MPS)} within {seconds:.0f} s, on to about "
        f"{units.speed(top)}, {len(best)} times in "
        f"{units.distance(span, digits=1)} {_when(f.series, best[0]['t0'])}: about {wkg:.0f} W/kg each time, "
        f"a sprint no {NOUN['ride']} repeats at every junction (a car in traffic pulls away like this)",
        LAUNCH_SEVERITY, best[0]["t0"], best[-1]["t1"])


def _climb_hit(f: Features) -> Hit | None:
    """The steepest climb gained faster than the best runners or riders climb for as long
    (a motor, or a tow up the hill): the shortest window that breaks its limit. Only climbs
    of CLIMB_MIN_M or more, recorded throughout and gained in every quarter (features.py)."""
    for seconds, limit in sorted(CLIMB_RATE_LIMIT_M_PER_H.items()):
        climb = f.climbs.get(seconds)
        if climb is None or climb["metres"] < CLIMB_MIN_M:
            continue
        rate = climb["metres"] / seconds * 3600.0
        if rate > limit:
            held = units.duration_short(seconds)
            return Hit(
                "climb_rate",
                f"climbed {climb['metres']:.0f} m in {held} {_when(f.series, climb['t0'])}: "
                f"{units.climb_rate(rate)}, more than the best {NOUN[f.sport]}s hold for {held} "
                f"(about {units.climb_rate(limit)})",
                1.0, climb["t0"], climb["t1"])
    return None


def _assist_hit(f: Features) -> Hit | None:
    """A ride whose speed does not fall as its climbs steepen: legs give about the same power
    on a steeper road and slow down, a motor holds its speed (limits.py, ASSIST_*)."""
    c = f.grades
    if f.sport != "ride" or c is None or c["seconds"] < ASSIST_MIN_CLIMB_S:
        return None
    if c["steep_grade"] < ASSIST_GRADE_SPREAD * c["gentle_grade"] or c["gentle_mps"] <= 0:
        return None
    kept = c["steep_mps"] / c["gentle_mps"]
    if kept < ASSIST_SPEED_RATIO or c["steep_mps"] < ASSIST_MIN_MPS:
        return None
    if steady_power(c["steep_mps"], c["steep_grade"]) < ASSIST_MIN_WKG * RIDER_KG:
        return None
    legs = speed_at_power(steady_power(c["gentle_mps"], c["gentle_grade"]), c["steep_grade"])
    return Hit(
        "assisted_climb",
        f"rode the steeper climbs ({c['steep_grade']:.1%} on average) at {units.speed(c['steep_mps'])} and the "
        f"gentler ones ({c['gentle_grade']:.1%}) at {units.speed(c['gentle_mps'])}, over "
        f"{units.duration_short(c['seconds'])} of climbing: at the same effort a {NOUN['ride']} slows to about "
        f"{units.speed(legs)} on the steeper ones; a motor that assists up to a set speed holds it",
        ASSIST_SEVERITY)


def _tow_hit(f: Features) -> Hit | None:
    """One climb of a ride ridden far harder than its others: the power its speed and
    gradient need against the median of the others' (limits.py, TOW_*)."""
    hills = [h for h in f.hills if h["grade"] <= ASSIST_GRADE_MAX and h["mps"] <= TOW_MAX_MPS]
    if f.sport != "ride" or len(hills) < TOW_MIN_OTHERS + 1:
        return None
    top = max(hills, key=lambda h: h["wkg"])
    usual = float(np.median([h["wkg"] for h in hills if h is not top]))
    if top["wkg"] < TOW_MIN_WKG or top["wkg"] < TOW_RATIO * usual:
        return None
    others = len(hills) - 1
    return Hit(
        "assisted_climb",
        f"climbed {units.distance(top['metres'], digits=1)} at {top['grade']:.1%} at {units.speed(top['mps'])} "
        f"{_when(f.series, top['t0'])}, needing about {top['wkg']:.1f} W/kg, against {usual:.1f} W/kg on the "
        f"other {others} climb{'s' if others > 1 else ''} of this ride: one hill ridden "
        f"{top['wkg'] / usual:.1f} times as hard as the rest, as with a motor or a tow",
        ASSIST_SEVERITY, top["t0"], top["t1"])


def _teleport_hit(f: Features) -> Hit | None:
    """The jumps of the activity, when they add up to more than a GPS slip."""
    total = sum(tp["metres"] for tp in f.teleports)
    if total < TELEPORT_TOTAL_M:
        return None
    s = f.series
    biggest = max(f.teleports, key=lambda tp: tp["metres"])
    many = len(f.teleports)
    reason = (f"{many} jump{'s' if many > 1 else ''} of {total / 1000:.1f} km in all; the largest "
              f"{biggest['metres'] / 1000:.1f} km in {biggest['seconds']:.0f} s {_when(s, biggest['t'])}")
    return Hit("teleport", reason, 1.0 if many > 1 or total >= 1000 else 0.9, biggest["t"], biggest["t1"])


def gap_speed_limit(sport: str, seconds: float, metres: float, drop_m: float = float("nan")) -> float:
    """The fastest average speed (m/s) a runner or rider holds across a recording gap of
    ``seconds`` that ends ``metres`` away in a straight line, ``drop_m`` lower (NaN: unknown)."""
    if sport == "run":
        return held_speed(GAP_RUN_RECORD_S, seconds)
    if not np.isfinite(drop_m) or drop_m / metres > RIDE_LEVEL_MAX_DESCENT:
        return RIDE_FLAT_SPEED_MPS
    return max(held_speed(GAP_RIDE_RECORD_S, seconds), RIDE_LEVEL_SPEED_MPS)


def own_speed(s: Series) -> float:
    """The athlete's 95th-percentile 30-second speed while moving in this activity (NaN when
    it hardly moved)."""
    v = s.speed_mps[np.isfinite(s.speed_mps) & (s.speed_mps > 1.0)]
    return float(np.percentile(v, 95)) if v.size >= 60 else float("nan")


def held_own(s: Series, seconds: float) -> float:
    """The athlete's best average speed over ``seconds`` of moving time anywhere in this
    activity (stops and recording gaps left out); NaN when less than GAP_HELD_MIN_RECORDED
    times that was spent moving."""
    if s.t.size < 2:
        return float("nan")
    step = float(s.t[1] - s.t[0])
    moving = np.isfinite(s.speed_mps) & (s.speed_mps > 1.0)
    n = int(round(seconds / step))
    if n < 1 or moving.sum() * step < GAP_HELD_MIN_RECORDED * seconds:
        return float("nan")
    # Distance against moving time: each moving grid second adds what was covered in it.
    gained = np.concatenate([[0.0], np.diff(s.dist_m)])[moving]
    covered = np.concatenate([[0.0], np.cumsum(gained)])
    if n >= covered.size:
        return float("nan")
    return float(np.max(covered[n:] - covered[:-n])) / (n * step)


def _own_limit(f: Features, gap: dict, own: float) -> tuple[float, str]:
    """The fastest this athlete plausibly crossed ``gap`` (m/s), from their own pace elsewhere
    in the activity, and how a reason words it; (inf, "") where their pace says nothing: a
    gap that descends more than 1%, or a ride's gap without elevation (downhill is free speed)."""
    s = f.series
    drop = gap["ele"] - gap["ele1"]
    level = drop / gap["metres"] <= RIDE_LEVEL_MAX_DESCENT if np.isfinite(drop) else f.sport == "run"
    if not level:
        return np.inf, ""
    bounds = []
    if np.isfinite(own):
        bounds.append((GAP_OWN_FACTOR[f.sport] * own, own,
                       f"your own pace elsewhere in this {f.sport} ({units.speed(own)} for your fastest stretches)"))
    held = held_own(s, gap["seconds"]) if f.sport == "run" else float("nan")
    if np.isfinite(held) and held > 0:
        span = units.duration_short(gap["seconds"])
        bounds.append((GAP_HELD_FACTOR * held, held,
                       f"your best {span} on the move elsewhere in this {f.sport} ({units.speed(held)})"))
    if not bounds:
        return np.inf, ""
    limit, usual, words = min(bounds)
    least = (gap["metres"] - GAP_POSITION_ERROR_M) / gap["seconds"]
    return max(limit, GAP_OWN_FLOOR_MPS[f.sport]), f"{least / usual:.1f} times {words}"


def _rested(sport: str, gap: dict, least: float) -> bool:
    """Whether a runner's heart settled towards rest across ``gap`` while its straight line
    was covered at ``least`` m/s or more (limits.py, GAP_HR_*)."""
    before, after, low = gap.get("hr", math.nan), gap.get("hr1", math.nan), gap.get("hr_low", math.nan)
    if sport != "run" or not (math.isfinite(before) and math.isfinite(after) and math.isfinite(low)):
        return False
    return (gap["seconds"] >= GAP_HR_MIN_S and least >= GAP_HR_MIN_MPS
            and after <= before - GAP_HR_DROP and after <= low)


def _gap_hits(f: Features, teleported: bool) -> list[Hit]:
    """Recording gaps whose ends lie further apart than the sport's fastest athletes cover in
    the gap's time, or than this athlete moves anywhere else in the activity: the straight
    line, less the fixes' possible error, over the gap's duration is the least average speed
    held across it. The athlete's own bound is the tighter of their fastest stretches (with a
    margin) and, for a run, their best average over the gap's duration on the move elsewhere;
    it holds only where the gap is known not to descend (a run's without elevation too). A gap a
    runner's heart rested through while its straight line was covered at a jog or faster
    (``_rested``) is a reason too, whatever its speed. A gap holding a jump the teleport rule
    already reports is left to it."""
    hits = []
    noun, s = NOUN[f.sport], f.series
    own = own_speed(s)
    for gap in f.gaps:
        if teleported and any(gap["t"] <= tp["t"] and tp["t1"] <= gap["t1"] for tp in f.teleports):
            continue
        drop = gap["ele"] - gap["ele1"]
        limit = gap_speed_limit(f.sport, gap["seconds"], gap["metres"], drop)
        own_limit, own_words = _own_limit(f, gap, own)
        least = (gap["metres"] - GAP_POSITION_ERROR_M) / gap["seconds"]
        rested = _rested(f.sport, gap, least)
        if least <= min(limit, own_limit) and not rested:
            continue
        held = units.duration_short(gap["seconds"])
        start = (f"the points stop for {held} {_when(s, gap['t'])} and resume "
                 f"{units.distance(gap['metres'], digits=1)} away: at least {units.speed(least)}")
        if least > limit:
            why = f"faster than any {noun} holds for {held} (about {units.speed(limit)} at most)"
        elif least > own_limit:
            why = own_words
        else:
            why = (f"with your heart rate at {gap['hr1']:.0f} bpm, down from {gap['hr']:.0f} as the points "
                   f"stopped: it settled towards rest while the {units.distance(gap['metres'], digits=1)} "
                   "were covered, as it does sitting in a vehicle")
        hits.append(Hit("gap_speed", f"{start}, {why}", 1.0, gap["t"], gap["t1"]))
    return hits
