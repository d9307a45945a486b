"""The drop-off model's files and the database's side of it: saving and loading the model
(signed with the installation's key), training it on the database's own history, and
scoring athletes and keeping their risks. The model itself is ``core.challenges.churn``."""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import logging
import os
import pickle
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.exc import IntegrityError

from core.anomaly.model import ModelFileError, installation_key
from core.anomaly.registry import model_dir
from core.challenges.churn import (
    AT_RISK_DAYS,
    CUTOFF_STEP_DAYS,
    FORMAT,
    LABEL_DAYS,
    SEED,
    ChurnModel,
    at_risk,
    enough_examples,
    examples,
    feature_matrix,
    fit_model,
    library_versions,
)
from core.challenges.churn_history import athletes_with_activities, read_daily
from core.challenges.tables import EngagementRisk
from core.config import Settings
from core.storage.engine import write_transaction

log = logging.getLogger(__name__)

MODEL_FILE = "churn.pkl"
DB_TRAINING_WEEKS = 52
SCORE_CHUNK = 500  # athletes read and scored at a time
RISK_WRITE_CHUNK = 500  # risks written per transaction
MAX_TRAINING_ATHLETES = 20_000  # sampled when the database holds more (about 1 GB of day arrays)


# Persistence -------------------------------------------------------------------------------


def save_model(model: ChurnModel, settings: Settings) -> Path:
    """Write the model to the models folder, signed with the installation's key, atomically."""
    folder = model_dir(settings)
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / MODEL_FILE
    buf = io.BytesIO()
    pickle.dump({"estimator": model.estimator, "meta": model.meta}, buf, protocol=pickle.HIGHEST_PROTOCOL)
    body = buf.getvalue()
    signature = hmac.new(installation_key(folder), body, hashlib.sha256).hexdigest().encode()
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(FORMAT + signature + b"\n" + body)
    os.replace(tmp, path)
    path.with_suffix(".json").write_text(json.dumps(model.meta, indent=2))
    return path


def load_model(settings: Settings) -> ChurnModel | None:
    """The saved model, or None when there is none; a file of another format, installation
    or library version raises ModelFileError (retrain then)."""
    folder = model_dir(settings)
    path = folder / MODEL_FILE
    if not path.exists():
        return None
    data = path.read_bytes()
    if not data.startswith(FORMAT):
        raise ModelFileError(f"{path} is not a drop-off model file of this version ({FORMAT.decode().strip()})")
    signature, _, body = data[len(FORMAT):].partition(b"\n")
    if not (folder / "anomaly.key").exists():
        raise ModelFileError(f"{path} has no signing key beside it; retrain the drop-off model")
    expected = hmac.new(installation_key(folder), body, hashlib.sha256).hexdigest().encode()
    if not hmac.compare_digest(signature, expected):
        raise ModelFileError(f"{path} was not written by this installation (bad signature); refusing to load it")
    saved = pickle.loads(body)  # noqa: S301 - signed by our own key above
    if saved["meta"].get("versions") != library_versions():
        raise ModelFileError(f"{path} was written under {saved['meta'].get('versions')}, not {library_versions()}; "
                             "retrain the drop-off model")
    return ChurnModel(saved["estimator"], saved["meta"])


_current: dict = {}


def current_model(settings: Settings) -> ChurnModel | None:
    """The saved model, read again only when its file changes; None when there is none or
    it is refused (logged: the weekly run retrains)."""
    path = model_dir(settings) / MODEL_FILE
    try:
        stamp = (str(path), path.stat().st_mtime_ns)
    except OSError:
        return None
    if _current.get("stamp") != stamp:
        try:
            model = load_model(settings)
        except Exception as exc:  # noqa: BLE001 - any file that cannot be read (a library upgrade's unpickling too) is none
            log.error("saved drop-off model refused: %s: %s", exc.__class__.__name__, exc)
            model = None
        _current.update(stamp=stamp, model=model)
    return _current["model"]


# The database ------------------------------------------------------------------------------


