"""The weekly drop-off scoring: retrain the engagement model on the database's own history
(when it has examples enough of both kinds, and the new model ranks its validation weeks
better than the days since the last activity; else the saved model is kept), then score every
athlete active in the last eight weeks and keep each one's risk (``engagement_risks``), which
the weekly challenge assignment reads: an athlete at risk gets a gentler challenge, and the
adaptive policy sees the risk in its context.

It is due when the newest risk on record is a week old, or there is none, so a restart
does not run it again; a run with nothing to score is not tried again for six hours.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from core.challenges.churn import (
    AT_RISK_DAYS,
    beats_baseline,
    load_model,
    risks,
    save_model,
    train_on_database,
)
from core.challenges.churn_history import athletes_with_activities
from core.challenges.tables import EngagementRisk
from core.storage.base import utcnow
from core.storage.engine import write_transaction

log = logging.getLogger(__name__)

ENGAGEMENT_EVERY = timedelta(days=7)
RETRY_EVERY_S = 6 * 3600.0
SCORE_CHUNK = 500  # athletes read and scored at a time
WRITE_CHUNK = 500  # risks written per transaction


def engagement_due(Session, now: datetime) -> bool:
    with Session() as s:
        newest = s.scalar(select(func.max(EngagementRisk.scored_at)))
    return newest is None or newest <= now - ENGAGEMENT_EVERY


def score_engagement(Session, settings, now: datetime | None = None) -> dict:
    """Retrain if the database allows, score the athletes active in the last eight weeks,
    and write their risks; what it did."""
    began = time.monotonic()
    now = now or utcnow()
    done: dict = {}
    model = None
    try:
        model = train_on_database(Session, now)
    except Exception:  # noqa: BLE001 - a failed training keeps the model there is
        log.exception("drop-off model training failed; keeping the saved one")
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
    scored = at_risk = 0
    for k in range(0, len(users), SCORE_CHUNK):
        got = risks(Session, users[k:k + SCORE_CHUNK], now, model)
        rows = [{"user_id": uid, "risk": round(p, 4), "scored_at": now} for uid, p in got.items()]
        for j in range(0, len(rows), WRITE_CHUNK):
            try:
                write_risks(Session, rows[j:j + WRITE_CHUNK])
            except IntegrityError:  # an athlete deleted meanwhile: the others one by one
                for row in rows[j:j + WRITE_CHUNK]:
                    try:
                        write_risks(Session, [row])
                    except IntegrityError:
                        pass
        scored += len(rows)
        at_risk += sum(r["risk"] >= 0.5 for r in rows)
    done.update(scored=scored, at_risk=at_risk, seconds=round(time.monotonic() - began, 3))
    return {"engagement": done}


def write_risks(Session, rows: list[dict]) -> None:
    """Upsert athletes' risks in one short transaction."""
    if not rows:
        return
    with write_transaction(Session, "engagement") as s:
        insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
        stmt = insert(EngagementRisk.__table__)
        s.connection().execute(stmt.on_conflict_do_update(
            index_elements=["user_id"], set_={"risk": stmt.excluded.risk, "scored_at": stmt.excluded.scored_at}),
            rows)
