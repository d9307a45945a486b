"""Per-second signals under the features: moving averages, best windows, speed on a regular
grid, smoothed elevation, a ride's estimated power, the best efforts over set distances and
the fastest speed held for a given time."""

from __future__ import annotations

import math

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from core.tracks.stats import BEST_EFFORT_DISTANCES_M

# Rider and bike (kg), rolling resistance, drag area (m^2), air density: a solo road rider.
RIDER_KG = 75.0
SYSTEM_KG = 85.0
CRR = 0.005
CDA_M2 = 0.35
RHO = 1.2
G = 9.81
POWER_WINDOWS_S = (15, 60, 300, 1200)
# Descending faster than this grade, a ride's speed says nothing about the rider.
RIDE_DESCENT_GRADE = -0.02
# An elevation step: STEP_MIN_M or more up or down at over STEP_VERTICAL_MPS (a car up a 10%
# road at 100 km/h rises 2.8 m/s, a rider down a mountain pass falls about 2), to a level that
# holds (a straight line through the STEP_HOLD_S after it starts within STEP_HOLD_SHARE of the
# step from one through the STEP_HOLD_S before it, and their gradients differ by no more than
# that share of the step over STEP_HOLD_S): an altimeter recalibrating, or a switch between
# GPS and barometric altitude.
STEP_VERTICAL_MPS = 4.0
STEP_MIN_M = 25.0
STEP_HOLD_S = 20.0
STEP_HOLD_SHARE = 0.3


def rolling_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average over ``window`` samples, NaN-aware (NaN where none is valid)."""
    ok = np.isfinite(x)
    values = np.where(ok, x, 0.0)
    kernel = np.ones(window)
    total = np.convolve(values, kernel, mode="same")
    count = np.convolve(ok.astype(float), kernel, mode="same")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count >= window * 0.6, total / count, np.nan)


def best_window(x: np.ndarray, window: int) -> tuple[float, int]:
    """The best mean of ``x`` over any full window of samples (NaNs count as zero), and the
    index where that window starts; (NaN, -1) when ``x`` is shorter than the window."""
    if window < 1 or x.size < window:
        return math.nan, -1
    cs = np.concatenate([[0.0], np.cumsum(np.nan_to_num(x))])
    means = (cs[window:] - cs[:-window]) / window
    k = int(np.argmax(means))
    return float(means[k]), k


def grid_speed(t: np.ndarray, dist: np.ndarray, grid: np.ndarray, window_s: float) -> np.ndarray:
    """Speed (m/s) at each grid time over a centred window of ``window_s`` seconds."""
    half = window_s / 2.0
    ahead = np.interp(grid + half, t, dist)
    behind = np.interp(grid - half, t, dist)
    return (ahead - behind) / window_s


def best_efforts(t: np.ndarray, dist: np.ndarray, ele: np.ndarray | None, sport: str) -> dict[int, dict]:
    """Fastest wall-clock time over each effort distance (rides: not downhill)."""
    out = {}
    for metres in BEST_EFFORT_DISTANCES_M:
        if dist.size < 2 or dist[-1] < metres:
            continue
        ends = np.flatnonzero(dist >= metres)
        start_d = dist[ends] - metres
        started = np.interp(start_d, dist, t)
        seconds = t[ends] - started
        ok = seconds > 0
        if sport == "ride" and ele is not None:
            climb = ele[ends] - np.interp(start_d, dist, ele)
            ok &= climb / metres >= RIDE_DESCENT_GRADE
        if not ok.any():
            continue
        k = int(np.argmin(np.where(ok, seconds, np.inf)))
        out[metres] = {"seconds": float(seconds[k]), "t0": float(started[k]), "t1": float(t[ends[k]])}
    return out


def smooth_elevation(t: np.ndarray, ele: np.ndarray, grid: np.ndarray) -> np.ndarray | None:
    """Elevation on the grid with its spikes, steps and noise taken out; None when too little
    was recorded. A 9 s median removes barometer and GPS spikes. A step (``_without_steps``:
    an altimeter recalibrating, a switch between GPS and barometric altitude) is no road: it
    is taken out, so the elevation after it is read relative to the elevation before it. A
    60 s mean smooths the rest."""
    ok = np.isfinite(ele)
    if ok.sum() < max(10, 0.8 * ele.size):
        return None
    g = np.interp(grid, t[ok], ele[ok])
    if g.size >= 9:
        med = np.median(sliding_window_view(np.pad(g, 4, mode="edge"), 9), axis=1)
    else:
        med = g
    return rolling_mean(_without_steps(grid, med), 61)


def _without_steps(grid: np.ndarray, ele: np.ndarray) -> np.ndarray:
    """``ele`` with its steps taken out: a change of STEP_MIN_M or more at over
    STEP_VERTICAL_MPS to a level that holds after it. GPS altitude that jumps a few metres
    and comes back is noise, left to the smoothing."""
    if ele.size < 3:
        return ele
    fast = np.abs(np.diff(ele)) / np.maximum(np.diff(grid), 1e-9) > STEP_VERTICAL_MPS
    if not fast.any():
        return ele
    step_s = float(np.median(np.diff(grid)))
    hold = max(1, int(STEP_HOLD_S / step_s))
    out = ele.copy()
    for a, b in stretches(fast, 1):  # the step runs from grid index a to b
        jump = float(ele[b] - ele[a])
        if abs(jump) < STEP_MIN_M or a < 1:
            continue
        # The levels either side, each from a straight line through the STEP_HOLD_S beside
        # the step (the road may climb or fall there): how far the step moved it for good.
        lo, hi = max(0, a - hold), min(ele.size, b + 1 + hold)
        if a + 1 - lo < 5 or hi - b < 5:
            continue
        x = grid - grid[a]  # seconds from the step: epoch times would make the fit ill-conditioned
        left = np.polyfit(x[lo:a + 1], ele[lo:a + 1], 1)
        right = np.polyfit(x[b:hi], ele[b:hi], 1)
        moved = np.polyval(right, x[b]) - np.polyval(left, 0.0)
        # ... and the road goes on as before it (a fix that dips and climbs back is noise).
        bent = abs(right[0] - left[0]) * STEP_HOLD_S
        if abs(moved - jump) <= STEP_HOLD_SHARE * abs(jump) and bent <= STEP_HOLD_SHARE * abs(jump):
            out[b:] -= jump
    return out


def ride_power(speed: np.ndarray, ele: np.ndarray, step: float) -> np.ndarray:
    """Estimated rider power (W) from speed, gradient and acceleration; NaN where unknown."""
    v = np.nan_to_num(speed)
    ds = np.maximum(v * step, 0.5)
    grade = np.clip(np.gradient(np.nan_to_num(ele), step) * step / ds, -0.2, 0.2)
    grade = np.where(v > 1.0, grade, 0.0)
    accel = np.gradient(rolling_mean(speed, max(1, int(10 / step))), step)
    p = (SYSTEM_KG * G * v * (grade + CRR) + 0.5 * RHO * CDA_M2 * v ** 3
         + SYSTEM_KG * np.nan_to_num(accel) * v)
    p = np.clip(p, 0.0, None)
    return np.where(np.isfinite(speed), p, np.nan)


def stretches(mask: np.ndarray, min_len: int) -> list[tuple[int, int]]:
    """[start, end) index ranges where ``mask`` holds for at least ``min_len`` samples."""
    if not mask.any():
        return []
    edges = np.diff(np.concatenate([[0], mask.astype(np.int8), [0]]))
    starts, ends = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    return [(int(a), int(b)) for a, b in zip(starts, ends) if b - a >= min_len]


def steady_power(speed: float, grade: float) -> float:
    """A rider's power (W) at a steady ``speed`` (m/s) up ``grade``: climbing, rolling, air."""
    return SYSTEM_KG * G * speed * (grade + CRR) + 0.5 * RHO * CDA_M2 * speed ** 3


