"""The recommendation job: retrain the route suggestions (choose the collaborative
algorithm and the hybrid's coefficients on the last four weeks, fit on everything, and
precompute each active athlete's list; ``core.recommend.service.train``) every six hours,
after the routes are up to date."""

from __future__ import annotations

import logging
import time

from core.recommend.service import train

log = logging.getLogger(__name__)
RECOMMEND_EVERY_S = 6 * 3600.0

__all__ = ["RECOMMEND_EVERY_S", "train_recommendations"]


def train_recommendations(Session, settings=None) -> dict:
    """Train; on Spark when ``settings.spark_master`` is set (``core.spark``)."""
    began = time.monotonic()
    if settings is not None and settings.spark_master:
        from core.spark.recommend import als
        from core.spark.session import session

        try:
            done = train(Session, factors=als(session(settings)))
        except Exception as exc:  # noqa: BLE001 - Spark's errors are many kinds; the lists are still made
            log.warning("training on Spark failed (%s): training in this process", exc)
            done = {**train(Session), "spark_failed": str(exc)[:200]}
    else:
        done = train(Session)
    return {"recommendations": {**done, "seconds": round(time.monotonic() - began, 3)}}
