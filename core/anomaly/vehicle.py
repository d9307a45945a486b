"""A learned vehicle model: which stretches of a recording were driven by a motor vehicle
rather than run or ridden by a person.

The recording is cut into two-minute windows, each one row of features
(``core.anomaly.vehicle_features``: how the grid, the windows and the features are made).
The classifier reads ``MODEL_FEATURES``, chosen for what a motor does that legs cannot:
acceleration and jerk at speed, the power a tucked rider would need, the energy gained,
stop patterns, speed steadiness and cornering. The rows' speeds and heart rate are for
people to read; the classifier reads none of them. Speed alone is no evidence (a fast
descent on a bike reaches car speeds, a car in town runs at bike speeds); it enters only
through the power it costs. Slowing down needs no motor, so braking is not read either. No
drive in the training corpus carries heart rate, so a model given it could only learn that
a recorded heart rate means a person: a sensor artefact, not physiology.

A stretch is a run of at least ``MIN_WINDOWS`` consecutive windows at or above the
threshold (three minutes or more): vehicle stretches last minutes, while a single window
can be one hairpin or one glitch.

Training (``VehicleModel.train``) sees every recording at its own sampling and, where the
result is no sparser than ``MAX_AUGMENT_DT_S``, thinned to every 2nd, 3rd and 5th fix:
all real drives are logged at 1 Hz while many people's devices log every 3-5 s, and
without the thinned copies the classifier could tell the two apart by the logging rate.

Classifier: scikit-learn's GradientBoostingClassifier (200 trees of depth 3, learning rate
0.05, subsample 0.8, fixed seed; classes weighted to equal total weight; a missing value
becomes ``MISSING``, below every real value). In the grouped evaluation
(``core.anomaly.vehicle_evaluation``; 5 folds, seed 0) it found 18 of 20 drives with no
human recording flagged. HistGradientBoostingClassifier
with the same features found 19 drives but flagged 3 of 49 human recordings, its
thresholds all at the cap. Gradient boosting also predicts in a single thread:
HistGradientBoosting's OpenMP threads stall on a busy machine, and a 100-tree random
forest spent 25-35 ms on one activity's windows. ``classifier="hgb"`` keeps the
comparison reproducible.

Threshold: chosen on training data only, by an inner grouped cross-validation
(``INNER_FOLDS`` folds by recording): the lowest probability at which at most
``MAX_HUMAN_SHARE`` of the inner held-out human recordings would have a stretch, within
[``MIN_THRESHOLD``, ``MAX_THRESHOLD``]. Folds come from a CRC-32 of the group name, so
the split is the same on every run.
"""

from __future__ import annotations

import math
import os
import platform
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core.anomaly.training import REAL_POSITIVES, real_recordings
from core.anomaly.vehicle_features import FEATURES, HOP_S, WINDOW_S, Windows, track_windows
from core.tracks.formats import FORMATS, TrackFileError, load_track
from core.tracks.track import Track

MAX_AUGMENT_DT_S = 5.5
AUGMENT_STRIDES = (2, 3, 5)

# What the classifier reads: what a motor does that legs cannot. Speeds, braking and heart
# rate stay in the rows for people to read, not for the model (see the module's docstring).
MODEL_FEATURES = (
    "v_cv", "acc_up_p95", "jerk_p90", "power_mean", "power_p90", "energy_gain_p95",
    "stop_share", "stops", "launch_dv10", "dv10_max", "lat_p95",
)
MIN_WINDOWS = 2  # a stretch holds at least this many consecutive flagged windows

INNER_FOLDS = 3
MAX_HUMAN_SHARE = 0.01
MIN_THRESHOLD = 0.5
MAX_THRESHOLD = 0.995
MISSING = -1e3  # a missing value, for the trees below every real one
CLASSIFIERS = ("gb", "hgb")
GB_PARAMS = {"n_estimators": 200, "max_depth": 3, "learning_rate": 0.05, "subsample": 0.8}
HGB_PARAMS = {"max_iter": 200, "learning_rate": 0.05, "max_leaf_nodes": 15, "min_samples_leaf": 20,
              "l2_regularization": 1.0, "early_stopping": False}


# Thinned copies ------------------------------------------------------------------------


def thinned(track: Track, stride: int, offset: int = 0) -> Track:
    """The track with only every ``stride``-th point (from ``offset``): a sparser logger."""
    return track.take(np.arange(offset, len(track), stride))