def speed_at_power(power: float, grade: float) -> float:
    """The steady speed (m/s) that ``power`` (W) holds up ``grade``: the positive root of
    ``steady_power(v, grade) = power``; 0 when either is not a finite number."""
    if not (math.isfinite(power) and math.isfinite(grade)):
        return 0.0
    roots = np.roots([0.5 * RHO * CDA_M2, 0.0, SYSTEM_KG * G * (grade + CRR), -power])
    real = roots[np.isreal(roots)].real
    return float(real[real > 0].max()) if (real > 0).any() else 0.0


def held_speed(records_s: dict[float, float], seconds: float) -> float:
    """The fastest average speed (m/s) held for ``seconds``, from records (metres -> seconds):
    interpolated in log duration between them, the nearest record's speed outside them."""
    durations = np.array(sorted(records_s.values()))
    speeds = np.array([metres / records_s[metres] for metres in sorted(records_s, key=records_s.get)])
    return float(np.interp(math.log(max(seconds, 1e-3)), np.log(durations), speeds))


def recorded_elevation(t: np.ndarray, ele: np.ndarray, grid: np.ndarray, gap_s: float) -> np.ndarray:
    """Grid times whose elevation was measured: between two fixes with elevation no more than
    ``gap_s`` apart (elsewhere the smoothed elevation is only drawn across a hole)."""
    te = t[np.isfinite(ele)]
    if te.size < 2:
        return np.zeros(grid.size, dtype=bool)
    after = np.clip(np.searchsorted(te, grid, side="left"), 1, te.size - 1)
    return (grid >= te[0]) & (grid <= te[-1]) & (te[after] - te[after - 1] <= gap_s)


