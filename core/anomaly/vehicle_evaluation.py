"""The vehicle model's grouped evaluation on real drives and real runs and rides, and its
plain-text table (``python -m core anomaly evaluate`` prints it).

Folds group by recording or drive (a CRC-32 of the group's name, so a drive's windows are
never on both sides and the split is the same on every run); each fold's model and
threshold come from its training part only.
"""

from __future__ import annotations

import math

import numpy as np

from core.anomaly.vehicle import MIN_WINDOWS, VehicleModel, fold_of, peaks, run_scores, training_rows


def _auc(y: np.ndarray, p: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(y, p)) if np.unique(y).size == 2 else math.nan


def grouped_evaluation(examples, folds: int = 5, seed: int = 0, classifier: str = "gb") -> dict:
    """Grouped cross-validation by recording or drive (folds from a CRC-32 of the group, so a
    drive's windows are never on both sides); each fold's threshold comes from its training
    part only. Per window: ROC AUC, precision and recall at the threshold; per recording:
    share of drives with a flagged stretch, share of human recordings with one (false
    alarms) and their names; also the drives thinned to one fix every 5 s."""
    examples = list(examples)
    rows = training_rows(examples)
    label_of = {str(g): int(label) for g, _, label in examples}
    fold = np.array([fold_of(g, folds) for g in rows.groups])
    probs = np.full(rows.y.size, np.nan)
    thresholds = np.full(rows.y.size, np.nan)
    fold_thresholds = []
    for k in range(folds):
        test = fold == k
        train = rows.subset(~test)
        if not test.any() or np.unique(train.y).size < 2:
            continue
        model = VehicleModel.from_rows(train, seed, classifier)
        fold_thresholds.append(model.threshold)
        probs[test] = model.predict_rows(rows.x[test])
        thresholds[test] = model.threshold
    scored = np.isfinite(probs)
    native = scored & (rows.stride == 1)
    y, p, flagged = rows.y[native], probs[native], probs[native] >= thresholds[native]
    tp = int((flagged & (y == 1)).sum())
    window = {"windows": int(native.sum()), "vehicle_windows": int((y == 1).sum()), "auc": _auc(y, p),
              "precision": tp / max(int(flagged.sum()), 1), "recall": tp / max(int((y == 1).sum()), 1),
              "human_window_flag_rate": float((flagged & (y == 0)).sum() / max(int((y == 0).sum()), 1))}

    # A recording is flagged when it has a stretch: MIN_WINDOWS consecutive windows at or
    # above its fold's threshold. Its score: the best such run's lowest probability over
    # the threshold (>= 1: flagged).
    stretch_scores = np.where(scored, run_scores(np.nan_to_num(probs), rows.part, rows.seq), 0.0)

    def recordings(mask: np.ndarray) -> dict[str, float]:
        return peaks(stretch_scores[mask] / thresholds[mask], rows.groups[mask])

    native_peak = recordings(native)
    drives = sorted(g for g, label in label_of.items() if label == 1)
    humans = sorted(g for g, label in label_of.items() if label == 0)
    found = [g for g in drives if native_peak.get(g, 0.0) >= 1.0]
    false_alarms = [g for g in humans if native_peak.get(g, 0.0) >= 1.0]
    sparse_peak = recordings(scored & (rows.stride == 5) & (rows.y == 1))
    sparse_drives = sorted(g for g in drives if g in sparse_peak)
    sparse_found = [g for g in sparse_drives if sparse_peak[g] >= 1.0]
    return {
        "folds": folds, "seed": seed, "classifier": classifier, "min_windows": MIN_WINDOWS, "window": window,
        "thresholds": [round(t, 4) for t in fold_thresholds],
        "drives": len(drives), "drives_found": len(found),
        "drive_recall": len(found) / max(len(drives), 1),
        "drives_missed": [g for g in drives if g not in found],
        "humans": len(humans), "humans_flagged": len(false_alarms),
        "human_false_alarm_rate": len(false_alarms) / max(len(humans), 1),
        "false_alarms": false_alarms,
        "humans_without_windows": [g for g in humans if g not in native_peak],
        "drives_5s": len(sparse_drives), "drives_5s_found": len(sparse_found),
        "drive_peaks": {g: round(native_peak.get(g, 0.0), 3) for g in drives},
        "human_peaks": {g: round(native_peak.get(g, 0.0), 3) for g in humans},
    }


def _share_line(label: str, hits: int, n: int) -> str:
    """One row of the per-recording table: count, share and its 95% Wilson interval."""
    z = 1.959964
    if n:
        p = hits / n
        centre = (p + z * z / (2 * n)) / (1 + z * z / n)
        half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
        interval = f"{max(0.0, centre - half):.0%}-{min(1.0, centre + half):.0%}"
    else:
        p, interval = 0.0, "-"
    return f"{label:<44}{hits:>6} / {n:<3}{p:>9.1%}{interval:>16}"


def report(result: dict) -> str:
    """The grouped evaluation as a plain-text table."""
    w = result["window"]
    lines = [
        f"Vehicle model ({result['classifier']}), grouped {result['folds']}-fold cross-validation by recording "
        f"(seed {result['seed']}); a stretch is {result['min_windows']}+ consecutive flagged windows",
        f"thresholds chosen in the training folds: {', '.join(f'{t:.3f}' for t in result['thresholds'])}",
        "",
        f"{'per window':<44}{'value':>12}",
        f"{'windows scored (vehicle)':<44}{w['windows']:>7} ({w['vehicle_windows']})",
        f"{'ROC AUC':<44}{w['auc']:>12.4f}",
        f"{'precision at the threshold':<44}{w['precision']:>12.4f}",
        f"{'recall at the threshold':<44}{w['recall']:>12.4f}",
        f"{'human windows flagged':<44}{w['human_window_flag_rate']:>12.4f}",
        "",
        f"{'per recording':<44}{'found':>12}{'share':>9}{'95% interval':>16}",
        _share_line("drives with a flagged stretch", result["drives_found"], result["drives"]),
        _share_line("drives thinned to 5 s, flagged", result["drives_5s_found"], result["drives_5s"]),
        _share_line("human recordings with a flagged stretch", result["humans_flagged"], result["humans"]),
    ]
    if result["drives"] >= 18:
        lines.append("(18 of the 20 real drives come from one car and logger: about three independent sources,\n"
                     " so the drive figures say less than their count suggests)")
    if result["drives_missed"]:
        lines.append("drives missed: " + ", ".join(result["drives_missed"]))
    if result["false_alarms"]:
        lines.append("human recordings flagged: " + ", ".join(result["false_alarms"]))
    if result["humans_without_windows"]:
        lines.append("human recordings without a window: " + ", ".join(result["humans_without_windows"]))
    return "\n".join(lines)
