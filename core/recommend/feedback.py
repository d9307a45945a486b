"""What athletes did with routes, as the collaborative models read it: ``Event``s turned
into explicit 1-5 ratings (Surprise) or into implicit feedback (a factor model such as
Spark's ALS, whose fitted ``Factors`` come back here)."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass

import numpy as np

RATING_SCALE = (1.0, 5.0)


@dataclass
class Event:
    user: int
    route: int
    at: float  # Unix seconds
    kind: str  # "done", "rating", "save", "dismiss", "kudos"
    value: float = 1.0


@dataclass
class Factors:
    """A fitted factor model: each athlete's and each route's vector (rows), and which
    id each row is."""

    users: dict[int, int]
    user_vectors: np.ndarray
    items: dict[int, int]
    item_vectors: np.ndarray


@dataclass
class _Tally:
    """Per (athlete, route) pair: how often each kind of event happened, and the latest
    explicit rating."""

    done: Counter
    saves: Counter
    kudos: Counter
    dismissed: set
    stated: dict

    def pairs(self) -> set:
        return set(self.done) | set(self.saves) | set(self.kudos) | self.dismissed | set(self.stated)


def _tally(events: list[Event]) -> _Tally:
    t = _Tally(Counter(), Counter(), Counter(), set(), {})
    for e in sorted(events, key=lambda e: e.at):
        key = (e.user, e.route)
        if e.kind == "done":
            t.done[key] += 1
        elif e.kind == "rating":
            t.stated[key] = float(e.value)
        elif e.kind == "save":
            t.saves[key] += 1
        elif e.kind == "kudos":
            t.kudos[key] += 1
        elif e.kind == "dismiss":
            t.dismissed.add(key)
    return t


def ratings(events: list[Event]) -> dict[tuple[int, int], float]:
    """Each (athlete, route) pair's 1-5 rating: an explicit rating wins; otherwise
    completions (one: 3.5, three: 4.5, seven or more: 5), a save (at least 4), kudos on an
    activity there (3) or a dismissal (1)."""
    t = _tally(events)
    out = {}
    for key in t.pairs():
        if key in t.stated:
            r = t.stated[key]
        elif key in t.dismissed:
            r = 1.0
        elif t.done[key]:
            r = min(5.0, 2.5 + math.log2(1 + t.done[key]))
        else:
            r = 3.0
        if t.saves[key]:
            r = max(r, 4.0)
        out[key] = float(np.clip(r, *RATING_SCALE))
    return out


def implicit(events: list[Event]) -> dict[tuple[int, int], float]:
    """Each (athlete, route) pair's implicit feedback for a factor model (ALS): how often
    they did it, plus 2 for a save, 1 for kudos there and the stars of a rating above 3; a
    dismissal or a rating of 1 or 2 is a negative (no preference, held with confidence)."""
    t = _tally(events)
    out = {}
    for key in t.pairs():
        stars = t.stated.get(key, 3.0)
        if key in t.dismissed or stars < 3:
            out[key] = -2.0
        else:
            out[key] = t.done[key] + 2.0 * t.saves[key] + 1.0 * t.kudos[key] + max(stars - 3.0, 0.0)
    return out
