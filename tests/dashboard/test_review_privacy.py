"""The moderators' review map leaves out what the athlete hides: moderators are not the
athlete. Real SQLite database, the map rendered as the page sends it."""

from __future__ import annotations

import random
import re
import uuid

import numpy as np

from core.accounts.tables import User
from core.social.privacy import add_zone, set_hide_ends
from dashboard import queries
from dashboard.maps import review_map
from tests.core.anomaly.test_flags import session_drive

PAIR = re.compile(r"\[(-?\d+\.\d+), (-?\d+\.\d+)\]")


def _drawn(item: dict) -> set[tuple[float, float]]:
    page = review_map(item["lat"], item["lon"], item["t"], item["stretches"], item["shown"]).get_root().render()
    return {(float(a), float(b)) for a, b in PAIR.findall(page)}


def _pairs(lat: np.ndarray, lon: np.ndarray) -> set[tuple[float, float]]:
    return {(round(float(a), 5), round(float(b), 5)) for a, b in zip(lat, lon, strict=True)}


def _nothing_hidden_drawn(item: dict) -> None:
    shown = item["shown"]
    hidden = _pairs(item["lat"][~shown], item["lon"][~shown]) - _pairs(item["lat"][shown], item["lon"][shown])
    assert hidden and not hidden & _drawn(item), "a hidden position is on the moderator's map"


def test_the_review_map_draws_none_of_what_the_athlete_hides(session):
    w = session_drive(session, f"p{uuid.uuid4().hex[:8]}")
    runner = session.get(User, w.runner_id)
    before = queries.review_item(session, w.drive_id, w.mod_id)
    assert before["hidden_points"] == 0 and before["shown"].all()
    assert _pairs(before["lat"][:1], before["lon"][:1]) <= _drawn(before)  # the start is drawn

    set_hide_ends(session, runner, 800)
    item = queries.review_item(session, w.drive_id, w.mod_id)
    shown = item["shown"]
    assert shown.shape == item["lat"].shape == item["t"].shape
    assert 0 < item["hidden_points"] == int((~shown).sum()) < shown.size
    assert not shown[0] and not shown[-1]  # the hidden ends
    _nothing_hidden_drawn(item)
    # What is shown is still drawn: a line's ends are never simplified away.
    assert _pairs(item["lat"][shown][[0, -1]], item["lon"][shown][[0, -1]]) <= _drawn(item)

    # A zone too: its cut, or the whole map when the draw withholds it (as on every surface).
    add_zone(session, runner, float(before["lat"][-1]), float(before["lon"][-1]), 400, random.Random(3))
    item = queries.review_item(session, w.drive_id, w.mod_id)
    assert item["hidden_points"] > int((~shown).sum())
    _nothing_hidden_drawn(item)
    # The chart's times and speeds cover the whole activity.
    assert item["t"].size == before["t"].size and np.array_equal(item["speed"], before["speed"], equal_nan=True)

    # The athlete, were they a moderator of their own activity, sees all of it.
    own = queries.review_item(session, w.drive_id, w.runner_id)
    assert own["hidden_points"] == 0 and own["shown"].all()
