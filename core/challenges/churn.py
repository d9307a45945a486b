"""Drop-off risk: the chance that an athlete records no activity in the next seven days.

Who is scored. At a cutoff (the start of a UTC day; everything before it is history,
nothing at or after it is read), the athletes at risk of dropping off are those with at
least one counted activity (completed and not held for review) in the eight weeks before
it. Athletes with none for longer have already dropped off: they are not scored and give
no examples. One who comes back after such a break is at risk again from their first
activity back, as a new "return", with the break visible in their features.

The label. An athlete at risk at a cutoff is labelled 1 ("dropped") when they record no
counted activity on any of the seven days from the cutoff (cutoff day included; the day
seven days after it is already outside), else 0. A seven-day gap is common (holidays,
busy weeks, injuries), so the label is "a quiet week", not "gone for good": it is the
early warning a challenge or a nudge can still act on, and the eight-week rule above keeps
long-gone athletes out of it. Athletes already quiet for a few weeks are still at risk and
mostly labelled 1, which is why the days since the last activity is a strong baseline; the
model earns its keep on those still training whose visits, regularity or trend slip.

The features (``FEATURES``) come from the eight weeks before the cutoff and the athlete's
first activity, through one pure function (``feature_matrix``) shared by the generated
populations, the evaluation and the database: days since the last activity and the last
visit (57 for none in the eight weeks); activities in the last 7, 14, 28 and 56 days; the
trend (the last two weeks' weekly rate against the six before, as a log ratio); the share
of the eight weeks with an activity and how concentrated the active days are on a few
weekdays (1 minus the normalised entropy); visits and sign-ins in the last 7 and 28 days
and their trend (the last week against the four-week average); kudos and comments received
and given in 28 days (on one's own activities not counted); tenure (days since the first
activity, at most a year); the longest gap between two activities and the mean spacing of
active days within the eight weeks.

The models are scikit-learn's: a standardised logistic regression and a histogram
gradient-boosting classifier, chosen by ROC AUC on a validation block at the end of the
training period, and calibrated (isotonic, or sigmoid under 1,000 rows; fit on training
folds grouped by athlete) when that lowers the validation Brier score. No neural
network (TensorFlow or other) is needed: this is gradient boosting on a few tabular
features. Fitted models are saved in the models folder as ``churn.pkl``, signed with the
installation's key and refused when written by another format or library version; their
description (versions, parameters, training data digest, validation figures) is written
beside them as ``churn.json``. Saving, loading, training on the database and keeping the
athletes' risks are in ``core.challenges.churn_store``.
"""

from __future__ import annotations

import hashlib
import logging
import platform
import time as clock
from dataclasses import dataclass

import numpy as np
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, roc_auc_score
from sklearn.model_selection import GroupKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler

from core.challenges.churn_history import Daily

log = logging.getLogger(__name__)

LABEL_DAYS = 7
AT_RISK_DAYS = 56  # eight weeks: active within them means at risk; longer gone means dropped off
TENURE_CAP_DAYS = 365
CUTOFF_STEP_DAYS = 7
VALIDATION_SHARE = 0.25  # of the training cutoffs, the latest ones
CALIBRATION_FOLDS = 3
MIN_EXAMPLES = 200
MIN_PER_CLASS = 20
FORMAT = b"TRACKER-CHURN-MODEL-1\n"
SEED = 0

FEATURES = (
    "days_since_activity", "activities_7d", "activities_14d", "activities_28d", "activities_56d",
    "activity_trend", "weeks_active_share", "weekday_concentration", "visits_7d", "visits_28d",
    "sign_ins_7d", "sign_ins_28d", "visit_trend", "sign_in_trend", "days_since_visit",
    "kudos_received_28d", "comments_received_28d", "kudos_given_28d", "comments_given_28d",
    "tenure_days", "longest_gap_days", "mean_gap_days",
)
BASELINE = FEATURES.index("days_since_activity")


def at_risk(activities: np.ndarray, cutoff: int) -> np.ndarray:
    """Which athletes are at risk at the cutoff: a counted activity in the eight weeks before."""
    return activities[:, max(0, cutoff - AT_RISK_DAYS):cutoff].sum(axis=1) > 0


def dropped(activities: np.ndarray, cutoff: int) -> np.ndarray:
    """The label: no activity on the seven days from the cutoff (1) or some (0)."""
    if cutoff + LABEL_DAYS > activities.shape[1]:
        raise ValueError("the seven days after the cutoff are not all in the arrays")
    return (activities[:, cutoff:cutoff + LABEL_DAYS].sum(axis=1) == 0).astype(np.int8)


