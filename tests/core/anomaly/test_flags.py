"""A moderator's verdict sticks: the flag's transition table walked state by state (every
allowed transition and every refusal, against the design written out here once more), and
the store following it on both databases: a confirmed activity the athlete crops stays held
and goes back to the moderators' queue as cropped, until a moderator releases it; scoring
writes each verdict in a short transaction of its own."""

from __future__ import annotations

import random
import time
import uuid
from dataclasses import dataclass

import numpy as np
import pytest
from sqlalchemy import delete, event, select

from core.accounts.tables import User
from core.accounts.users import create_user
from core.activities.imports import record_track
from core.activities.lifecycle import NotFound
from core.activities.summary import summarise_activity
from core.activities.tables import Activity, ActivityEvent
from core.anomaly import cheats
from core.anomaly.flags import (
    AWAITING_MODERATOR,
    CONFIRM,
    CROP,
    DISMISS,
    EVENTS,
    FOUND_FINE,
    HELD,
    REQUEST_CROP,
    SCORE_CLEAR,
    SCORE_FLAGGED,
    SCORE_SAMPLED,
    ModerationError,
    apply_event,
    is_held,
)
from core.anomaly.moderation import (
    crop_activity,
    decide,
    flagged_stretches,
    latest_decision,
    own_flag,
    queue,
    review_item,
)
from core.anomaly.scoring import score_activity, score_pending
from core.anomaly.tables import FLAG_STATUSES, ActivityFlag, ModerationDecision
from core.social.leaderboards import totals
from core.storage.engine import WRITE_LOCKS, make_sessionmaker
from core.storage.points import stored_track
from core.synthetic.tracks import synthetic_track
from core.tracks.geo import segment_lengths_m

NO_VERDICT = None
STATES = (NO_VERDICT, *FLAG_STATUSES)
# The design, written out independently of core.anomaly.flags: (from, event) -> to, where
# "rescored" means the crop's new score decides.
ALLOWED = {
    # Scoring never overturns a moderator; a random sample of cleared activities is no ruling.
    (NO_VERDICT, SCORE_CLEAR): "clear", ("clear", SCORE_CLEAR): "clear", ("flagged", SCORE_CLEAR): "clear",
    ("sampled", SCORE_CLEAR): "clear",
    (NO_VERDICT, SCORE_FLAGGED): "flagged", ("clear", SCORE_FLAGGED): "flagged",
    ("flagged", SCORE_FLAGGED): "flagged", ("sampled", SCORE_FLAGGED): "flagged",
    (NO_VERDICT, SCORE_SAMPLED): "sampled", ("clear", SCORE_SAMPLED): "sampled",
    ("flagged", SCORE_SAMPLED): "sampled", ("sampled", SCORE_SAMPLED): "sampled",
    # A moderator decides on what waits in the queue, samples among it: a confirmed sample is
    # held as any confirmed flag.
    ("flagged", DISMISS): "dismissed", ("crop_requested", DISMISS): "dismissed", ("cropped", DISMISS): "dismissed",
    ("sampled", DISMISS): "dismissed",
    ("flagged", CONFIRM): "confirmed", ("crop_requested", CONFIRM): "confirmed", ("cropped", CONFIRM): "confirmed",
    ("sampled", CONFIRM): "confirmed",
    # A crop request is held and shown to the athlete: never on a sample, which they must not see.
    ("flagged", REQUEST_CROP): "crop_requested", ("crop_requested", REQUEST_CROP): "crop_requested",
    ("cropped", REQUEST_CROP): "crop_requested",
    # The athlete's crop: scored again, unless a moderator has ruled; then back to them.
    (NO_VERDICT, CROP): "rescored", ("clear", CROP): "rescored", ("flagged", CROP): "rescored",
    ("sampled", CROP): "rescored",
    ("dismissed", CROP): "rescored", ("confirmed", CROP): "cropped", ("crop_requested", CROP): "cropped",
    ("cropped", CROP): "cropped",
}
REFUSED = [(state, ev) for state in STATES for ev in EVENTS if (state, ev) not in ALLOWED]


