"""The anomaly model's files: trained, signed, loaded, and retrained on the database."""

from __future__ import annotations

import logging
import math
import sys
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.activities.tables import SPORTS
from core.anomaly.flags import FOUND_FINE
from core.anomaly.model import ModelFileError, PopulationModel
from core.anomaly.tables import ActivityFlag
from core.anomaly.training import (
    grouped_feature_rows,
    held_out_validation,
    population_groups,
    real_recordings,
)
from core.anomaly.vehicle import VehicleModel, vehicle_examples
from core.config import Settings

log = logging.getLogger(__name__)

MODEL_FILE = "anomaly.pkl"
RETRAIN_EVERY_S = 24 * 3600
DB_TRAINING_LIMIT = 3000


def model_dir(settings: Settings) -> Path:
    return Path(settings.data_dir) / "models"


def load_model(settings: Settings) -> PopulationModel | None:
    """The saved model, or None when there is none yet (a refused file raises)."""
    path = model_dir(settings) / MODEL_FILE
    if not path.exists():
        return None
    return PopulationModel.load(path)


def train(settings: Settings, Session=None, say=None, database_rows=None) -> PopulationModel:
    """Train on the real recordings and the database's activities, save, and return the model.
    ``database_rows``: a function that returns the database activities' feature rows per
    sport and what computed them (``core.spark.features.spark_rows``: a Spark job from their
    points); without it, the features stored with the latest verdicts are read."""
    say = say or (lambda text: None)
    real = real_recordings(settings.shared_tracks_dir)
    rows, groups = grouped_feature_rows(population_groups(real))
    sources = {"shared_recordings": len(real)}
    if Session is not None:
        db_rows = None
        if database_rows is not None:
            try:
                db_rows, sources["features_on"] = database_rows()
            except Exception as exc:  # noqa: BLE001 - Spark's errors are many kinds; the model is still trained
                log.warning("the database rows' features could not be computed on Spark (%s): "
                            "reading the stored verdicts' features", exc)
                sources["features_on"] = f"stored verdicts: Spark failed: {str(exc)[:200]}"
        if db_rows is None:
            with Session() as s:
                db_rows = _database_rows(s)
        for sport, extra in db_rows.items():
            rows[sport].extend(extra)
            groups[sport].extend(("database", k) for k in range(len(extra)))
        sources["database_activities"] = sum(len(v) for v in db_rows.values())
    model = PopulationModel.train({sport: np.array(r) for sport, r in rows.items()}, sources)
    # Validation: the forest alone on a fifth of the activities, whole recordings held out.
    model.meta["validation"] = held_out_validation(rows, groups)
    # The vehicle model: the real drives beside the recordings against the real recordings.
    examples = vehicle_examples(settings.shared_tracks_dir, humans=real)
    if any(label == 1 for _, _, label in examples) and any(label == 0 for _, _, label in examples):
        model.vehicle = VehicleModel.train(examples)
        model.meta["vehicle"] = {**model.vehicle.meta, "threshold": round(model.vehicle.threshold, 4)}
        sources["real_drives"] = sum(1 for _, _, label in examples if label == 1)
    model.save(model_dir(settings) / MODEL_FILE)
    say(f"anomaly model trained on {sum(len(v) for v in rows.values())} activities "
        f"({', '.join(f'{k}: {v}' for k, v in sources.items())}) and saved to {model_dir(settings) / MODEL_FILE}")
    return model


def ensure_model(settings: Settings, Session=None) -> PopulationModel:
    """The saved model, training one first (and saying so on stderr) when there is none."""
    try:
        model = load_model(settings)
    except ModelFileError as exc:
        print(f"{exc}; training a new one", file=sys.stderr)
        model = None
    if model is None:
        print("no trained anomaly model yet: training one from the data available", file=sys.stderr)
        model = train(settings, Session, say=lambda text: print(text, file=sys.stderr))
    return model


def _database_rows(s: Session) -> dict[str, list]:
    """Feature rows of activities the detector scored and nobody found wrong."""
    from core.anomaly.features import MODEL_FEATURES

    out = {sport: [] for sport in SPORTS}
    rows = s.execute(select(ActivityFlag.sport, ActivityFlag.features)
                     .where(ActivityFlag.status.in_(FOUND_FINE))
                     .order_by(ActivityFlag.scored_at.desc()).limit(DB_TRAINING_LIMIT)).all()
    for sport, values in rows:
        if sport in out and values:
            out[sport].append(np.array([_num(values.get(name)) for name in MODEL_FEATURES]))
    return out


def _num(value) -> float:
    return float(value) if isinstance(value, (int, float)) else math.nan