def best_climbs(grid: np.ndarray, ele: np.ndarray, recorded: np.ndarray, windows_s,
                parts: int, part_share: float) -> dict[int, dict]:
    """The most metres gained over each window of seconds on the smoothed elevation grid
    ``ele``: only windows recorded throughout, and whose ``parts`` equal parts each gain at
    least ``part_share`` of the climb (a step in the altitude gains it all at once)."""
    out = {}
    step = float(grid[1] - grid[0]) if grid.size > 1 else 1.0
    holes = np.concatenate([[0], np.cumsum(~(recorded & np.isfinite(ele)))])
    for seconds in windows_s:
        n = int(round(seconds / step))
        if n < parts or ele.size <= n:
            continue
        m = ele.size - n  # windows [k, k + n] for k < m
        rise = ele[n:] - ele[:-n]
        ok = (holes[n + 1:] - holes[:-n - 1] == 0) & np.isfinite(rise)
        cuts = [round(j * n / parts) for j in range(parts + 1)]
        for a, b in zip(cuts, cuts[1:]):
            ok &= ele[b:b + m] - ele[a:a + m] >= part_share * rise
        rise = np.where(ok, rise, -np.inf)
        k = int(np.argmax(rise))
        if rise[k] > 0:
            out[int(seconds)] = {"metres": float(rise[k]), "t0": float(grid[k]), "t1": float(grid[k + n])}
    return out


def displacement_speed(grid: np.ndarray, t: np.ndarray, x: np.ndarray, y: np.ndarray, window_s: float) -> np.ndarray:
    """Speed (m/s) at each grid time from the straight line between the positions half a
    window either side: GPS jitter at a standstill adds path length, not displacement."""
    half = window_s / 2.0
    dx = np.interp(grid + half, t, x) - np.interp(grid - half, t, x)
    dy = np.interp(grid + half, t, y) - np.interp(grid - half, t, y)
    return np.hypot(dx, dy) / window_s


def launches(t: np.ndarray, speed: np.ndarray, still: np.ndarray, dist: np.ndarray, ele: np.ndarray | None,
             to_mps: float, within_s: float, hold_s: float, windows_s=(3, 5, 8)) -> list[dict]:
    """Pull-aways from a standstill: each time the athlete leaves a stop (``still``, per grid
    second) and ``speed`` (a per-second grid, NaN in gaps) reaches ``to_mps`` within
    ``within_s`` seconds and stays above 80% of it for ``hold_s`` more. Each launch has its start, the speed reached, the
    seconds it took, and the least power per kilogram of rider it needs: the most, over
    windows of ``windows_s`` seconds inside it, of the kinetic energy gained less what a
    descent gave (a climb's height is never counted: noise in the elevation would read as
    power), plus rolling resistance and air drag, per second."""
    out = []
    if speed.size < 3:
        return out
    step = float(t[1] - t[0])
    v = np.nan_to_num(speed, nan=-1.0)
    stopped = still & (v >= 0)
    starts = np.flatnonzero(stopped[:-1] & ~stopped[1:] & (v[1:] >= 0)) + 1
    kinetic = 0.5 * SYSTEM_KG * np.maximum(v, 0.0) ** 2
    height = np.nan_to_num(ele) * SYSTEM_KG * G if ele is not None else np.zeros(v.size)
    reach, hold = int(within_s / step), int(hold_s / step)
    for a in starts:
        ahead = v[a:a + reach + 1]
        fast = np.flatnonzero(ahead >= to_mps)
        if not fast.size or (ahead[:fast[0]] < 0).any():
            continue
        b = a + int(fast[0])
        # Set off at the last second under 1 m/s before reaching speed (a stop's edge is blurred).
        slow = np.flatnonzero((v[max(a - 6, 0):b] >= 0) & (v[max(a - 6, 0):b] < 1.0))
        a = max(a - 6, 0) + int(slow[-1]) if slow.size else a
        after = v[b:b + hold + 1]
        if after.size <= hold or (after < 0.8 * to_mps).any():
            continue
        best = 0.0
        for w in windows_s:
            n = max(1, int(round(w / step)))
            lo, hi = max(a - 1, 0), b + 1
            if hi - lo <= n:
                n = hi - lo - 1
            if n < 1:
                continue
            gain = kinetic[lo + n:hi] - kinetic[lo:hi - n]
            fall = np.minimum(height[lo + n:hi] - height[lo:hi - n], 0.0)
            mean_v = 0.5 * (np.maximum(v[lo + n:hi], 0) + np.maximum(v[lo:hi - n], 0))
            watts = (np.maximum(gain + fall, 0.0) / (n * step) + SYSTEM_KG * G * CRR * mean_v
                     + 0.5 * RHO * CDA_M2 * mean_v ** 3)
            if watts.size:
                best = max(best, float(watts.max()))
        out.append({"t0": float(t[a]), "t1": float(t[b]), "metres": float(dist[a]), "speed": float(v[b:b + hold + 1].max()),
                    "seconds": float((b - a) * step), "wkg": best / RIDER_KG})
    return out