@pytest.mark.parametrize(("state", "event", "new"), [(s, e, n) for (s, e), n in ALLOWED.items()],
                         ids=[f"{s}-{e}" for s, e in ALLOWED])
def test_an_allowed_event_moves_the_flag_where_the_design_says(state, event, new):
    if new == "rescored":
        assert apply_event(state, event, flagged=True) == "flagged"
        assert apply_event(state, event, flagged=True, sampled=True) == "flagged"
        assert apply_event(state, event, flagged=False) == "clear"
        assert apply_event(state, event, flagged=False, sampled=True) == "sampled"
    else:
        assert apply_event(state, event) == new


@pytest.mark.parametrize(("state", "event"), REFUSED, ids=[f"{s}-{e}" for s, e in REFUSED])
def test_an_event_the_design_does_not_allow_is_refused_with_the_reason(state, event):
    with pytest.raises(ModerationError) as refused:
        apply_event(state, event, flagged=True)
    message = str(refused.value)
    assert message.startswith("this activity ") and ": " in message
    if event in (SCORE_CLEAR, SCORE_FLAGGED, SCORE_SAMPLED):
        assert "moderator's decision" in message
    else:
        assert "only a flag waiting for review" in message


def test_the_refusals_are_the_moderators_decisions_standing_and_decisions_outside_the_queue():
    assert sorted(REFUSED, key=str) == sorted(
        [(s, e) for s in ("dismissed", "confirmed", "crop_requested", "cropped")
         for e in (SCORE_CLEAR, SCORE_FLAGGED, SCORE_SAMPLED)]
        + [(s, e) for s in (NO_VERDICT, "clear", "dismissed", "confirmed") for e in (DISMISS, CONFIRM, REQUEST_CROP)]
        + [("sampled", REQUEST_CROP)],
        key=str)


def test_a_crop_request_on_a_sample_is_refused_saying_it_is_a_sample():
    with pytest.raises(ModerationError, match="not a random sample"):
        apply_event("sampled", REQUEST_CROP)


def test_held_states_and_the_queue_are_the_ones_awaiting_or_after_a_ruling():
    assert HELD == {"flagged", "confirmed", "crop_requested", "cropped"}
    assert [s for s in STATES if is_held(s)] == ["flagged", "confirmed", "crop_requested", "cropped"]
    assert AWAITING_MODERATOR == ("flagged", "crop_requested", "cropped", "sampled")
    assert not is_held("sampled") and "sampled" in FOUND_FINE


def test_a_crop_that_needs_a_new_score_without_one_and_unknown_words_are_refused():
    with pytest.raises(ModerationError, match="needs its new score"):
        apply_event("flagged", CROP)
    with pytest.raises(ModerationError, match="unknown event"):
        apply_event("flagged", "forgive")
    with pytest.raises(ModerationError, match="unknown flag status"):
        apply_event("pending", DISMISS)


@pytest.fixture
def committed(engine):
    """A session factory committing for real (the crop and the worker open their own
    transactions); the athletes a test makes are named with its tag and deleted afterwards,
    their activities and flags with them."""
    tag = f"w{uuid.uuid4().hex[:8]}"
    yield make_sessionmaker(engine), tag
    with make_sessionmaker(engine)() as s, s.begin():
        s.execute(delete(User).where(User.username.like(f"{tag}%")))


@dataclass
class DriveWorld:
    runner_id: int
    mod_id: int
    drive_id: int


def drive_world(Sessions, tag: str) -> DriveWorld:
    """A runner with four ordinary runs and one with a car drive in it, all scored (the drive
    flagged by the rules), and a moderator."""
    with Sessions() as s, s.begin():
        world = session_drive(s, tag)
        assert s.get(Activity, world.drive_id).held
        return world


