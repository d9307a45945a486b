"""Storage tiers, every hour: make the points table's next partitions ahead (PostgreSQL,
``core.storage.partitions``), archive the points of up to ``BATCH`` activities old and unread
enough, and bring back up to ``BATCH`` archived ones viewed often (``core.storage.tiers``);
once a day, sweep the archive of files no activity names (archived points, and the files
activities were imported from: ``core.activities.originals``)."""

from __future__ import annotations

import time

from core.activities import originals
from core.storage.cold import open_archive
from core.storage.partitions import ensure_ahead
from core.storage.tiers import BATCH, run

TIERS_EVERY_S = 3600.0
SWEEP_EVERY_S = 86400.0  # listing the whole archive (object storage charges by the listing) once a day
_swept_at = [-SWEEP_EVERY_S]


def move_tiers(Session, settings) -> dict:
    now = time.monotonic()
    sweep = now - _swept_at[0] >= SWEEP_EVERY_S
    if sweep:
        _swept_at[0] = now
    made = ensure_ahead(Session, settings.point_partition_size)
    out = run(Session, settings, limit=BATCH, sweep_files=sweep)
    if sweep:  # and the files of uploads no activity names (their import died midway)
        out["swept"] += originals.sweep(Session, open_archive(settings))
    if made:
        out["partitions_made"] = made
    moved = out["archived"] or out["restored"] or out["failed"] or out["swept"] or out["partitions_emptied"] or made
    return {"tiers": out} if moved else {}
