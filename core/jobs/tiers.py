"""Storage tiers, every hour: archive the points of up to ``BATCH`` activities old and unread
enough, and bring back up to ``BATCH`` archived ones viewed often (``core.storage.tiers``);
once a day, sweep the archive of files no activity names."""

from __future__ import annotations

import time

from core.storage.tiers import BATCH, run

TIERS_EVERY_S = 3600.0
SWEEP_EVERY_S = 86400.0  # listing the whole archive (object storage charges by the listing) once a day
_swept_at = [-SWEEP_EVERY_S]


def move_tiers(Session, settings) -> dict:
    now = time.monotonic()
    sweep = now - _swept_at[0] >= SWEEP_EVERY_S
    if sweep:
        _swept_at[0] = now
    out = run(Session, settings, limit=BATCH, sweep_files=sweep)
    moved = out["archived"] or out["restored"] or out["failed"] or out["swept"]
    return {"tiers": out} if moved else {}