def moderate(Sessions, w: DriveWorld, action: str, note: str = "") -> None:
    with Sessions() as s, s.begin():
        decide(s, w.drive_id, s.get(User, w.mod_id), action, note)


def drive_range(Sessions, w: DriveWorld) -> tuple[float, float]:
    """The minutes the athlete spent in the car, with a minute either side."""
    with Sessions() as s:
        track = stored_track(s, s.get(Activity, w.drive_id))
    fast = track.t[1:][segment_lengths_m(track.lat, track.lon) / np.diff(track.t) > 6.0]
    return float(fast.min()) - 60, float(fast.max()) + 60


def drive_times(Sessions, w: DriveWorld) -> np.ndarray:
    with Sessions() as s:
        return stored_track(s, s.get(Activity, w.drive_id)).t


def board(s, user_id: int) -> float:
    return dict(totals(s, "all", "run")).get(user_id, 0.0)


def waiting(s, activity_id: int) -> list[str]:
    """The drive's place in the moderators' queue: its status there, or nothing."""
    return [f.status for f, _ in queue(s, limit=1000) if f.activity_id == activity_id]


def test_a_confirmed_activity_cropped_stays_held_and_waits_as_cropped_until_a_moderator_releases_it(committed):
    Sessions, tag = committed
    w = drive_world(Sessions, tag)
    with Sessions() as s:
        reasons = list(s.get(ActivityFlag, w.drive_id).reasons)
        before = s.get(Activity, w.drive_id).distance_m
        others = board(s, w.runner_id)
    assert reasons
    moderate(Sessions, w, "confirm", "that was a car")

    t0, t1 = drive_range(Sessions, w)
    assert crop_activity(Sessions, w.drive_id, w.runner_id, t0, t1, None).status == "cropped"
    with Sessions() as s:
        flag, drive = s.get(ActivityFlag, w.drive_id), s.get(Activity, w.drive_id)
        # The drive is gone and the new version scores clean, but the confirmation is not undone.
        assert flag.status == "cropped" and drive.held
        assert drive.distance_m < before and flag.score < 0.5 and not flag.reasons
        assert board(s, w.runner_id) == pytest.approx(others)
        assert waiting(s, w.drive_id) == ["cropped"]
        # What the moderators see beside the crop: the reasons it was flagged for, the range and the figures.
        assert flag.crop["reasons_before"] == reasons and flag.crop["status_before"] == "confirmed"
        (cut,) = flag.crop["crops"]
        assert (cut["t0"], cut["t1"]) == (t0, t1) and cut["points_removed"] > 0
        assert cut["before"]["distance_m"] == pytest.approx(before)
        assert cut["after"]["distance_m"] == pytest.approx(drive.distance_m)
        assert cut["before"]["score"] >= 0.5 > cut["after"]["score"]
        # The crop's figures are what the stored track gives, and the straight line across the
        # range removed counts for nothing: no car-speed maximum, no record-breaking 400 m.
        assert drive.summary == summarise_activity(s, drive).to_dict()
        assert drive.max_speed_mps < 31 / 3.6 and drive.summary["best_efforts_s"]["400"] > 43.03
        assert drive.point_count == len(stored_track(s, drive))
        # Scoring again cannot release it either.
        with pytest.raises(ModerationError, match="moderator's decision"):
            score_activity(s, drive, None)

    moderate(Sessions, w, "dismiss", "fine without the drive")
    with Sessions() as s:
        drive = s.get(Activity, w.drive_id)
        assert s.get(ActivityFlag, w.drive_id).status == "dismissed" and not drive.held
        assert board(s, w.runner_id) == pytest.approx(others + drive.distance_m)
        assert waiting(s, w.drive_id) == []


