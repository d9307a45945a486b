"""The population model, the athlete's baseline, and how they combine with the rules.

- Population: one scikit-learn IsolationForest per sport over the features of many
  activities (robust-scaled, missing sensors filled with the population's median). Its
  anomaly score becomes a probability-like number by where it falls against the training
  population (the training set's 99th percentile maps to one half).
- Athlete: the z-score of this activity's average speed against the athlete's own past
  activities of the sport (the seed's example: a 2 min/km run from a 6 min/km runner).
- Vehicle: a classifier of stretches driven by a motor vehicle, trained on real drives
  against real runs and rides (``core.anomaly.vehicle``); its stretches are rule-like hits.
- Combined: ``1 - (1 - rules) (1 - w * forest) (1 - athlete)``, from 0 to 1, flagged at
  the threshold (recalibrated from moderators' decisions).

Saved models carry their library versions, parameters, a summary of the training data and
validation scores, and an HMAC-SHA256 signature made with a key kept beside them: a file
this installation did not write is refused before it is unpickled.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import math
import os
import pickle
import platform
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from core import units
from core.anomaly.features import MODEL_FEATURES, Features, vector
from core.anomaly.rules import Hit

FORMAT = b"TRACKER-ANOMALY-MODEL-1\n"
FOREST_WEIGHT = 0.75
DEFAULT_THRESHOLD = 0.5
HISTORY_MIN = 3
HISTORY_SD_FLOOR = 0.05  # an athlete's average speed varies at least 5% between outings
BASELINE_Z = 3.0
FOREST_PARAMS = {"n_estimators": 200, "max_samples": 256, "random_state": 0}
DESCRIPTIONS = {
    "log_avg_speed": ("average speed", "speed"), "log_v50": ("median speed", "speed"),
    "log_v90": ("90th-percentile speed", "speed"), "log_v99": ("top speed (99th percentile)", "speed"),
    "wr_400": ("best 400 m against the record", "ratio"), "wr_1000": ("best 1 km against the record", "ratio"),
    "wr_5000": ("best 5 km against the record", "ratio"), "accel_p99": ("hardest accelerations", "accel"),
    "accel_std": ("acceleration variability", "accel"), "jerk_std": ("jerk (changes of acceleration)", "jerk"),
    "launches_per_h": ("standing starts to vehicle speed per hour", "plain"),
    "fast_cv": ("speed variation at high speed", "plain"), "share_fast": ("share of time at high speed", "share"),
    "lat_accel_p95": ("cornering forces", "accel"), "gap_share": ("share of time in recording gaps", "share"),
    "log_median_dt": ("sampling interval", "seconds"), "teleport_km": ("distance jumped", "km"),
    "vam_5min": ("fastest 5-minute climbing rate", "vam"), "wkg_60": ("estimated 1-minute power", "wkg"),
    "wkg_300": ("estimated 5-minute power", "wkg"), "wkg_1200": ("estimated 20-minute power", "wkg"),
    "m_per_beat": ("distance per heartbeat", "mpb"), "hr_speed_corr": ("heart rate following speed", "plain"),
    "stride_m": ("stride length", "metres"),
    "climb_flat_ratio": ("speed on climbs against the flat", "ratio"),
}


class ModelFileError(RuntimeError):
    """A model file that is missing, damaged, or not written by this installation."""


def _sigmoid(x: float) -> float:
    return 1.0 / (1.0 + math.exp(-max(-60.0, min(60.0, x))))


# How each kind of figure is written: a scale and a format.
UNITS = {
    "speed": (3.6, "{:.1f} km/h"), "accel": (1.0, "{:.2f} m/s²"), "jerk": (1.0, "{:.2f} m/s³"),
    "share": (100.0, "{:.0f}%"), "ratio": (100.0, "{:.0f}%"), "seconds": (1.0, "{:.1f} s"),
    "km": (1.0, "{:.1f} km"), "vam": (1.0, "{:.0f} m/h"), "wkg": (1.0, "{:.1f} W/kg"),
    "mpb": (1.0, "{:.2f} m"), "metres": (1.0, "{:.2f} m"), "plain": (1.0, "{:.2f}"),
}


def _show(name: str, value: float) -> str:
    scale, form = UNITS[DESCRIPTIONS.get(name, (name, "plain"))[1]]
    if name.startswith("log_"):
        value = math.exp(value)
    return form.format(value * scale)


@dataclass
class SportModel:
    """One sport's forest and the population figures it was trained on."""

    forest: object
    median: np.ndarray
    scale: np.ndarray
    q50: float
    q99: float
    rows: int

    def prepare(self, rows: np.ndarray) -> np.ndarray:
        filled = np.where(np.isfinite(rows), rows, self.median)
        return (filled - self.median) / self.scale

    def anomaly(self, x: np.ndarray) -> np.ndarray:
        """The forest's anomaly score of prepared rows (``-score_samples``), tree by tree
        without scikit-learn's per-call machinery: for the one row of a completed activity
        that machinery costs far more than the 200 tree lookups themselves. The same
        numbers (a test checks); scikit-learn's own method where its fitted attributes differ."""
        forest = self.forest
        try:
            from sklearn.ensemble._iforest import _average_path_length

            lengths, averages = forest._decision_path_lengths, forest._average_path_length_per_tree
            max_samples = forest._max_samples
        except (ImportError, AttributeError):
            return -forest.score_samples(x)
        rows = np.ascontiguousarray(x, dtype=np.float32)
        depths = np.zeros(rows.shape[0])
        subsample = forest._max_features != rows.shape[1]
        for k, (tree, features) in enumerate(zip(forest.estimators_, forest.estimators_features_)):
            leaves = tree.tree_.apply(np.ascontiguousarray(rows[:, features]) if subsample else rows)
            depths += lengths[k][leaves] + averages[k][leaves] - 1.0
        denominator = len(forest.estimators_) * _average_path_length([max_samples])[0]
        if denominator == 0:
            return np.ones(rows.shape[0])
        return 2.0 ** (-depths / denominator)

    def probabilities(self, rows: np.ndarray) -> np.ndarray:
        """How anomalous each feature row is for the population, from 0 to 1 (the training
        set's 99th percentile of the forest's anomaly score maps to one half)."""
        anomaly = self.anomaly(self.prepare(rows))
        spread = max((self.q99 - self.q50) / 3.0, 1e-3)
        return 1.0 / (1.0 + np.exp(-np.clip((anomaly - self.q99) / spread, -60.0, 60.0)))

    def probability(self, features: Features) -> tuple[float, list[str]]:
        """How anomalous for the population (0..1) and the features that stand out most."""
        raw = vector(features)
        x = self.prepare(raw[None, :])
        p = float(self.probabilities(raw[None, :])[0])
        deviations = []
        for k, name in enumerate(MODEL_FEATURES):
            z = float(x[0, k])
            if np.isfinite(raw[k]) and abs(z) >= 3.0:
                deviations.append((abs(z), name, raw[k], self.median[k]))
        deviations.sort(reverse=True)
        noun = "activities of this sport"
        words = [f"{DESCRIPTIONS.get(n, (n,))[0]} {_show(n, v)} (typical of {noun}: {_show(n, m)})"
                 for _, n, v, m in deviations[:2]]
        return p, words


