"""The recommendation job: retrain the route suggestions (choose the collaborative
algorithm and the hybrid's coefficients on the last four weeks, fit on everything, and
precompute each active athlete's list; ``core.recommend.service.train``) every six hours,
after the routes are up to date."""

from __future__ import annotations

import time

from core.recommend.service import train

RECOMMEND_EVERY_S = 6 * 3600.0

__all__ = ["RECOMMEND_EVERY_S", "train_recommendations"]


def train_recommendations(Session) -> dict:
    began = time.monotonic()
    done = train(Session)
    return {"recommendations": {**done, "seconds": round(time.monotonic() - began, 3)}}