def test_a_crop_the_moderator_asked_for_goes_back_to_them_and_a_second_crop_adds_to_the_record(committed):
    Sessions, tag = committed
    w = drive_world(Sessions, tag)
    moderate(Sessions, w, "request_crop", "please crop the drive")
    t0, t1 = drive_range(Sessions, w)
    first = crop_activity(Sessions, w.drive_id, w.runner_id, t0, t1, None)
    assert first.status == "cropped"
    t = drive_times(Sessions, w)
    second = crop_activity(Sessions, w.drive_id, w.runner_id, float(t[-30]), float(t[-1]) + 1, None)
    assert second.status == "cropped" and second.crop["status_before"] == "crop_requested"
    assert len(second.crop["crops"]) == 2
    assert second.crop["crops"][1]["before"]["distance_m"] == pytest.approx(first.crop["crops"][0]["after"]["distance_m"])
    moderate(Sessions, w, "confirm", "still not a run")
    with Sessions() as s:
        assert s.get(ActivityFlag, w.drive_id).status == "confirmed" and s.get(Activity, w.drive_id).held


def test_a_flagged_activity_cropped_before_any_decision_is_scored_again_and_released_when_clean(committed):
    Sessions, tag = committed
    w = drive_world(Sessions, tag)
    with Sessions() as s:
        others = board(s, w.runner_id)
    t0, t1 = drive_range(Sessions, w)
    assert crop_activity(Sessions, w.drive_id, w.runner_id, t0, t1, None).status == "clear"
    with Sessions() as s:
        drive = s.get(Activity, w.drive_id)
        assert not drive.held and board(s, w.runner_id) == pytest.approx(others + drive.distance_m)
        assert waiting(s, w.drive_id) == []


def test_a_crop_of_an_activity_a_moderator_cleared_is_scored_again(committed):
    """Flagged, then dismissed: the athlete's crop changes the track, so it is scored afresh
    (a drive still in it: flagged, held and in the queue again)."""
    Sessions, tag = committed
    w = drive_world(Sessions, tag)
    moderate(Sessions, w, "dismiss")
    t = drive_times(Sessions, w)
    flag = crop_activity(Sessions, w.drive_id, w.runner_id, float(t[0]) - 1, float(t[20]), None)
    assert flag.status == "flagged"
    with Sessions() as s:
        assert s.get(Activity, w.drive_id).held and waiting(s, w.drive_id) == ["flagged"]


def test_a_moderator_cannot_decide_on_a_clear_or_confirmed_activity(committed):
    Sessions, tag = committed
    w = drive_world(Sessions, tag)
    with Sessions() as s, s.begin():
        mod = s.get(User, w.mod_id)
        ordinary = s.scalars(select(Activity.id).where(Activity.user_id == w.runner_id,
                                                       Activity.id != w.drive_id)).first()
        with pytest.raises(ModerationError, match="is not flagged"):
            decide(s, ordinary, mod, "confirm")
        decide(s, w.drive_id, mod, "confirm")
        with pytest.raises(ModerationError, match="confirmed as irregular"):
            decide(s, w.drive_id, mod, "dismiss")
        assert s.get(Activity, w.drive_id).held


def test_a_moderators_note_with_a_nul_in_it_is_stored_without_it(committed):
    """PostgreSQL refuses NUL in text: the note is cleaned of control characters, line breaks kept."""
    Sessions, tag = committed
    w = drive_world(Sessions, tag)
    moderate(Sessions, w, "confirm", " drove\x00 the middle part\nin a car\x07 ")
    with Sessions() as s:
        note = s.scalars(select(ModerationDecision.note).where(ModerationDecision.activity_id == w.drive_id)).one()
    assert note == "drove the middle part\nin a car"


def test_crops_that_cannot_be_honoured_are_refused_and_change_nothing(committed):
    Sessions, tag = committed
    w = drive_world(Sessions, tag)
    t = drive_times(Sessions, w)
    with pytest.raises(ModerationError, match="end must come after"):
        crop_activity(Sessions, w.drive_id, w.runner_id, float(t[10]), float(t[5]), None)
    with pytest.raises(ModerationError, match="no points"):
        crop_activity(Sessions, w.drive_id, w.runner_id, float(t[-1]) + 10, float(t[-1]) + 20, None)
    with pytest.raises(ModerationError, match="every point"):
        crop_activity(Sessions, w.drive_id, w.runner_id, float(t[0]), float(t[-1]), None)
    with pytest.raises(NotFound):
        crop_activity(Sessions, w.drive_id, w.mod_id, float(t[0]), float(t[5]), None)
    assert len(drive_times(Sessions, w)) == len(t)
    with Sessions() as s:
        flag = s.get(ActivityFlag, w.drive_id)
        assert flag.status == "flagged" and flag.crop is None


