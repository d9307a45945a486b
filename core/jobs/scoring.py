"""The anomaly job: keep a model (the saved one, retrained daily), score what completed since the
last round, and recalibrate the flagging threshold from moderators' decisions."""

from __future__ import annotations

import logging
import time

from core.anomaly.calibration import recalibrate, threshold
from core.anomaly.failures import Pause
from core.anomaly.model import ModelFileError
from core.anomaly.registry import RETRAIN_EVERY_S, load_model, train
from core.anomaly.scoring import score_pending
from core.spark.features import spark_rows

log = logging.getLogger(__name__)

SCORE_BATCH = 200  # activities scored per round; a full round means a backlog, so the next starts at once


class ModelKeeper:
    """The model the scorer uses: the saved one if it is good, retrained once a day."""

    def __init__(self, settings, Session):
        self.settings, self.Session = settings, Session
        self.model = None
        self.trained_at = 0.0

    def current(self, now: float, done: dict):
        if self.model is None and self.trained_at == 0.0:  # first round: the saved model, if good
            try:
                self.model = load_model(self.settings)
            except ModelFileError as exc:
                log.warning("%s; retraining", exc)
            self.trained_at = now
        if self.model is None or now - self.trained_at >= RETRAIN_EVERY_S:
            self.model = train(self.settings, self.Session, say=log.info, database_rows=spark_rows(self.settings))
            self.trained_at = now
            done["anomaly_model"] = "trained"
        return self.model


def score(Session, settings, model, done: dict, pause: Pause | None = None) -> int:
    """Score up to ``SCORE_BATCH`` activities that completed since; returns how many. With
    ``pause``, a round is put off after rounds that failed as a whole (``failures.Pause``)."""
    began = time.monotonic()
    scored = score_pending(Session, model, threshold(settings), batch=SCORE_BATCH, pause=pause)
    if pause is not None and pause.waiting(time.monotonic()):
        done["scoring_paused_s"] = round(pause.until - time.monotonic())
    if scored:
        done["scored"] = {"activities": scored, "seconds": round(time.monotonic() - began, 3)}
    return scored


def calibrate(Session, settings, done: dict) -> None:
    """Recalibrate the flagging threshold from moderators' decisions."""
    with Session() as s:
        calibration = recalibrate(s, settings)
    if calibration.get("changed"):
        done["threshold"] = calibration["threshold"]