def train_sport(rows: np.ndarray) -> SportModel:
    """Fit one sport's forest on feature rows (one per activity)."""
    from sklearn.ensemble import IsolationForest

    rows = np.asarray(rows, dtype=float)
    finite = np.isfinite(rows)
    median = np.array([np.median(rows[finite[:, k], k]) if finite[:, k].any() else 0.0
                       for k in range(rows.shape[1])])
    filled = np.where(np.isfinite(rows), rows, median)
    q75, q25 = np.percentile(filled, [75, 25], axis=0)
    scale = np.where((q75 - q25) > 1e-6, q75 - q25, np.maximum(np.abs(median) * 0.1, 1e-3))
    model = SportModel(None, median, scale, 0.0, 0.0, int(rows.shape[0]))
    x = model.prepare(rows)
    forest = IsolationForest(**{**FOREST_PARAMS, "max_samples": min(FOREST_PARAMS["max_samples"], len(x))})
    forest.fit(x)
    model.forest = forest
    anomaly = -forest.score_samples(x)
    model.q50, model.q99 = (float(v) for v in np.percentile(anomaly, [50, 99]))
    return model


# What an athlete's own history is compared on: how fast, and how much speed or power each
# heartbeat or each climb buys, which a motor changes and a hard day does not. Effort itself
# (the best 5-minute power, the fastest climbing) is no such figure: a race or a hilly day
# beats a usual week by far, honestly. Spreads have floors (an athlete varies at least this
# much between outings, log scale), and a figure only counts when it is also at least
# MIN_RATIO times the usual: a recreational runner's race pace is commonly 25-35% faster
# than their easy training pace, and the heartbeat buys more at race pace too.
SPREAD_FLOOR = {"speed": HISTORY_SD_FLOOR, "efficiency": HISTORY_SD_FLOOR, "watts_per_beat": 0.08,
                "climb_speed": 0.15}