def test_scoring_writes_each_verdict_in_a_transaction_of_its_own_that_reads_no_track(committed):
    Sessions, tag = committed
    with Sessions() as s, s.begin():
        athlete = create_user(s, f"{tag}_athlete", "Wendy Writer")
        now = time.time() - 7200
        mine = [record_track(s, athlete, synthetic_track(random.Random(60 + k), sport, now - k * 86400, 44.8, 20.4,
                                                         30, speed), visibility="public").id
                for k, (sport, speed) in enumerate((("run", 3.0), ("ride", 7.0), ("run", 14.0)))]
    transactions, reads, open_ = [], [], {}
    engine = Sessions.kw["bind"]

    def began(conn):
        open_[conn] = []

    def statement(conn, cursor, sql, params, context, executemany):
        open_.setdefault(conn, []).append(sql)

    def committed_(conn):
        transactions.append(open_.pop(conn, []))

    def rolled_back(conn):
        reads.extend(open_.pop(conn, []))

    listeners = (("begin", began), ("before_cursor_execute", statement), ("commit", committed_),
                 ("rollback", rolled_back))
    for name, fn in listeners:
        event.listen(engine, name, fn)
    locks_before = WRITE_LOCKS.snapshot().get("anomaly_scoring", {"count": 0})["count"]
    try:
        written = score_pending(Sessions, None, 0.5)
    finally:
        for name, fn in listeners:
            event.remove(engine, name, fn)
    assert written >= len(mine)
    # One write transaction per verdict, and the tracks were read outside them all.
    assert WRITE_LOCKS.snapshot()["anomaly_scoring"]["count"] - locks_before == written
    assert len(transactions) == written
    assert all("activity_flags" in " ".join(sqls) for sqls in transactions)
    assert not [sql for sqls in transactions for sql in sqls if "route_points" in sql]
    assert [sql for sql in reads if "route_points" in sql]  # read in the sessions that only read
    with Sessions() as s:
        status = {a: s.get(ActivityFlag, a).status for a in mine}
        assert status == {mine[0]: "clear", mine[1]: "clear", mine[2]: "flagged"}
        assert s.get(Activity, mine[2]).held
    assert score_pending(Sessions, None, 0.5) == 0  # nothing left to score


def test_a_crop_writes_in_one_short_transaction_and_its_summary_is_what_the_stored_track_gives(committed):
    Sessions, tag = committed
    track = synthetic_track(random.Random(70), "run", time.time() - 7200, 44.8, 20.4, 50, 3.0)
    with Sessions() as s, s.begin():
        athlete = create_user(s, f"{tag}_cropper", "Cora Cropper")
        activity_id = record_track(s, athlete, track, visibility="public").id
        # A pause in the middle, with points logged during it (they count for nothing).
        s.add_all([ActivityEvent(activity_id=activity_id, user_id=athlete.id, command="pause", status="paused", at=float(track.t[300])),
                   ActivityEvent(activity_id=activity_id, user_id=athlete.id, command="resume", status="active",
                                 at=float(track.t[400]))])
    locks_before = WRITE_LOCKS.snapshot().get("crop", {"count": 0})["count"]
    flag = crop_activity(Sessions, activity_id, athlete.id, float(track.t[100]), float(track.t[200]), None)
    assert WRITE_LOCKS.snapshot()["crop"]["count"] - locks_before == 1
    assert flag.status == "clear" and flag.crop["crops"][0]["points_removed"] == 101
    with Sessions() as s:
        activity = s.get(Activity, activity_id)
        fresh = summarise_activity(s, activity).to_dict()
        assert activity.point_count == len(track) - 101 and fresh["dropped"]["paused"] == 99
        assert activity.summary == fresh


