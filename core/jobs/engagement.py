"""The weekly drop-off scoring: retrain the engagement model on the database's own history
(when it has examples enough of both kinds, and the new model ranks its validation weeks
better than the days since the last activity; else the saved model is kept), then score every
athlete active in the last eight weeks and keep each one's risk (``engagement_risks``), which
the weekly challenge assignment reads: an athlete at risk gets a gentler challenge, and the
adaptive policy sees the risk in its context.

It is due a week after its last complete run (the time is kept beside the model, so a
restart does not run it again); a run that could not train cleanly or had no model to
score with is tried again after six hours. The challenge assignment also scores each athlete with the saved model
when their week begins, so the risk a challenge is built on is that day's.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta
from pathlib import Path

from core.anomaly.registry import model_dir
from core.challenges.adaptive import AT_RISK
from core.challenges.churn import AT_RISK_DAYS, beats_baseline
from core.challenges.churn_history import athletes_with_activities
from core.challenges.churn_store import load_model, save_model, score_and_keep, train_on_database
from core.storage.base import utcnow

log = logging.getLogger(__name__)

ENGAGEMENT_EVERY = timedelta(days=7)
RETRY_EVERY_S = 6 * 3600.0
RUN_MARKER = "churn.last_run"


def _marker(settings) -> Path:
    return model_dir(settings) / RUN_MARKER


def engagement_due(settings, now: datetime) -> bool:
    """Whether the weekly run is due: never run, or last run a week ago (the time is kept in
    the models folder, beside the model)."""
    try:
        last = datetime.fromisoformat(_marker(settings).read_text().strip())
    except (OSError, ValueError):
        return True
    return last.tzinfo is None or last <= now - ENGAGEMENT_EVERY


def _ran(settings, now: datetime) -> None:
    path = _marker(settings)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(now.isoformat())
    except OSError:  # the run stands; it is only due again in six hours rather than a week
        log.exception("could not keep the drop-off run's time")


def score_engagement(Session, settings, now: datetime | None = None) -> dict:
    """Retrain if the database allows, score the athletes active in the last eight weeks,
    and write their risks; what it did."""
    began = time.monotonic()
    now = now or utcnow()
    done: dict = {}
    model, trained_cleanly = None, True
    try:
        model = train_on_database(Session, now)
    except Exception:  # noqa: BLE001 - a failed training keeps the model there is
        log.exception("drop-off model training failed; keeping the saved one")
        trained_cleanly = False
    if model is not None and not beats_baseline(model):
        log.warning("retrained drop-off model no better than days since the last activity; keeping the saved one",
                    extra={"validation": model.meta.get("validation")})
        done["trained"] = False
        done["validation"] = model.meta.get("validation")
        model = None
    if model is not None:
        save_model(model, settings)
        done["trained"] = True
        done["validation_roc_auc"] = model.meta["validation"]["roc_auc"][model.meta["model"]]
        done["baseline_roc_auc"] = model.meta["validation"]["baseline_roc_auc"]
    if model is None:
        try:
            model = load_model(settings)
        except Exception:  # noqa: BLE001 - a refused file is as good as none
            log.exception("saved drop-off model refused")
    if model is None:
        return {"engagement": {**done, "note": "no drop-off model yet: too little history to train on, or none "
                                               "better than the days since the last activity",
                               "seconds": round(time.monotonic() - began, 3)}}
    users = athletes_with_activities(Session, now - timedelta(days=AT_RISK_DAYS), now)
    got = score_and_keep(Session, users, now, model)
    scored, at_risk = len(got), sum(p >= AT_RISK for p in got.values())
    if trained_cleanly:  # else tried again in six hours, not a week
        _ran(settings, now)
    done.update(scored=scored, at_risk=at_risk, seconds=round(time.monotonic() - began, 3))
    return {"engagement": done}
