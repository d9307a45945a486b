"""The moderators' review map leaves out what the athlete hides, as every surface does for
others: moderators are not the athlete. Real SQLite and PostgreSQL databases, the map
rendered as the page sends it, compared with what another athlete is shown."""

from __future__ import annotations

import random
import re
import uuid

import numpy as np

from core.accounts.tables import User
from core.activities.tables import Activity
from core.social.privacy_settings import add_zone, set_hide_ends
from core.storage.points import stored_track, viewer_track
from dashboard import queries
from dashboard.maps import review_map
from tests.core.anomaly.test_flags import session_drive

PAIR = re.compile(r"\[(-?\d+\.\d+), (-?\d+\.\d+)\]")


def _drawn(item: dict) -> set[tuple[float, float]]:
    page = review_map(item["map_lat"], item["map_lon"], item["map_t"], item["stretches"],
                      item["shown"]).get_root().render()
    return {(float(a), float(b)) for a, b in PAIR.findall(page)}


def _pairs(lat: np.ndarray, lon: np.ndarray) -> set[tuple[float, float]]:
    return {(round(float(a), 5), round(float(b), 5)) for a, b in zip(lat, lon, strict=True) if np.isfinite(a + b)}


def _as_others_see(session, item: dict, moderator_id: int) -> None:
    """The map draws exactly the stored points others are shown, and none of the rest."""
    activity = session.get(Activity, item["activity_id"])
    public = viewer_track(session, moderator_id, activity, review=True)
    whole = stored_track(session, activity)
    shown = item["shown"]
    assert _pairs(item["map_lat"][shown], item["map_lon"][shown]) == _pairs(public.lat, public.lon)
    hidden = _pairs(whole.lat, whole.lon) - _pairs(public.lat, public.lon)
    assert hidden and not hidden & _drawn(item), "a hidden position is on the moderator's map"


def test_the_review_map_draws_none_of_what_the_athlete_hides(session):
    w = session_drive(session, f"p{uuid.uuid4().hex[:8]}")
    runner = session.get(User, w.runner_id)
    before = queries.review_item(session, w.drive_id, w.mod_id)
    assert before["hidden_points"] == 0 and before["shown"].all()
    assert _pairs(before["map_lat"][:1], before["map_lon"][:1]) <= _drawn(before)  # the start is drawn

    set_hide_ends(session, runner, 800)
    item = queries.review_item(session, w.drive_id, w.mod_id)
    shown = item["shown"]
    assert shown.shape == item["map_lat"].shape == item["map_t"].shape
    assert 0 < item["hidden_points"] == int((~shown).sum()) < shown.size
    assert not shown[0] and not shown[-1]  # the hidden ends
    _as_others_see(session, item, w.mod_id)
    # What is shown is still drawn: a line's ends are never simplified away.
    lat, lon = item["map_lat"][shown], item["map_lon"][shown]
    assert _pairs(lat[[0, -1]], lon[[0, -1]]) <= _drawn(item)

    # A zone too: its cut, or no map at all when the draw withholds it (as on every surface).
    add_zone(session, runner, float(before["map_lat"][-1]), float(before["map_lon"][-1]), 400, random.Random(3))
    item = queries.review_item(session, w.drive_id, w.mod_id)
    assert item["hidden_points"] > int((~shown).sum())
    _as_others_see(session, item, w.mod_id)
    # The chart's times and speeds cover the whole activity.
    assert item["t"].size == before["t"].size and np.array_equal(item["speed"], before["speed"], equal_nan=True)

    # The athlete, were they a moderator of their own activity, sees all of it.
    own = queries.review_item(session, w.drive_id, w.runner_id)
    assert own["hidden_points"] == 0 and own["shown"].all()


def test_rows_without_a_position_neither_break_nor_join_the_review_map_lines():
    """Fixes and sensor-only rows (no position) alternate: the shown fixes still make one
    line; a hidden stretch between shown ones still splits it in two."""
    n = 40
    lat = np.where(np.arange(n) % 2 == 0, 46.0 + np.arange(n) * 1e-4, np.nan)
    lon = np.where(np.arange(n) % 2 == 0, 14.0 + np.arange(n) * 1e-4, np.nan)
    t = np.arange(n, dtype=float)
    page = review_map(lat, lon, t, [(4.0, 12.0)]).get_root().render()
    assert page.count("route-line") == 1 and page.count("suspicious-line") == 1 and "start-marker" in page
    shown = np.ones(n, dtype=bool)
    shown[16:25] = False  # fixes 16, 18, 20, 22, 24 hidden; the rows between them have no position
    page = review_map(lat, lon, t, [], shown).get_root().render()
    assert page.count("route-line") == 2
    drawn = {(float(a), float(b)) for a, b in PAIR.findall(page)}
    assert not _pairs(lat[16:25], lon[16:25]) & drawn


def test_a_review_card_reads_the_stored_points_once(session, monkeypatch):
    """The map, the chart and the profile of a review card come from one read of the points."""
    import core.activities.summary as summary
    import core.anomaly.moderation as moderation

    w = session_drive(session, f"p{uuid.uuid4().hex[:8]}")
    reads = []
    for module in (moderation, summary):
        real = module.stored_track
        monkeypatch.setattr(module, "stored_track", lambda s, a, _real=real: (reads.append(a.id), _real(s, a))[1])
    item = queries.review_item(session, w.drive_id, w.mod_id)
    assert item is not None and reads == [w.drive_id]