def session_drive(s, tag: str) -> DriveWorld:
    """``drive_world`` inside one session (rolled back by the fixture)."""
    runner = create_user(s, f"{tag}_runner", "Rhea Runner")
    mod = create_user(s, f"{tag}_mod", "Moe Moderator", role="moderator")
    now = time.time() - 3600
    for k in range(4):
        track = synthetic_track(random.Random(40 + k), "run", now - (k + 1) * 86400, 45.2, 13.6, 40, 3.0)
        score_activity(s, record_track(s, runner, track, visibility="public"), None)
    base = synthetic_track(random.Random(50), "run", now, 45.2, 13.6, 60, 3.0)
    drive = record_track(s, runner, cheats.vehicle(base, random.Random(3)), title="Morning run",
                         visibility="public")
    assert score_activity(s, drive, None).status == "flagged"
    return DriveWorld(runner.id, mod.id, drive.id)


def test_an_athlete_sees_their_own_flag_and_the_latest_moderators_note_only(session):
    w = session_drive(session, f"o{uuid.uuid4().hex[:8]}")
    other = create_user(session, f"o{uuid.uuid4().hex[:8]}_other")
    unscored = record_track(session, other, synthetic_track(random.Random(5), "run", time.time() - 7200,
                                                            45.2, 13.6, 20, 3.0))
    flag = own_flag(session, w.runner_id, w.drive_id)
    assert flag is not None and flag.activity_id == w.drive_id and flag.status == "flagged" and flag.reasons
    assert own_flag(session, other.id, w.drive_id) is None  # someone else's flag
    assert own_flag(session, w.mod_id, w.drive_id) is None  # a moderator reads it through the review item
    assert own_flag(session, other.id, unscored.id) is None  # no verdict yet
    assert own_flag(session, w.runner_id, 10**12) is None

    assert latest_decision(session, w.drive_id) is None
    mod = session.get(User, w.mod_id)
    decide(session, w.drive_id, mod, "request_crop", "please crop the drive")
    decide(session, w.drive_id, mod, "confirm", "that was a car")
    decision = latest_decision(session, w.drive_id)
    assert (decision.action, decision.note) == ("confirm", "that was a car")
    assert own_flag(session, w.runner_id, w.drive_id).status == "confirmed"


def test_the_review_item_holds_the_flag_the_activity_its_athlete_the_profile_and_the_athletes_usual(session):
    w = session_drive(session, f"r{uuid.uuid4().hex[:8]}")
    item = review_item(session, w.drive_id)
    assert item.flag.activity_id == item.activity.id == w.drive_id
    assert item.athlete.id == w.runner_id and item.athlete.name == "Rhea Runner"
    assert item.profile.lat.size == item.profile.t.size == item.profile.speed_mps.size > 100
    # The stretches are the rule hits' ranges, inside the recording.
    assert item.stretches and item.stretches == flagged_stretches(item.flag.verdict)
    t = stored_track(session, item.activity).t
    assert all(t[0] <= t0 < t1 <= t[-1] for t0, t1 in item.stretches)
    # The four ordinary runs make the athlete's usual.
    assert item.usual["count"] == 4 and 2.5 < item.usual["speed_mps"] < 3.5
    other = create_user(session, f"r{uuid.uuid4().hex[:8]}_other")
    unscored = record_track(session, other, synthetic_track(random.Random(6), "run", time.time() - 7200,
                                                            45.2, 13.6, 20, 3.0))
    assert review_item(session, unscored.id) is None
    assert review_item(session, 10**12) is None