def write_risks(Session, rows: list[dict]) -> int:
    """Upsert athletes' risks ({user_id, risk, scored_at}) in short transactions of 500; an
    athlete deleted meanwhile is skipped. How many were written."""
    written = 0
    for k in range(0, len(rows), RISK_WRITE_CHUNK):
        chunk = rows[k:k + RISK_WRITE_CHUNK]
        try:
            _upsert_risks(Session, chunk)
            written += len(chunk)
        except IntegrityError:  # an athlete deleted meanwhile: the others one by one
            for row in chunk:
                try:
                    _upsert_risks(Session, [row])
                    written += 1
                except IntegrityError:
                    pass
    return written


def _upsert_risks(Session, rows: list[dict]) -> None:
    if not rows:
        return
    with write_transaction(Session, "engagement") as s:
        insert = pg_insert if s.get_bind().dialect.name == "postgresql" else sqlite_insert
        stmt = insert(EngagementRisk.__table__)
        s.connection().execute(stmt.on_conflict_do_update(
            index_elements=["user_id"], set_={"risk": stmt.excluded.risk, "scored_at": stmt.excluded.scored_at}),
            rows)


def score_and_keep(Session, user_ids: list[int], now: datetime, model: ChurnModel) -> dict[int, float]:
    """Score the athletes (those active in the last eight weeks), ``SCORE_CHUNK`` at a time,
    and keep their risks; the risks."""
    out: dict[int, float] = {}
    for k in range(0, len(user_ids), SCORE_CHUNK):
        got = risks(Session, user_ids[k:k + SCORE_CHUNK], now, model)
        write_risks(Session, [{"user_id": uid, "risk": round(p, 4), "scored_at": now} for uid, p in got.items()])
        out.update(got)
    return out


def _day_start(now: datetime) -> datetime:
    """The start of ``now``'s UTC day: the cutoff, so only complete days are read."""
    if now.tzinfo is None:
        raise ValueError("naive datetime given; use an aware UTC datetime")
    return datetime.combine(now.astimezone(UTC).date(), datetime.min.time(), tzinfo=UTC)


def train_on_database(Session, now: datetime, weeks: int = DB_TRAINING_WEEKS) -> ChurnModel | None:
    """A model trained on the database's own last ``weeks`` weeks (cutoffs every seven days
    whose label week has ended by today), or None with too few examples of either class."""
    today = _day_start(now)
    last_cutoff = today - timedelta(days=LABEL_DAYS)
    first_cutoff = last_cutoff - timedelta(days=CUTOFF_STEP_DAYS * (weeks - 1))
    start = first_cutoff - timedelta(days=AT_RISK_DAYS)
    users = athletes_with_activities(Session, start, last_cutoff)
    if not users:
        return None
    if len(users) > MAX_TRAINING_ATHLETES:  # a seeded sample: memory and time stay bounded
        pick = np.random.default_rng(SEED).choice(len(users), MAX_TRAINING_ATHLETES, replace=False)
        users = [users[i] for i in sorted(pick)]
    daily = read_daily(Session, users, start.date(), today.date())
    cutoffs = range(AT_RISK_DAYS, (last_cutoff - start).days + 1, CUTOFF_STEP_DAYS)
    train = examples(daily, cutoffs)
    if not enough_examples(train):
        log.info("too few drop-off examples to train on",
                 extra={"rows": len(train.y), "dropped": int(train.y.sum())})
        return None
    return fit_model(train, sources={"database": {"athletes": len(users), "until": today.isoformat(),
                                                  "weeks": weeks}})


def risks(Session, user_ids: list[int], now: datetime, model: ChurnModel) -> dict[int, float]:
    """Each athlete's risk of a quiet week from today (UTC), from the complete days before
    it; athletes with no activity in the last eight weeks have already dropped off and are
    left out."""
    today = _day_start(now)
    ids = list(dict.fromkeys(user_ids))
    if not ids:
        return {}
    daily = read_daily(Session, ids, (today - timedelta(days=AT_RISK_DAYS)).date(), today.date())
    rows = np.flatnonzero(at_risk(daily.activities, AT_RISK_DAYS))
    if len(rows) == 0:
        return {}
    p = model.predict(feature_matrix(daily.take(rows), AT_RISK_DAYS))
    return {ids[r]: float(p[k]) for k, r in enumerate(rows)}
