"""How well the drop-off model ranks and calibrates, measured forward in time on generated
populations: cutoffs every seven days; the earlier ones train (the model is chosen on the
latest of those, ``churn.fit_model``), the later ones test, and no training label week
reaches the first test cutoff. The baseline is the days since the last activity (as-is
for ranking, and for calibration turned into the rate of quiet weeks per value on the
training cutoffs). A second population with other habits and another seed, never tuned
on, is evaluated the same way, and the first population's model is also scored on it."""

from __future__ import annotations

import numpy as np
from sklearn.base import clone
from sklearn.metrics import brier_score_loss, roc_auc_score

from core.challenges.churn import (
    AT_RISK_DAYS,
    BASELINE,
    CUTOFF_STEP_DAYS,
    LABEL_DAYS,
    ChurnModel,
    Examples,
    candidates,
    examples,
    fit_model,
    validation_split,
)
from core.challenges.churn_history import Daily
from core.challenges.habits import OTHER_HABITS, Habits, generate

TEST_SHARE = 0.3
BOOTSTRAP = 200
BINS = 10
OTHER_SEED_OFFSET = 1000


def cutoffs_of(days: int) -> np.ndarray:
    """Every seventh day with eight weeks of history before it and its label week inside."""
    return np.arange(AT_RISK_DAYS, days - LABEL_DAYS + 1, CUTOFF_STEP_DAYS)


def time_split(cutoffs: np.ndarray, test_share: float = TEST_SHARE) -> tuple[np.ndarray, np.ndarray]:
    """Training and test cutoffs: the latest ``test_share`` test, and a training cutoff's
    label week ends before the first test cutoff."""
    cutoffs = np.sort(np.asarray(cutoffs))
    first_test = cutoffs[min(len(cutoffs) - 1, max(1, int(round(len(cutoffs) * (1 - test_share)))))]
    return cutoffs[cutoffs + LABEL_DAYS <= first_test], cutoffs[cutoffs >= first_test]


def baseline_table(train: Examples) -> tuple[dict[int, float], float]:
    """The rate of quiet weeks per days-since-last-activity value on the training rows."""
    values = train.X[:, BASELINE].astype(int)
    table = {int(v): float(train.y[values == v].mean()) for v in np.unique(values)}
    return table, float(train.y.mean())


def baseline_probability(values: np.ndarray, table: dict[int, float], default: float) -> np.ndarray:
    """The baseline as a probability: the training rate of its value (the overall rate for unseen ones)."""
    return np.array([table.get(int(v), default) for v in values])