def feature_matrix(daily: Daily, cutoff: int) -> np.ndarray:
    """The features (athletes, ``FEATURES``) at the cutoff, from days before it only."""
    n = daily.activities.shape[0]
    window = _window(daily.activities, cutoff)
    active = window > 0
    days = np.arange(AT_RISK_DAYS)
    last = np.where(active.any(axis=1), AT_RISK_DAYS - 1 - np.argmax(active[:, ::-1], axis=1), -1)
    since_activity = np.where(last >= 0, AT_RISK_DAYS - last, AT_RISK_DAYS + 1)
    counts = {k: window[:, -k:].sum(axis=1) for k in (7, 14, 28, 56)}
    trend = np.log((counts[14] / 2 + 0.5) / ((counts[56] - counts[14]) / 6 + 0.5))
    weeks_active = active.reshape(n, 8, 7).any(axis=2).mean(axis=1)

    # Weekdays relative to the cutoff: the concentration does not depend on which is Monday.
    by_weekday = np.stack([active[:, w::7].sum(axis=1) for w in range(7)], axis=1)
    share = by_weekday / np.maximum(by_weekday.sum(axis=1, keepdims=True), 1)
    entropy = -(share * np.log(np.where(share > 0, share, 1.0))).sum(axis=1)
    concentration = np.where(active.any(axis=1), 1.0 - entropy / np.log(7), 0.0)

    visits = _window(daily.visits, cutoff)
    sign_ins = _window(daily.sign_ins, cutoff)
    v7, v28 = visits[:, -7:].sum(axis=1), visits[:, -28:].sum(axis=1)
    s7, s28 = sign_ins[:, -7:].sum(axis=1), sign_ins[:, -28:].sum(axis=1)
    seen = visits > 0
    last_visit = np.where(seen.any(axis=1), AT_RISK_DAYS - 1 - np.argmax(seen[:, ::-1], axis=1), -1)
    since_visit = np.where(last_visit >= 0, AT_RISK_DAYS - last_visit, AT_RISK_DAYS + 1)

    def last28(a: np.ndarray) -> np.ndarray:
        return _window(a, cutoff)[:, -28:].sum(axis=1)

    any_before = (daily.activities[:, :cutoff] > 0)
    first_in_arrays = np.where(any_before.any(axis=1), np.argmax(any_before, axis=1), np.inf)
    known = np.where(np.nan_to_num(daily.first_active, nan=np.inf) < cutoff, daily.first_active, np.inf)
    first = np.minimum(first_in_arrays, known)
    tenure = np.where(np.isfinite(first), np.minimum(cutoff - first, TENURE_CAP_DAYS), 0)

    longest, mean_gap = _gaps(active, days)
    return np.column_stack([
        since_activity, counts[7], counts[14], counts[28], counts[56], trend, weeks_active, concentration,
        v7, v28, s7, s28, np.log((v7 + 1) / (v28 / 4 + 1)), np.log((s7 + 1) / (s28 / 4 + 1)), since_visit,
        last28(daily.kudos_received), last28(daily.comments_received), last28(daily.kudos_given),
        last28(daily.comments_given), tenure, longest, mean_gap,
    ]).astype(np.float64)


def _window(a: np.ndarray, cutoff: int) -> np.ndarray:
    """The eight weeks before the cutoff (athletes, 56), zeros where the arrays begin later."""
    part = a[:, max(0, cutoff - AT_RISK_DAYS):cutoff]
    if part.shape[1] < AT_RISK_DAYS:
        part = np.pad(part, ((0, 0), (AT_RISK_DAYS - part.shape[1], 0)))
    return part