def test_flagged_stretches_are_the_hits_with_a_range():
    verdict = {"hits": [{"code": "vehicle_speed", "t0": 10.0, "t1": 20.5}, {"code": "copy"},
                        {"code": "teleport", "t0": 30.0, "t1": None}, {"code": "x", "t0": 40, "t1": 41}]}
    assert flagged_stretches(verdict) == [(10.0, 20.5), (40, 41)]
    assert flagged_stretches({}) == flagged_stretches(None) == []


def test_the_sample_draw_is_fixed_by_the_activity_id_and_takes_a_twentieth_of_the_band_only():
    from core.anomaly.scoring import SAMPLE_BAND, SAMPLE_RATE, drawn_for_sample

    limit = 0.6
    drawn = [i for i in range(1, 20001) if drawn_for_sample(i, limit - SAMPLE_BAND / 2, limit)]
    assert len(drawn) / 20000 == pytest.approx(SAMPLE_RATE, abs=0.01)
    # The same ids at every scoring, wherever in the band the new score lies.
    assert drawn == [i for i in range(1, 20001) if drawn_for_sample(i, limit - SAMPLE_BAND, limit)]
    # Never at or above the threshold (that is a flag), nor below the band.
    assert not any(drawn_for_sample(i, score, limit) for i in drawn
                   for score in (limit, limit + 0.1, limit - SAMPLE_BAND - 0.001, 0.0))


def test_the_sample_draw_is_keyed_by_the_installations_secret(tmp_path, monkeypatch):
    """The draw is HMAC-SHA256 of the id under the installation's key: fixed for one key (a
    re-scoring draws the same), a twentieth of the band either way, but another key draws
    other ids, so an athlete who sees their ids cannot tell which ones are safe."""
    import os

    from core.anomaly import scoring
    from core.anomaly.scoring import SAMPLE_BAND, SAMPLE_RATE, drawn_for_sample

    limit, ids = 0.6, range(1, 20001)
    one, two = os.urandom(32), os.urandom(32)
    drawn = {i for i in ids if drawn_for_sample(i, limit - SAMPLE_BAND / 2, limit, key=one)}
    assert drawn == {i for i in ids if drawn_for_sample(i, limit - 0.01, limit, key=one)}
    other = {i for i in ids if drawn_for_sample(i, limit - SAMPLE_BAND / 2, limit, key=two)}
    for chosen in (drawn, other):
        assert len(chosen) / len(ids) == pytest.approx(SAMPLE_RATE, abs=0.01)
    assert len(drawn & other) < 0.2 * len(drawn)  # chance overlap (5% of them), not the same ids
    # By default the key is the installation's own, made once in its model folder,
    # owner-readable only: the same draw at every scoring, here and in a fresh process.
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path))
    key_file = tmp_path / "models" / "anomaly.key"
    first = {i for i in ids if drawn_for_sample(i, limit - 0.01, limit)}
    assert key_file.exists() and key_file.stat().st_mode & 0o777 == 0o600
    scoring._SAMPLE_KEYS.clear()
    assert first == {i for i in ids if drawn_for_sample(i, limit - 0.01, limit)}
    assert first == {i for i in ids if drawn_for_sample(i, limit - 0.01, limit, key=key_file.read_bytes().strip())}