def reliability(y: np.ndarray, p: np.ndarray, bins: int = BINS) -> list[dict]:
    """Mean predicted against observed rate in ten equal-width bins of the prediction."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        inside = which == b
        out.append({"bin": f"{b / bins:.1f}-{(b + 1) / bins:.1f}", "count": int(inside.sum()),
                    "predicted": round(float(p[inside].mean()), 4) if inside.any() else None,
                    "observed": round(float(y[inside].mean()), 4) if inside.any() else None})
    return out


def top_decile_precision(y: np.ndarray, score: np.ndarray) -> float:
    """The rate of quiet weeks among the tenth scored highest; ties at the edge count at
    their average (as if broken at random)."""
    k = max(1, int(np.ceil(0.1 * len(y))))
    edge = np.sort(score)[::-1][k - 1]
    above, tied = score > edge, score == edge
    return float((y[above].sum() + (k - above.sum()) * y[tied].mean()) / k)


def auc_interval(y: np.ndarray, score: np.ndarray, athlete: np.ndarray, seed: int,
                 rounds: int = BOOTSTRAP) -> tuple[float, float]:
    """A 95% bootstrap interval of the ROC AUC, resampling athletes (all their rows together)."""
    rng = np.random.default_rng(seed)
    ids, index = np.unique(athlete, return_inverse=True)
    aucs = []
    for _ in range(rounds):
        weight = np.bincount(rng.integers(0, len(ids), len(ids)), minlength=len(ids))[index]
        keep = weight > 0
        if len(np.unique(y[keep])) == 2:
            aucs.append(roc_auc_score(y[keep], score[keep], sample_weight=weight[keep]))
    return float(np.percentile(aucs, 2.5)), float(np.percentile(aucs, 97.5))


def figures(test: Examples, score: np.ndarray, probability: np.ndarray, seed: int) -> dict:
    """ROC AUC with its interval and top-decile precision of the score, Brier of the probability."""
    lo, hi = auc_interval(test.y, score, test.athlete, seed)
    return {"roc_auc": round(float(roc_auc_score(test.y, score)), 4), "roc_auc_ci": [round(lo, 4), round(hi, 4)],
            "brier": round(float(brier_score_loss(test.y, probability)), 5),
            "top_decile_precision": round(top_decile_precision(test.y, score), 4)}


def evaluate(daily: Daily, seed: int) -> tuple[dict, ChurnModel]:
    """Train on the early cutoffs, test on the late ones; the figures and the chosen model."""
    train_cutoffs, test_cutoffs = time_split(cutoffs_of(daily.activities.shape[1]))
    train, test = examples(daily, train_cutoffs), examples(daily, test_cutoffs)
    model = fit_model(train)
    table, base_rate = baseline_table(train)
    baseline = test.X[:, BASELINE]
    models = {"baseline": figures(test, baseline, baseline_probability(baseline, table, base_rate), seed)}
    for name, candidate in candidates().items():
        p = clone(candidate).fit(train.X, train.y).predict_proba(test.X)[:, 1]
        models[name] = figures(test, p, p, seed)
    chosen = model.predict(test.X)
    models["chosen"] = figures(test, chosen, chosen, seed)
    fit, valid = validation_split(train.cutoff)
    report = {
        "blocks": {"train_cutoffs": [int(train_cutoffs[0]), int(train_cutoffs[-1])],
                   "fit_cutoffs": [int(train.cutoff[fit].min()), int(train.cutoff[fit].max())],
                   "validation_cutoffs": [int(train.cutoff[valid].min()), int(train.cutoff[valid].max())],
                   "test_cutoffs": [int(test_cutoffs[0]), int(test_cutoffs[-1])],
                   "last_training_label_day": int(train_cutoffs[-1] + LABEL_DAYS - 1)},
        "examples": {"train": int(len(train.y)), "test": int(len(test.y)),
                     "test_athletes": int(len(np.unique(test.athlete)))},
        "base_rate": {"train": round(base_rate, 4), "test": round(float(test.y.mean()), 4)},
        "base_rate_brier": round(float(brier_score_loss(test.y, np.full(len(test.y), base_rate))), 5),
        "chosen": {"model": model.meta["model"], "calibrated": model.meta["calibrated"],
                   "validation_roc_auc": model.meta["validation"]["roc_auc"]},
        "models": models,
        "reliability": reliability(test.y, chosen),
    }
    return report, model


def run(athletes: int, weeks: int, seed: int) -> dict:
    """Both populations' reports, and the first's model scored on the second's test block."""
    first = Daily.of(generate(athletes, weeks, seed, Habits()))
    other = Daily.of(generate(athletes, weeks, seed + OTHER_SEED_OFFSET, OTHER_HABITS))
    report, model = evaluate(first, seed)
    other_report, _ = evaluate(other, seed)
    _, test_cutoffs = time_split(cutoffs_of(other.activities.shape[1]))
    test = examples(other, test_cutoffs)
    p = model.predict(test.X)
    return {"athletes": athletes, "weeks": weeks, "seed": seed,
            "populations": {"development": {"seed": seed, **report},
                            "untuned": {"seed": seed + OTHER_SEED_OFFSET, **other_report}},
            "transfer": {"trained_on": "development", "tested_on": "untuned", **figures(test, p, p, seed)}}


def render(report: dict) -> str:
    """The report as a human-readable table."""
    lines = []
    for name, r in report["populations"].items():
        b = r["blocks"]
        lines += [f"population {name} (seed {r['seed']}, {report['athletes']} athletes, {report['weeks']} weeks)",
                  f"  cutoffs: train days {b['train_cutoffs'][0]}-{b['train_cutoffs'][1]} (validation from "
                  f"{b['validation_cutoffs'][0]}), labels end day {b['last_training_label_day']}, "
                  f"test days {b['test_cutoffs'][0]}-{b['test_cutoffs'][1]}",
                  f"  examples: {r['examples']['train']} train, {r['examples']['test']} test "
                  f"({r['examples']['test_athletes']} athletes); quiet-week rate {r['base_rate']['test']:.3f} "
                  f"(base-rate Brier {r['base_rate_brier']:.4f})",
                  f"  {'model':<28} {'ROC AUC (95% CI)':<21} {'Brier':>7} {'top-10% precision':>18}"]
        for model, f in r["models"].items():
            label = model if model != "chosen" else f"chosen: {r['chosen']['model']}" + (
                ", calibrated" if r["chosen"]["calibrated"] else "")
            lines.append(f"  {label:<28} {f['roc_auc']:.3f} ({f['roc_auc_ci'][0]:.3f}-{f['roc_auc_ci'][1]:.3f})"
                         f"{'':<2} {f['brier']:>8.4f} {f['top_decile_precision']:>18.3f}")
        lines.append("  reliability of the chosen model on the test block:")
        lines.append(f"    {'bin':<8} {'predicted':>9} {'observed':>9} {'count':>7}")
        for row in r["reliability"]:
            if row["count"]:
                lines.append(f"    {row['bin']:<8} {row['predicted']:>9.3f} {row['observed']:>9.3f} "
                             f"{row['count']:>7}")
        lines.append("")
    t = report["transfer"]
    lines.append(f"development model on the untuned population's test block: ROC AUC {t['roc_auc']:.3f} "
                 f"({t['roc_auc_ci'][0]:.3f}-{t['roc_auc_ci'][1]:.3f}), Brier {t['brier']:.4f}, "
                 f"top-10% precision {t['top_decile_precision']:.3f}")
    return "\n".join(lines)
