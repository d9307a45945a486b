"""Features of one activity, the single function both training and scoring call.

Everything is measured on the cleaned track (the cleaner already drops single-fix spikes
that jump out and come back) against the wall clock, not moving time: a pause can only
make an effort slower, never faster. The track is put on a regular one-second grid so
windows of a given length mean the same on a 1 s and a 5 s logger.

Alongside the named numbers that the models see, the result keeps the per-second series
(speed, estimated power, position) so rules can name the stretch they object to and the
moderators' page can draw it, the recording gaps whose ends lie far apart (a gap's
distance and time count nowhere else: see ``gaps``), and the most metres climbed over each
window the climbing-rate rule reads (``climbs``, on the same smoothed elevation).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

import numpy as np

from core.activities.tables import SPORTS
from core.anomaly.climbing import climb_by_grade, climbing_features, climbs_of, gradient_around
from core.anomaly.gaps import TELEPORT_MIN_M, TELEPORT_SPEED_FACTOR, gaps, jumps
from core.anomaly.limits import (
    CLIMB_PART_SHARE,
    CLIMB_PARTS,
    CLIMB_RATE_LIMIT_M_PER_H,
    LAUNCH_HOLD_S,
    LAUNCH_STOP_MPS,
    LAUNCH_TO_MPS,
    LAUNCH_WITHIN_S,
    WORLD_RECORD_S,
)
from core.anomaly.signals import (
    RIDER_KG,
    best_climbs,
    best_efforts,
    best_window,
    displacement_speed,
    grid_speed,
    launches,
    recorded_elevation,
    ride_power,
    rolling_mean,
    smooth_elevation,
)
from core.tracks.cleaning import MAX_SPEED_MPS, CleanTrack, clean_track
from core.tracks.geo import local_xy, segment_lengths_m
from core.tracks.stats import pause_gap_s
from core.tracks.track import Track

GRID_MAX_POINTS = 60_000
MOVING_MPS = {"run": 1.0, "ride": 2.0}


@dataclass
class Series:
    """Per-second series of an activity (for rules and drawing)."""

    t: np.ndarray  # Unix seconds
    lat: np.ndarray
    lon: np.ndarray
    dist_m: np.ndarray  # cumulative, teleports excluded
    speed_mps: np.ndarray  # 30 s centred window, NaN inside recording gaps
    power_w: np.ndarray | None  # rides with elevation only
    ele: np.ndarray | None  # smoothed elevation, when recorded


@dataclass
class Features:
    """Named numbers for the models, plus the series and jumps the rules read."""

    sport: str
    values: dict[str, float]
    series: Series | None
    teleports: list[dict] = field(default_factory=list)
    efforts: dict[int, dict] = field(default_factory=dict)  # metres -> {seconds, t0, t1}
    gaps: list[dict] = field(default_factory=list)  # recording gaps ending GAP_MIN_M or more away
    climbs: dict[int, dict] = field(default_factory=dict)  # seconds -> {metres, t0, t1}: most gained
    launches: list[dict] = field(default_factory=list)  # rides: pull-aways from a standstill
    # Rides: speed on the steepest and the gentlest quarter of the climbing (``climb_by_grade``).
    grades: dict | None = None
    hills: list[dict] = field(default_factory=list)  # rides: each climb and the power it needs

    @property
    def usable(self) -> bool:
        """Whether the track holds enough GPS to judge (a minute and a dozen fixes)."""
        return self.series is not None


# The names the models read, in a fixed order (NaN where a sensor is missing).
MODEL_FEATURES = (
    "log_avg_speed", "log_v50", "log_v90", "log_v99", "wr_400", "wr_1000", "wr_5000",
    "accel_p99", "accel_std", "jerk_std", "launches_per_h", "fast_cv", "share_fast",
    "lat_accel_p95", "log_median_dt", "teleport_km", "vam_5min", "wkg_60",
    "wkg_300", "wkg_1200", "m_per_beat", "hr_speed_corr", "stride_m", "climb_flat_ratio",
)


def reference_speed(sport: str, metres: int) -> float | None:
    """World-record speed (m/s) for a distance: the fastest any athlete has covered it."""
    seconds = WORLD_RECORD_S.get(sport, {}).get(metres)
    return metres / seconds if seconds else None


def track_features(track: Track, sport: str, now: float | None = None, pauses=()) -> Features:
    """Clean a raw track and extract its features as ``sport``: what scoring, training and
    the evaluation all call. ``pauses`` are the (start, end) times the athlete paused the
    recording (a crop's removed range among them): a gap across one is no reason to flag.

    Cleaned with the ride's glitch limit whatever the sport: a run's limit would cut a
    stop-and-go drive into "spikes" and hide it; glitches beyond 108 km/h still go.
    """
    clean = clean_track(replace(track, sport="ride"), now=now)
    features = extract(clean, sport, pauses)
    if features.usable:
        # Jumps are judged on every valid fix: the spike filter would smear a spoofed
        # location that stays put for a while into a run of "reachable" steps.
        fixes = clean_track(track, now=now, spikes=False)
        features.teleports = jumps(fixes.t, fixes.lat, fixes.lon, features.sport)
        features.values["teleport_km"] = sum(tp["metres"] for tp in features.teleports) / 1000.0
    return features


@dataclass
class Grid:
    """A cleaned track on its regular grid: what every feature group reads."""

    t: np.ndarray
    lat: np.ndarray
    lon: np.ndarray
    dts: np.ndarray  # seconds between fixes
    gap: float  # a step longer than this is a recording gap
    dist: np.ndarray  # cumulative metres at each fix, jumps and gaps excluded
    span: float  # seconds from first fix to last
    step: float  # grid spacing in seconds
    grid: np.ndarray  # Unix seconds
    speed30: np.ndarray  # 30 s centred speed on the grid, NaN inside gaps
    speed6: np.ndarray  # 6 s centred speed on the grid, NaN inside gaps
    speed3: np.ndarray  # 3 s centred speed on the grid, NaN inside gaps (pull-aways)
    moving: np.ndarray  # grid seconds moving faster than a walk (or a slow roll)
    dist_grid: np.ndarray  # cumulative metres at each grid time


def extract(clean: CleanTrack, sport: str | None = None, pauses=()) -> Features:
    """Compute every feature of a cleaned track, judged as ``sport`` (default: its own);
    ``pauses`` (start, end) only take the gaps across them out of ``gaps``."""
    sport = sport or clean.sport
    sport = sport if sport in SPORTS else "ride" if sport == "other" else "run"
    # gap_share is shown, not modelled: recording gaps are a device's doing, not a cheat.
    # w_per_beat is for the athlete's own history only (fitness varies too much between people).
    values = {name: math.nan for name in MODEL_FEATURES} | {"gap_share": math.nan, "w_per_beat": math.nan}
    if clean.t.size < 12 or clean.t[-1] - clean.t[0] < 60:
        return Features(sport, values, None)
    g = _on_grid(clean, sport)
    ele_g = smooth_elevation(g.t, clean.ele, g.grid)
    ele_pts = np.interp(g.t, g.grid, ele_g) if ele_g is not None else None
    efforts = best_efforts(g.t, g.dist, ele_pts, sport)

    values.update(_speed_features(g, efforts, sport))
    values.update(_acceleration_features(g))
    values.update(_launch_features(g, sport))
    values.update(_cornering_features(g, sport))
    values.update(_sampling_features(g))
    power = None
    climbs = {}
    pulls = []
    grades = None
    hills = []
    if sport == "ride" and g.step == 1.0:
        # Stops and pull-aways from displacement: standing still, jitter adds path, not distance.
        x, y = local_xy(g.lat, g.lon)
        v3 = displacement_speed(g.grid, g.t, x, y, 3.0)
        v3[np.isnan(g.speed3)] = np.nan
        still = displacement_speed(g.grid, g.t, x, y, 6.0) < LAUNCH_STOP_MPS
        pulls = launches(g.grid, v3, still, g.dist_grid, ele_g, LAUNCH_TO_MPS, LAUNCH_WITHIN_S,
                         LAUNCH_HOLD_S)
    if ele_g is not None:
        grade = gradient_around(g, ele_g)
        values.update(climbing_features(g, ele_g, grade))
        # The steepest climbs for the climbing-rate rule, on the same smoothed elevation.
        climbs = best_climbs(g.grid, ele_g, recorded_elevation(g.t, clean.ele, g.grid, g.gap),
                             sorted(CLIMB_RATE_LIMIT_M_PER_H), CLIMB_PARTS, CLIMB_PART_SHARE)
        if sport == "ride":
            power = ride_power(g.speed30, ele_g, g.step)
            values.update(_power_features(power, g.step))
            grades = climb_by_grade(g, grade)
            hills = climbs_of(g, ele_g, grade)
    values.update(_heart_features(g, clean.hr, power))
    if sport == "run":
        values.update(_cadence_features(g, clean.cad))

    series = Series(g.grid, np.interp(g.grid, g.t, g.lat), np.interp(g.grid, g.t, g.lon),
                    g.dist_grid, g.speed30, power, ele_g)
    return Features(sport, values, series, efforts=efforts, gaps=gaps(g.t, g.lat, g.lon, clean.ele, g.gap, pauses, clean.hr),
                    climbs=climbs, launches=pulls, grades=grades,
                    hills=hills)


def _on_grid(clean: CleanTrack, sport: str) -> Grid:
    """Distance without jumps and gaps, and the speeds on a regular grid (every second, or
    coarser so that it holds at most GRID_MAX_POINTS points)."""
    t, lat, lon = clean.t, clean.lat, clean.lon
    vmax = MAX_SPEED_MPS[sport]
    steps = segment_lengths_m(lat, lon)
    dts = np.diff(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        implied = steps / dts
    # Jumps (listed by ``jumps`` from every valid fix) are no distance the athlete covered.
    jump = (steps >= TELEPORT_MIN_M) & (implied > TELEPORT_SPEED_FACTOR * vmax)
    gap = pause_gap_s(t)
    # A recording gap is neither moving time nor distance here: nobody saw how it was
    # crossed (a cropped-out drive leaves one), and speeds only count what was recorded.
    steps = np.where(jump | (dts > gap), 0.0, steps)
    dist = np.concatenate([[0.0], np.cumsum(steps)])

    span = float(t[-1] - t[0])
    step = max(1.0, math.ceil(span / GRID_MAX_POINTS))
    grid = np.arange(t[0], t[-1] + step / 2, step)
    # Grid seconds inside a recording gap: unknown, not "moving at the average speed".
    after = np.clip(np.searchsorted(t, grid, side="right"), 1, t.size - 1)
    in_gap = dts[after - 1] > gap
    speed30 = grid_speed(t, dist, grid, 30.0)
    speed30[in_gap] = np.nan
    speed6 = grid_speed(t, dist, grid, 6.0)
    speed6[in_gap] = np.nan
    speed3 = grid_speed(t, dist, grid, 3.0)
    speed3[in_gap] = np.nan
    moving = np.isfinite(speed30) & (speed30 > MOVING_MPS[sport])
    return Grid(t, lat, lon, dts, gap, dist, span, step, grid, speed30, speed6, speed3, moving,
                np.interp(grid, t, dist))


def _moving_s(g: Grid) -> float:
    return float(g.moving.sum() * g.step)


def _speed_features(g: Grid, efforts: dict[int, dict], sport: str) -> dict[str, float]:
    """Average and percentile speeds while moving; best efforts against the world record."""
    values = {}
    moving_s = _moving_s(g)
    if moving_s >= 30 and g.dist[-1] > 50:
        v = g.speed30[g.moving]
        values["log_avg_speed"] = math.log(max(g.dist[-1] / moving_s, 0.1))
        p50, p90, p99 = np.percentile(v, [50, 90, 99])
        values["log_v50"] = math.log(max(p50, 0.1))
        values["log_v90"] = math.log(max(p90, 0.1))
        values["log_v99"] = math.log(max(p99, 0.1))
    for metres in (400, 1000, 5000):
        ref = reference_speed(sport, metres)
        if metres in efforts and ref:
            values[f"wr_{metres}"] = (metres / efforts[metres]["seconds"]) / ref
    return values


def _acceleration_features(g: Grid) -> dict[str, float]:
    """Acceleration and jerk from the 6 s speed, smoothed again over 5 s."""
    values = {}
    accel = np.gradient(rolling_mean(g.speed6, max(1, int(5 / g.step))), g.step)
    jerk = np.gradient(accel, g.step)
    a_mov = np.abs(accel[g.moving & np.isfinite(accel)])
    if a_mov.size >= 30:
        values["accel_p99"] = float(np.percentile(a_mov, 99))
        values["accel_std"] = float(np.std(accel[g.moving & np.isfinite(accel)]))
        j = jerk[g.moving & np.isfinite(jerk)]
        values["jerk_std"] = float(np.std(j)) if j.size else math.nan
    return values


def _launch_features(g: Grid, sport: str) -> dict[str, float]:
    """Launches (from standing to vehicle-like speed within 20 s) and time at that speed."""
    values = {}
    fast = {"run": 7.0, "ride": 14.0}[sport]
    lag = max(1, int(20 / g.step))
    if g.speed6.size > lag:
        slow_then = np.nan_to_num(g.speed6[:-lag], nan=99.0) < 1.0
        fast_now = np.nan_to_num(g.speed6[lag:]) > fast
        launches = np.flatnonzero(slow_then & fast_now)
        count = int((np.diff(launches) > lag).sum() + 1) if launches.size else 0
        values["launches_per_h"] = count / max(g.span / 3600.0, 0.25)
    fast_mask = g.moving & (np.nan_to_num(g.speed30) > fast)
    values["share_fast"] = float(fast_mask.sum() / max(g.moving.sum(), 1))
    if fast_mask.sum() >= 30:
        v6 = g.speed6[fast_mask]
        values["fast_cv"] = float(np.nanstd(v6) / max(np.nanmean(v6), 0.1))
    return values


def _cornering_features(g: Grid, sport: str) -> dict[str, float]:
    """Cornering: lateral acceleration v * turn rate over 10 s headings."""
    values = {}
    x, y = local_xy(g.lat, g.lon)
    gx, gy = np.interp(g.grid, g.t, x), np.interp(g.grid, g.t, y)
    w = max(1, int(5 / g.step))
    if gx.size > 2 * w + 2:
        heading = np.unwrap(np.arctan2(gy[2 * w:] - gy[:-2 * w], gx[2 * w:] - gx[:-2 * w]))
        turn = np.gradient(heading, g.step)
        v_mid = g.speed6[w:-w]
        lateral = np.abs(turn * v_mid)
        sel = np.isfinite(lateral) & (np.nan_to_num(v_mid) > MOVING_MPS[sport] * 2)
        if sel.sum() >= 30:
            values["lat_accel_p95"] = float(np.percentile(lateral[sel], 95))
    return values


def _sampling_features(g: Grid) -> dict[str, float]:
    """How often the device logged, and the share of time lost in recording gaps."""
    dts = g.dts
    median_dt = float(np.median(dts[dts > 0])) if (dts > 0).any() else 1.0
    return {"log_median_dt": math.log(max(median_dt, 0.1)), "gap_share": float(dts[dts > g.gap].sum() / g.span)}


def _power_features(power: np.ndarray, step: float) -> dict[str, float]:
    """A ride's best estimated 1-, 5- and 20-minute power per kilogram."""
    values = {}
    for seconds in (60, 300, 1200):
        window = max(1, int(seconds / step))
        values[f"wkg_{seconds}"] = best_window(power, window)[0] / RIDER_KG
    return values


def _heart_features(g: Grid, hr: np.ndarray, power: np.ndarray | None) -> dict[str, float]:
    """Distance (and estimated watts) per heartbeat, and how heart rate follows speed."""
    values = {}
    hr_ok = np.isfinite(hr) & (hr > 40) & (hr < 230)
    if hr_ok.sum() >= max(30, 0.5 * hr.size) and _moving_s(g) > 60:
        hr_g = np.interp(g.grid, g.t[hr_ok], hr[hr_ok])
        both = g.moving & np.isfinite(g.speed30)
        if both.sum() >= 60:
            values["m_per_beat"] = float(np.mean(g.speed30[both]) * 60.0 / np.mean(hr_g[both]))
            if power is not None:
                # Estimated watts per heartbeat: a motor adds watts the heart never paid for.
                values["w_per_beat"] = float(np.nanmean(power[both]) / np.mean(hr_g[both]))
            if np.std(hr_g[both]) > 0 and np.std(g.speed30[both]) > 0:
                values["hr_speed_corr"] = float(np.corrcoef(hr_g[both], g.speed30[both])[0, 1])
    return values


def _cadence_features(g: Grid, cad: np.ndarray) -> dict[str, float]:
    """A run's stride length from speed and step rate."""
    values = {}
    cad_ok = np.isfinite(cad) & (cad > 20)
    if cad_ok.sum() >= max(30, 0.5 * cad.size):
        cad_g = np.interp(g.grid, g.t[cad_ok], cad[cad_ok])
        # Some devices count one foot (strides per minute): about half a runner's step rate.
        if np.median(cad_g) < 120:
            cad_g = cad_g * 2
        both = g.moving & np.isfinite(g.speed30)
        if both.sum() >= 60:
            values["stride_m"] = float(np.median(g.speed30[both] * 60.0 / cad_g[both]))
    return values


def vector(features: Features) -> np.ndarray:
    """The model's input row (NaN where a value is missing)."""
    return np.array([features.values.get(name, math.nan) for name in MODEL_FEATURES], dtype=float)
