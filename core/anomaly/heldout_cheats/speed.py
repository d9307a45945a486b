"""Held-out kinds that change the speed of a whole recording or part of it: ``compressed``
(sped up) and ``ride_as_run`` (a ride uploaded as a run)."""

from __future__ import annotations

import random
import re

import numpy as np

from core.anomaly.heldout_cheats.resampling import like, retime
from core.anomaly.heldout_cheats.source import KMH, Source, moving_speed
from core.tracks.track import COLUMNS, Track

RUN_WORDS = re.compile(r"(?<![a-z])(run|runs|running|jog|jogging)(?![a-z])")


def compressed(src: Source, rng: random.Random) -> Track | None:
    tr = src.track
    n = len(tr)
    if rng.random() < 0.5:
        factor = rng.uniform(1.25, 1.6)
        rows = int(n * rng.choice((1 / 2, 1 / 3)))
        lo = rng.randint(0, n - 1 - rows)
        hi = lo + rows
    else:
        factor = rng.uniform(1.12, 1.35)
        lo, hi = 0, n - 1
    if hi - lo < 10:
        return None
    mid, end_t = retime(tr, lo, hi, factor, src.dt, float(tr.t[lo]))
    if mid["t"].size < 2:
        return None
    head = tr.take(np.arange(lo))
    tail = tr.take(np.arange(hi, n))
    shift = end_t - tr.t[hi]
    cols = {name: np.concatenate([getattr(head, name), mid[name],
                                  getattr(tail, name) + (shift if name == "t" else 0.0)]) for name in COLUMNS}
    return like(tr, cols)


def _says_run(track: Track) -> bool:
    """Whether the track's name (or a text in its meta) names a run: "Running", "run_", "jog"."""
    texts = [track.name or ""] + [v for v in track.meta.values() if isinstance(v, str)]
    return any(RUN_WORDS.search(text.lower()) for text in texts)


def ride_as_run(src: Source, rng: random.Random) -> Track | None:
    tr = src.track
    if tr.sport != "ride" or _says_run(tr) or moving_speed(src) < 13.0 * KMH:
        return None
    out = tr
    if rng.random() < 0.6:
        interval = float(rng.randint(1, 5))
        if abs(interval - src.dt) > 0.25:
            mid, end_t = retime(tr, 0, len(tr) - 1, 1.0, interval, float(tr.t[0]))
            last = tr.take(np.array([len(tr) - 1]))
            cols = {name: np.concatenate([mid[name], getattr(last, name)]) for name in COLUMNS}
            out = like(tr, cols)
    cad = np.full(len(out), np.nan) if rng.random() < 0.75 else out.cad.copy()
    cols = {name: getattr(out, name).copy() for name in COLUMNS}
    cols["cad"] = cad
    return like(tr, cols, sport="run")
