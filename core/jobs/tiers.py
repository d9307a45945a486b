"""Storage tiers, every hour: archive the points of up to ``BATCH`` activities old and unread
enough, and bring back up to ``BATCH`` archived ones read often (``core.storage.tiers``)."""

from __future__ import annotations

from core.storage.tiers import BATCH, run

TIERS_EVERY_S = 3600.0


def move_tiers(Session, settings) -> dict:
    out = run(Session, settings, limit=BATCH)
    moved = out["archived"] or out["restored"] or out["failed"] or out["swept"]
    return {"tiers": out} if moved else {}