MIN_RATIO = {"speed": 1.4, "efficiency": 1.4, "watts_per_beat": 1.5, "climb_speed": 1.5}
BASELINE_METRICS = {
    "speed": "log_avg_speed",
    "efficiency": "m_per_beat",  # distance per heartbeat: faster for the same effort
    "watts_per_beat": "w_per_beat",  # rides: estimated power for the heart rate
    "climb_speed": "climb_flat_ratio",  # speed on climbs against speed on the flat
}


@dataclass
class Baseline:
    """An athlete's usual figures for one sport (log scale), from their past activities."""

    metrics: dict  # name -> (median of log values, spread, count)

    @classmethod
    def from_history(cls, history: list[dict]) -> Baseline | None:
        """From the feature values of past activities of the sport (oldest first or any order)."""
        metrics = {}
        for metric, feature in BASELINE_METRICS.items():
            values = [h.get(feature) for h in history]
            values = [v for v in values if v is not None and math.isfinite(v)]
            if feature != "log_avg_speed":
                values = [math.log(v) for v in values if v > 0]
            if len(values) < HISTORY_MIN:
                continue
            logs = np.asarray(values)
            median = float(np.median(logs))
            mad = float(np.median(np.abs(logs - median))) * 1.4826
            metrics[metric] = (median, max(mad, SPREAD_FLOOR[metric]), int(logs.size))
        return cls(metrics) if "speed" in metrics else None

    def zscores(self, values: dict) -> dict:
        """How many spreads above the athlete's usual each available figure is."""
        out = {}
        for metric, (median, sd, _) in self.metrics.items():
            value = values.get(BASELINE_METRICS[metric], math.nan)
            if value is None or not math.isfinite(value):
                continue
            if metric != "speed":
                if value <= 0:
                    continue
                value = math.log(value)
            z = (value - median) / sd
            if value - median < math.log(MIN_RATIO[metric]):
                z = min(z, BASELINE_Z - 1.0)  # within what honest days differ by: never a reason
            out[metric] = (z, value, median)
        return out


def _pace_words(sport: str, speed: float) -> str:
    return f"pace {units.pace(speed)}" if sport == "run" else units.speed(speed)


# How each of the athlete's own metrics reads in a reason: (sport, this value, usual value).
BASELINE_WORDS = {
    "speed": lambda sport, v, u: f"{_pace_words(sport, v)} against your usual {_pace_words(sport, u)}",
    "efficiency": lambda sport, v, u: (f"{v:.2f} m per heartbeat against your usual {u:.2f} m "
                                       "(much faster for the same effort)"),
    "watts_per_beat": lambda sport, v, u: (f"an estimated {v:.2f} W per heartbeat against your usual {u:.2f} W "
                                           "(much more power for the same effort, as with a motor)"),
    "climb_speed": lambda sport, v, u: (f"climbs ridden at {v * 100:.0f}% of your speed on the flat against "
                                        f"your usual {u * 100:.0f}%"),
}


@dataclass
class Verdict:
    """The combined judgement on one activity."""

    score: float
    flagged: bool
    reasons: list[str]
    hits: list[Hit]
    forest: float
    athlete: float
    rules: float
    threshold: float
    values: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return {"score": round(self.score, 4), "flagged": self.flagged, "reasons": self.reasons,
                "hits": [h.to_dict() for h in self.hits], "forest": round(self.forest, 4),
                "athlete": round(self.athlete, 4), "rules": round(self.rules, 4),
                "threshold": self.threshold}


def judge(features: Features, hits: list[Hit], model: PopulationModel | None,
          baseline: Baseline | None = None, threshold: float | None = None) -> Verdict:
    """Combine the rule hits, the population forest and the athlete's baseline."""
    threshold = DEFAULT_THRESHOLD if threshold is None else threshold
    reasons = [h.reason for h in hits]
    p_rules = max((h.severity for h in hits), default=0.0)
    p_forest = 0.0
    p_athlete = 0.0
    if features.usable and model is not None and features.sport in model.sports:
        p_forest, words = model.sports[features.sport].probability(features)
        if p_forest >= 0.5 and words:
            reasons.append("unusual for the population: " + "; ".join(words))
    if baseline is not None:
        for metric, (z, value, usual) in baseline.zscores(features.values).items():
            p = _sigmoid(2.0 * (z - BASELINE_Z)) if z > 0 else 0.0
            p_athlete = max(p_athlete, p)
            if p < 0.5:
                continue
            text = BASELINE_WORDS[metric](features.sport, math.exp(value), math.exp(usual))
            count = baseline.metrics[metric][2]
            reasons.append(f"{text} (z = {z:.1f} over {count} past {features.sport}s)")
    score = 1.0 - (1.0 - p_rules) * (1.0 - FOREST_WEIGHT * p_forest) * (1.0 - p_athlete)
    return Verdict(score, score >= threshold, reasons, hits, p_forest, p_athlete, p_rules, threshold,
                   dict(features.values))