def _median_dt(track: Track) -> float:
    t = track.t[np.isfinite(track.t)]
    steps = np.diff(np.sort(t))
    steps = steps[steps > 0]
    return float(np.median(steps)) if steps.size else 1.0


def _versions(track: Track) -> list[tuple[int, Track]]:
    """The track and its thinned copies no sparser than MAX_AUGMENT_DT_S, with their stride."""
    out = [(1, track)]
    dt = _median_dt(track)
    for stride in AUGMENT_STRIDES:
        if dt * stride <= MAX_AUGMENT_DT_S:
            out.append((stride, thinned(track, stride, stride // 2)))
    return out


# The model --------------------------------------------------------------------------------


@dataclass
class Rows:
    """Feature rows of labelled examples: label, group, thinning stride, which track version
    (one per example and stride) and the window's place in that version's sequence."""

    x: np.ndarray
    y: np.ndarray
    groups: np.ndarray
    stride: np.ndarray
    part: np.ndarray
    seq: np.ndarray

    def subset(self, mask: np.ndarray) -> Rows:
        return Rows(self.x[mask], self.y[mask], self.groups[mask], self.stride[mask], self.part[mask],
                    self.seq[mask])


def training_rows(examples) -> Rows:
    """The feature rows of ``(group, track, label)`` examples with their thinned copies, as
    ``VehicleModel.train`` makes them."""
    return _example_rows(examples)


def _example_rows(examples, augment: bool = True) -> Rows:
    xs, ys, gs, ss, ps, qs = [], [], [], [], [], []
    for group, track, label in examples:
        for stride, version in (_versions(track) if augment else [(1, track)]):
            w = track_windows(version)
            if not len(w.rows):
                continue
            n = len(w.rows)
            xs.append(w.rows)
            ys.append(np.full(n, int(label)))
            gs.append(np.full(n, str(group), dtype=object))
            ss.append(np.full(n, stride))
            ps.append(np.full(n, len(ps)))
            qs.append(w.seq)
    if not xs:
        empty = np.empty(0, dtype=int)
        return Rows(np.empty((0, len(FEATURES))), empty, np.empty(0, dtype=object), empty, empty, empty)
    return Rows(np.vstack(xs), np.concatenate(ys), np.concatenate(gs), np.concatenate(ss),
                np.concatenate(ps), np.concatenate(qs))


def run_scores(probs: np.ndarray, part: np.ndarray, seq: np.ndarray, min_windows: int = MIN_WINDOWS) -> np.ndarray:
    """Per window, the lowest probability over it and the next ``min_windows - 1`` windows
    of its sequence (0 where they are not consecutive): a recording has a stretch at
    threshold t exactly when one of its windows scores t or more."""
    out = probs.astype(float).copy()
    for k in range(1, min_windows):
        nxt = np.zeros(probs.size)
        if probs.size > k:
            same = (part[k:] == part[:-k]) & (seq[k:] - seq[:-k] == k)
            nxt[:-k] = np.where(same, probs[k:], 0.0)
        out = np.minimum(out, nxt)
    return out


def fold_of(group: str, folds: int, salt: str = "") -> int:
    """A group's fold from a CRC-32 of its name: the same on every run and machine."""
    return zlib.crc32(f"{salt}{group}".encode()) % folds


def _columns() -> list[int]:
    return [FEATURES.index(name) for name in MODEL_FEATURES]


def _fit(rows: Rows, seed: int, kind: str = "gb"):
    """Fit the classifier on the model's columns, classes weighted to equal total weight."""
    from sklearn.ensemble import GradientBoostingClassifier, HistGradientBoostingClassifier
    from sklearn.utils.class_weight import compute_sample_weight

    weight = compute_sample_weight("balanced", rows.y)
    x = rows.x[:, _columns()]
    if kind == "hgb":
        from threadpoolctl import threadpool_limits

        clf = HistGradientBoostingClassifier(**HGB_PARAMS, random_state=seed)
        with threadpool_limits(1, user_api="openmp"):
            clf.fit(x, rows.y, sample_weight=weight)
        return clf
    clf = GradientBoostingClassifier(**GB_PARAMS, random_state=seed)
    clf.fit(np.where(np.isfinite(x), x, MISSING), rows.y, sample_weight=weight)
    return clf


def _predict(clf, x: np.ndarray) -> np.ndarray:
    """Vehicle probabilities of rows of the model's columns."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    if isinstance(clf, HistGradientBoostingClassifier):
        from threadpoolctl import threadpool_limits

        with threadpool_limits(1, user_api="openmp"):
            return clf.predict_proba(x)[:, 1]
    return clf.predict_proba(np.where(np.isfinite(x), x, MISSING))[:, 1]


def peaks(scores: np.ndarray, groups: np.ndarray) -> dict[str, float]:
    """Each group's highest score."""
    peak: dict[str, float] = {}
    for g, p in zip(groups.tolist(), scores.tolist()):
        if p > peak.get(g, -1.0):
            peak[g] = p
    return peak


def _threshold_from(probs: np.ndarray, rows: Rows) -> float:
    """The lowest threshold at which at most MAX_HUMAN_SHARE of the human recordings have a
    stretch (MIN_WINDOWS consecutive windows) at or above it, within [MIN_THRESHOLD,
    MAX_THRESHOLD]."""
    human = rows.y == 0
    if not human.any():
        return MIN_THRESHOLD
    scores = run_scores(probs, rows.part, rows.seq)
    peak = peaks(scores[human], rows.groups[human])
    ordered = np.sort(np.array(list(peak.values())))[::-1]
    allowed = int(math.floor(MAX_HUMAN_SHARE * ordered.size))
    # Flag at most ``allowed`` recordings: sit just above the next one's highest window.
    level = float(np.nextafter(ordered[allowed], 1.0)) if allowed < ordered.size else MIN_THRESHOLD
    return float(min(max(level, MIN_THRESHOLD), MAX_THRESHOLD))


def _inner_threshold(rows: Rows, seed: int, kind: str, folds: int = INNER_FOLDS) -> float:
    """The threshold from an inner grouped cross-validation of the training rows."""
    fold = np.array([fold_of(g, folds, "inner:") for g in rows.groups])
    probs = np.full(rows.y.size, np.nan)
    for k in range(folds):
        test = fold == k
        train = rows.subset(~test)
        if not test.any() or np.unique(train.y).size < 2:
            continue
        probs[test] = _predict(_fit(train, seed, kind), rows.x[test][:, _columns()])
    ok = np.isfinite(probs)
    return _threshold_from(probs[ok], rows.subset(ok))


@dataclass
class VehicleModel:
    """A classifier of windows (vehicle against person) and its flagging threshold."""

    classifier: object
    threshold: float
    features: tuple[str, ...] = MODEL_FEATURES
    meta: dict = field(default_factory=dict)

    min_windows: int = MIN_WINDOWS

    @classmethod
    def train(cls, examples, seed: int = 0, classifier: str = "gb") -> VehicleModel:
        """Fit on ``(group, track, label)`` examples (label 1: a vehicle), with thinned
        copies; the threshold comes from an inner grouped cross-validation. ``classifier``:
        "gb" (gradient boosting, the default) or "hgb" (histogram gradient boosting)."""
        return cls.from_rows(_example_rows(examples), seed, classifier)

    @classmethod
    def from_rows(cls, rows: Rows, seed: int, kind: str = "gb") -> VehicleModel:
        import sklearn

        if kind not in CLASSIFIERS:
            raise ValueError(f"unknown classifier {kind!r}: expected one of {', '.join(CLASSIFIERS)}")
        if np.unique(rows.y).size < 2:
            raise ValueError("training needs windows of both vehicles and people")
        threshold = _inner_threshold(rows, seed, kind)
        clf = _fit(rows, seed, kind)
        meta = {
            "versions": {"python": platform.python_version(), "numpy": np.__version__,
                         "scikit-learn": sklearn.__version__},
            "params": {"classifier": kind, **(GB_PARAMS if kind == "gb" else HGB_PARAMS), "random_state": seed,
                       "class_weight": "balanced", "window_s": WINDOW_S, "hop_s": HOP_S,
                       "min_windows": MIN_WINDOWS, "features": list(MODEL_FEATURES)},
            "training": {"windows": int(rows.y.size), "vehicle_windows": int((rows.y == 1).sum()),
                         "vehicle_groups": int(np.unique(rows.groups[rows.y == 1]).size),
                         "human_groups": int(np.unique(rows.groups[rows.y == 0]).size)},
            "threshold_rule": f"inner {INNER_FOLDS}-fold grouped CV: at most {MAX_HUMAN_SHARE:.0%} of "
                              f"human recordings flagged, within [{MIN_THRESHOLD}, {MAX_THRESHOLD}]",
        }
        return cls(clf, threshold, MODEL_FEATURES, meta)

    @classmethod
    def train_without(cls, rows: Rows, groups: set, seed: int = 0, classifier: str = "gb") -> VehicleModel:
        """Fit on rows made once by ``training_rows``, leaving out every window of ``groups``
        (for cross-fitting: one set of rows, a model per fold)."""
        keep = np.array([g not in groups for g in rows.groups.tolist()], dtype=bool)
        return cls.from_rows(rows.subset(keep), seed, classifier)

    def predict_rows(self, rows: np.ndarray) -> np.ndarray:
        """The vehicle probability of each row of ``FEATURES``."""
        if not len(rows):
            return np.empty(0)
        cols = [FEATURES.index(name) for name in self.features]
        return _predict(self.classifier, rows[:, cols])

    def probabilities(self, track: Track) -> np.ndarray:
        """The vehicle probability of each window of ``stretch_features(track)``."""
        return self.predict_rows(track_windows(track).rows)

    def stretches(self, track: Track, threshold: float | None = None) -> list[dict]:
        """Runs of at least ``min_windows`` consecutive windows at or above the threshold,
        merged: each with t0, t1, metres, mean and max probability and the number of windows."""
        threshold = self.threshold if threshold is None else threshold
        w = track_windows(track)
        probs = self.predict_rows(w.rows)
        return _merge(w, probs, threshold, self.min_windows)


def _merge(w: Windows, probs: np.ndarray, threshold: float, min_windows: int = MIN_WINDOWS) -> list[dict]:
    out: list[dict] = []
    hit = np.flatnonzero(probs >= threshold)
    if not hit.size:
        return out
    # A new stretch wherever the next flagged window is not the next window in the sequence.
    breaks = np.flatnonzero(np.diff(w.seq[hit]) != 1) + 1
    for run in np.split(hit, breaks):
        if run.size < min_windows:
            continue
        first, last = int(run[0]), int(run[-1])
        p = probs[run]
        out.append({"t0": w.spans[first][0], "t1": w.spans[last][1],
                    "metres": float(w.d0[last] + w.spans[last][2] - w.d0[first]),
                    "mean_probability": float(p.mean()), "max_probability": float(p.max()),
                    "windows": int(run.size)})
    return out


# Data ---------------------------------------------------------------------------------------


def default_vehicles_dir(tracks_dir: Path | None) -> Path | None:
    """The ``vehicles`` folder beside the tracks folder when it exists, else the folder named
    by TRACKER_SHARED_VEHICLES when that exists; None otherwise."""
    if tracks_dir is not None:
        beside = Path(tracks_dir).parent / "vehicles"
        if beside.is_dir():
            return beside
    explicit = os.environ.get("TRACKER_SHARED_VEHICLES")
    if explicit and Path(explicit).is_dir():
        return Path(explicit)
    return None


def vehicle_examples(tracks_dir: Path | None, vehicles_dir: Path | None = None,
                     humans: list[tuple[str, Track]] | None = None) -> list[tuple[str, Track, int]]:
    """The drives in ``vehicles_dir`` (default: ``default_vehicles_dir``) as label 1, grouped
    by file name, and the clean runs and rides of ``real_recordings(tracks_dir)`` (or
    ``humans``, when the caller has read them already) as label 0, grouped by recording; the
    files in ``REAL_POSITIVES`` are left out (kept for evaluation)."""
    out: list[tuple[str, Track, int]] = []
    vehicles_dir = default_vehicles_dir(tracks_dir) if vehicles_dir is None else Path(vehicles_dir)
    if vehicles_dir is not None and vehicles_dir.is_dir():
        for path in sorted(vehicles_dir.iterdir()):
            if path.suffix.lower().lstrip(".") not in FORMATS or path.name in REAL_POSITIVES:
                continue
            try:
                out.append((path.name, load_track(path), 1))
            except TrackFileError:
                continue
    if humans is None and tracks_dir is not None:
        humans = real_recordings(Path(tracks_dir))
    out.extend((name, track, 0) for name, track in humans or ())
    return out

