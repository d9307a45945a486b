"""How an activity climbs, on its smoothed elevation: the fastest 5-minute climbing rate, speed
on climbs against the flat, a ride's climbing split by gradient (``climb_by_grade``) and its
climbs one by one with the power each needs (``climbs_of``). All read one gradient, taken
over the minute either side of each grid time (``gradient_around``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from core.anomaly.limits import (
    ASSIST_GRADE_MAX,
    ASSIST_GRADE_MIN,
    ASSIST_SUSTAINED_S,
    CLIMB_PARTS,
    TOW_GRADE_MIN,
    TOW_MIN_GAIN_M,
    TOW_MIN_S,
    TOW_PART_SHARE,
)
from core.anomaly.signals import RIDER_KG, steady_power, stretches

if TYPE_CHECKING:
    from core.anomaly.features import Grid

# The gradient at a grid time is read over this much either side.
HALF_WINDOW_S = 60.0


@dataclass
class Gradient:
    """The gradient over HALF_WINDOW_S either side of each grid time from ``w`` to the
    ``w``-th last (NaN where under 50 m were covered)."""

    grade: np.ndarray
    w: int

    def inner(self, values: np.ndarray) -> np.ndarray:
        """``values`` on the grid times the gradient covers."""
        return values[self.w:values.size - self.w]


def gradient_around(g: Grid, ele_g: np.ndarray) -> Gradient:
    w = max(1, int(HALF_WINDOW_S / g.step))
    if ele_g.size <= 2 * w:
        return Gradient(np.zeros(0), w)
    rise = ele_g[2 * w:] - ele_g[:-2 * w]
    run_m = g.dist_grid[2 * w:] - g.dist_grid[:-2 * w]
    with np.errstate(divide="ignore", invalid="ignore"):
        return Gradient(np.where(run_m > 50, rise / run_m, np.nan), w)


def climbing_features(g: Grid, ele_g: np.ndarray, gradient: Gradient) -> dict[str, float]:
    """The fastest 5-minute climbing rate, and speed on climbs against speed on the flat."""
    values = {}
    step = g.step
    win = max(1, int(300 / step))
    if ele_g.size > win:
        climb = np.nan_to_num(ele_g[win:] - ele_g[:-win])
        values["vam_5min"] = float(max(climb.max(), 0.0) / (win * step) * 3600.0)
    # Speed on climbs against speed on the flat: legs slow right down uphill, motors don't.
    grade = gradient.grade
    if grade.size:
        v_mid = gradient.inner(g.speed30)
        ok = gradient.inner(g.moving) & np.isfinite(grade)
        climbing = ok & (grade > 0.03)
        flat = ok & (np.abs(grade) < 0.01)
        if climbing.sum() * step >= 120 and flat.sum() * step >= 120:
            values["climb_flat_ratio"] = float(np.median(v_mid[climbing]) / max(np.median(v_mid[flat]), 0.1))
    return values


def climb_by_grade(g: Grid, gradient: Gradient) -> dict | None:
    """A ride's climbing split by gradient: the median gradient and speed of its steepest and
    its gentlest quarter, and the seconds climbed in all; None without climbing. Climbing is
    every grid time whose gradient is ASSIST_GRADE_MIN to ASSIST_GRADE_MAX, moving, in a run of
    such times lasting ASSIST_SUSTAINED_S (a climb, not a kick carried up on momentum or a
    wobble of the altitude); its speed is the average over the same two minutes as its
    gradient."""
    grade, w = gradient.grade, gradient.w
    if not grade.size:
        return None
    v = (g.dist_grid[2 * w:] - g.dist_grid[:-2 * w]) / (2 * w * g.step)
    ok = gradient.inner(g.moving) & np.isfinite(grade) & (grade >= ASSIST_GRADE_MIN) & (grade <= ASSIST_GRADE_MAX)
    sustained = np.zeros_like(ok)
    for a, b in stretches(ok, int(np.ceil(ASSIST_SUSTAINED_S / g.step))):
        sustained[a:b] = True
    if sustained.sum() < 8:
        return None
    gr, vv = grade[sustained], v[sustained]
    low, high = np.percentile(gr, [25, 75])
    steep, gentle = gr >= high, gr <= low
    return {"seconds": float(sustained.sum() * g.step),
            "steep_grade": float(np.median(gr[steep])), "steep_mps": float(np.median(vv[steep])),
            "gentle_grade": float(np.median(gr[gentle])), "gentle_mps": float(np.median(vv[gentle]))}


def climbs_of(g: Grid, ele_g: np.ndarray, gradient: Gradient) -> list[dict]:
    """A ride's climbs: stretches whose gradient is TOW_GRADE_MIN or more for TOW_MIN_S,
    gaining TOW_MIN_GAIN_M and at least TOW_PART_SHARE of it in every quarter of their time
    (CLIMB_PARTS), each with its time, length, gain, average gradient and speed, and the
    steady power (W/kg) those need (``signals.steady_power``)."""
    if not gradient.grade.size:
        return []
    w = gradient.w
    out = []
    for a, b in stretches(np.nan_to_num(gradient.grade) >= TOW_GRADE_MIN, 1):
        a, b = a + w, b + w
        seconds = float(g.grid[b - 1] - g.grid[a])
        metres = float(g.dist_grid[b - 1] - g.dist_grid[a])
        gain = float(ele_g[b - 1] - ele_g[a])
        if seconds < TOW_MIN_S or gain < TOW_MIN_GAIN_M or metres <= 0 or not np.isfinite(gain):
            continue
        cuts = np.linspace(a, b - 1, CLIMB_PARTS + 1).round().astype(int)
        if any(ele_g[j] - ele_g[i] < TOW_PART_SHARE * gain for i, j in zip(cuts, cuts[1:])):
            continue  # an altitude step, not a climb
        mps, gradient_ = metres / seconds, gain / metres
        out.append({"t0": float(g.grid[a]), "t1": float(g.grid[b - 1]), "seconds": seconds, "metres": metres,
                    "gain": gain, "grade": gradient_, "mps": mps,
                    "wkg": steady_power(mps, gradient_) / RIDER_KG})
    return out