@dataclass
class PopulationModel:
    """The forests of every sport and what the saved file says about them."""

    sports: dict[str, SportModel]
    meta: dict
    vehicle: object | None = None  # core.anomaly.vehicle.VehicleModel, trained on real drives

    @classmethod
    def train(cls, rows_by_sport: dict[str, np.ndarray], sources: dict | None = None) -> PopulationModel:
        import sklearn

        began = time.time()
        sports = {sport: train_sport(rows) for sport, rows in rows_by_sport.items() if len(rows) >= 10}
        meta = {
            "format": FORMAT.decode().strip(),
            "trained_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "seconds": round(time.time() - began, 3),
            "versions": {"python": platform.python_version(), "numpy": np.__version__,
                         "scikit-learn": sklearn.__version__},
            "params": {"forest": FOREST_PARAMS, "forest_weight": FOREST_WEIGHT,
                       "baseline_z": BASELINE_Z, "features": list(MODEL_FEATURES)},
            # A snapshot of the training data: its size, a digest of the exact rows, and the
            # population medians the forest scales by.
            "training": {sport: {"rows": m.rows, "sha256": _digest(rows_by_sport[sport]),
                                 "median": [round(float(v), 4) for v in m.median],
                                 "q50": m.q50, "q99": m.q99} for sport, m in sports.items()},
            "sources": sources or {},
            "validation": {},
        }
        return cls(sports, meta)

    # Persistence -------------------------------------------------------------------------

    def save(self, path: Path) -> None:
        """Write the model, signed with the installation's key, atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        pickle.dump({"sports": self.sports, "meta": self.meta, "vehicle": self.vehicle}, buf,
                    protocol=pickle.HIGHEST_PROTOCOL)
        body = buf.getvalue()
        signature = hmac.new(_key(path.parent), body, hashlib.sha256).hexdigest().encode()
        tmp = path.with_suffix(".tmp")
        tmp.write_bytes(FORMAT + signature + b"\n" + body)
        os.replace(tmp, path)
        path.with_suffix(".json").write_text(json.dumps(self.meta, indent=2))

    @classmethod
    def load(cls, path: Path) -> PopulationModel:
        """Read a model this installation wrote; anything else raises ModelFileError."""
        path = Path(path)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise ModelFileError(f"cannot read the model {path}: {exc.strerror}") from None
        if not data.startswith(FORMAT):
            raise ModelFileError(f"{path} is not an anomaly model file")
        rest = data[len(FORMAT):]
        signature, _, body = rest.partition(b"\n")
        key_file = path.parent / "anomaly.key"
        if not key_file.exists():
            raise ModelFileError(f"{path} has no signing key beside it; retrain with python -m core anomaly train")
        expected = hmac.new(_key(path.parent), body, hashlib.sha256).hexdigest().encode()
        if not hmac.compare_digest(signature, expected):
            raise ModelFileError(f"{path} was not written by this installation (bad signature); refusing to load it")
        data = pickle.loads(body)  # noqa: S301 - signed by our own key above
        return cls(data["sports"], data["meta"], data.get("vehicle"))


def _digest(rows) -> str:
    return hashlib.sha256(np.ascontiguousarray(np.asarray(rows, dtype=np.float64)).tobytes()).hexdigest()


def installation_key(folder: Path) -> bytes:
    """The installation's secret key kept in the model folder (see ``_key``): it signs the
    model files and keys the moderators' random sample."""
    return _key(folder)


def _key(folder: Path) -> bytes:
    """The installation's signing key, created (owner-readable only) on first use."""
    key_file = Path(folder) / "anomaly.key"
    if not key_file.exists():
        key_file.parent.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            pass
        else:
            with os.fdopen(fd, "w") as fh:
                fh.write(secrets.token_hex(32))
    return key_file.read_text().strip().encode()