def test_a_cleared_activity_drawn_for_the_sample_waits_unheld_and_a_confirmation_holds_it(committed, monkeypatch):
    """Scored clear within the band and drawn: the sample waits in the queue, counts on the
    boards, a crop scores it again into the sample (the same draw), and a moderator's
    confirmation holds it like a confirmed flag, the decision marked as a sample's."""
    from core.anomaly import scoring

    monkeypatch.setattr(scoring, "SAMPLE_RATE", 1.0)  # every activity in the band is drawn
    Sessions, tag = committed
    limit = 0.1  # rules only, an ordinary run scores 0: within the band below this threshold
    with Sessions() as s, s.begin():
        runner = create_user(s, f"{tag}_runner", "Sam Sample")
        mod = create_user(s, f"{tag}_mod", "Moe Moderator", role="moderator")
        run = record_track(s, runner, synthetic_track(random.Random(61), "run", time.time() - 7200, 45.3, 13.7, 40,
                                                      3.0), visibility="public")
        flag = score_activity(s, run, None, limit)
        assert flag.status == "sampled" and not run.held and flag.score < limit
        run_id, runner_id, mod_id, distance = run.id, runner.id, mod.id, run.distance_m
    with Sessions() as s:
        assert waiting(s, run_id) == ["sampled"]
        assert board(s, runner_id) == pytest.approx(distance)  # not suspected: on the boards
    track = drive_times(Sessions, DriveWorld(runner_id, mod_id, run_id))
    flag = crop_activity(Sessions, run_id, runner_id, float(track[-120]), float(track[-1]), None, limit)
    assert flag.status == "sampled"
    with Sessions() as s, s.begin():
        decide(s, run_id, s.get(User, mod_id), "confirm", "not a run")
    with Sessions() as s:
        assert s.get(ActivityFlag, run_id).status == "confirmed" and s.get(Activity, run_id).held
        assert board(s, runner_id) == 0.0 and waiting(s, run_id) == []
        decision = latest_decision(s, run_id)
        assert decision.sample and decision.action == "confirm" and decision.score < limit


def test_a_dismissed_sample_stays_on_the_boards_and_a_crop_request_on_a_sample_is_refused(session, monkeypatch):
    from core.anomaly import scoring

    monkeypatch.setattr(scoring, "SAMPLE_RATE", 1.0)
    tag = f"d{uuid.uuid4().hex[:8]}"
    runner = create_user(session, f"{tag}_runner")
    mod = create_user(session, f"{tag}_mod", role="moderator")
    runs = [record_track(session, runner, synthetic_track(random.Random(70 + k), "run", time.time() - (k + 2) * 3600,
                                                          45.3, 13.7, 30, 3.0), visibility="public") for k in range(2)]
    assert [score_activity(session, r, None, 0.1).status for r in runs] == ["sampled", "sampled"]
    assert score_activity(session, record_track(session, runner, synthetic_track(
        random.Random(72), "run", time.time() - 3600, 45.3, 13.7, 30, 3.0)), None, 0.5).status == "clear"  # far below
    decide(session, runs[0].id, mod, "dismiss")
    assert session.get(ActivityFlag, runs[0].id).status == "dismissed" and not runs[0].held
    with pytest.raises(ModerationError, match="not a random sample"):
        decide(session, runs[1].id, mod, "request_crop", "crop the bus ride")
    assert session.get(ActivityFlag, runs[1].id).status == "sampled" and not runs[1].held
    decide(session, runs[1].id, mod, "confirm")
    assert runs[1].held
    assert [d.sample for d in session.scalars(select(ModerationDecision).where(
        ModerationDecision.activity_id.in_([r.id for r in runs])).order_by(ModerationDecision.id))] == [True] * 2


def test_migration_0006_takes_samples_and_its_downgrade_turns_undecided_ones_back_to_clear(tmp_path):
    from sqlalchemy import inspect, text

    from core.storage.engine import make_engine
    from core.storage.schema import downgrade, migrate

    engine = make_engine(f"sqlite:///{tmp_path / 'm.db'}")
    migrate(engine)
    with make_sessionmaker(engine)() as s, s.begin():
        runner = create_user(s, "sam")
        run = record_track(s, runner, synthetic_track(random.Random(9), "run", time.time() - 3600, 45.3, 13.7, 20, 3.0))
        s.add(ActivityFlag(activity_id=run.id, user_id=runner.id, sport="run", score=0.4, status="sampled"))
    downgrade(engine, "0005")
    assert "sample" not in {c["name"] for c in inspect(engine).get_columns("moderation_decisions")}
    with engine.begin() as conn:
        assert conn.execute(text("SELECT status FROM activity_flags")).scalar_one() == "clear"
    migrate(engine)
    assert "sample" in {c["name"] for c in inspect(engine).get_columns("moderation_decisions")}
    engine.dispose()