def _gaps(active: np.ndarray, days: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The longest run of days without activity between two active days of the window, and
    the mean spacing of active days (the window's length for fewer than two)."""
    n = active.shape[0]
    last = np.full(n, -1)
    longest = np.zeros(n)
    for j in days:
        hit = active[:, j]
        gap = np.where(hit & (last >= 0), j - last - 1, 0)
        longest = np.maximum(longest, gap)
        last = np.where(hit, j, last)
    n_days = active.sum(axis=1)
    first = np.argmax(active, axis=1)
    spread = np.where(n_days >= 2, (last - first) / np.maximum(n_days - 1, 1), float(AT_RISK_DAYS))
    return longest, spread


@dataclass(frozen=True)
class Examples:
    """Labelled examples: features, labels, and which athlete (row) and cutoff each is."""

    X: np.ndarray
    y: np.ndarray
    athlete: np.ndarray
    cutoff: np.ndarray

    def where(self, keep: np.ndarray) -> Examples:
        """Only the rows kept."""
        return Examples(self.X[keep], self.y[keep], self.athlete[keep], self.cutoff[keep])


def examples(daily: Daily, cutoffs) -> Examples:
    """The athletes at risk at each cutoff, with their features and labels."""
    parts = []
    for c in cutoffs:
        rows = np.flatnonzero(at_risk(daily.activities, c))
        X = feature_matrix(daily.take(rows), c)
        parts.append((X, dropped(daily.activities[rows], c), rows, np.full(len(rows), c)))
    if not parts:
        return Examples(np.empty((0, len(FEATURES))), np.empty(0, np.int8), np.empty(0, int), np.empty(0, int))
    return Examples(*(np.concatenate([p[k] for p in parts]) for k in range(4)))


def candidates() -> dict:
    """The models compared, unfitted, with fixed seeds."""
    return {
        "logistic": make_pipeline(StandardScaler(), LogisticRegression(C=1.0, max_iter=2000)),
        "boosting": HistGradientBoostingClassifier(learning_rate=0.05, max_iter=200, max_leaf_nodes=15,
                                                   min_samples_leaf=40, l2_regularization=1.0,
                                                   early_stopping=False, random_state=SEED),
    }


@dataclass
class ChurnModel:
    """A fitted classifier with what it was trained on and how it validated."""

    estimator: object
    meta: dict

    def predict(self, X: np.ndarray) -> np.ndarray:
        """The risk of a quiet week, one probability per row of ``feature_matrix``."""
        return self.estimator.predict_proba(np.asarray(X, dtype=np.float64))[:, 1]


def validation_split(cutoffs: np.ndarray, share: float = VALIDATION_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """Fit and validation masks over examples: the latest cutoffs validate, and the fit part
    keeps only cutoffs whose label week ends before the first validation cutoff."""
    distinct = np.unique(cutoffs)
    if len(distinct) < 2:
        raise ValueError("a validation block needs at least two cutoffs")
    first_valid = distinct[min(len(distinct) - 1, max(1, int(round(len(distinct) * (1 - share)))))]
    return cutoffs + LABEL_DAYS <= first_valid, cutoffs >= first_valid


def enough_examples(train: Examples) -> bool:
    """At least ``MIN_EXAMPLES`` rows, ``MIN_PER_CLASS`` of each label, both labels in the
    fit and the validation parts, and athletes enough for the calibration folds."""
    positives = int(train.y.sum())
    if len(train.y) < MIN_EXAMPLES or min(positives, len(train.y) - positives) < MIN_PER_CLASS:
        return False
    if len(np.unique(train.cutoff)) < 2:
        return False
    fit, valid = validation_split(train.cutoff)
    return (len(np.unique(train.y[fit])) == 2 and len(np.unique(train.y[valid])) == 2
            and len(np.unique(train.athlete[fit])) >= 2 * CALIBRATION_FOLDS)


def fit_model(train: Examples, sources: dict | None = None) -> ChurnModel:
    """Choose, calibrate if it helps, and fit on all of ``train`` (see the module docstring)."""
    began = clock.time()
    fit, valid = validation_split(train.cutoff)
    f, v = train.where(fit), train.where(valid)
    scores, fitted = {}, {}
    for name, model in candidates().items():
        fitted[name] = clone(model).fit(f.X, f.y)
        scores[name] = float(roc_auc_score(v.y, fitted[name].predict_proba(v.X)[:, 1]))
    chosen = max(scores, key=scores.get)
    baseline = float(roc_auc_score(v.y, v.X[:, BASELINE]))
    raw_brier = float(brier_score_loss(v.y, fitted[chosen].predict_proba(v.X)[:, 1]))
    calibrated = calibrated_version(candidates()[chosen], f)
    cal_brier = float(brier_score_loss(v.y, calibrated.predict_proba(v.X)[:, 1]))
    use_calibration = cal_brier < raw_brier
    final = calibrated_version(candidates()[chosen], train) if use_calibration \
        else clone(candidates()[chosen]).fit(train.X, train.y)
    meta = {
        "format": FORMAT.decode().strip(),
        "trained_at": clock.strftime("%Y-%m-%dT%H:%M:%SZ", clock.gmtime()),
        "seconds": round(clock.time() - began, 3),
        "versions": library_versions(),
        "features": list(FEATURES),
        "model": chosen,
        "calibrated": bool(use_calibration),
        "params": {k: repr(m) for k, m in candidates().items()},
        "validation": {"roc_auc": {k: round(s, 4) for k, s in scores.items()}, "baseline_roc_auc": round(baseline, 4),
                       "brier": round(raw_brier, 5), "brier_calibrated": round(cal_brier, 5),
                       "rows": int(len(v.y)), "first_cutoff": int(v.cutoff.min())},
        "training": {"rows": int(len(train.y)), "dropped": int(train.y.sum()),
                     "athletes": int(len(np.unique(train.athlete))),
                     "sha256": hashlib.sha256(np.ascontiguousarray(train.X).tobytes()).hexdigest()},
        "sources": sources or {},
    }
    return ChurnModel(final, meta)


def calibrated_version(model, train: Examples):
    """The model calibrated on out-of-fold predictions, folds by athlete, training rows only."""
    folds = list(GroupKFold(n_splits=CALIBRATION_FOLDS).split(train.X, train.y, groups=train.athlete))
    method = "isotonic" if len(train.y) >= 1000 else "sigmoid"
    return CalibratedClassifierCV(clone(model), method=method, cv=folds).fit(train.X, train.y)


def library_versions() -> dict:
    import sklearn

    return {"python": platform.python_version(), "numpy": np.__version__, "scikit-learn": sklearn.__version__}


def beats_baseline(model: ChurnModel) -> bool:
    """Whether the model ranked its validation block better than the days since the last
    activity did (a model that does not is not worth saving)."""
    v = model.meta.get("validation", {})
    chosen = v.get("roc_auc", {}).get(model.meta.get("model"))
    return chosen is not None and chosen > v.get("baseline_roc_auc", 1.0)
