"""Every page through Streamlit's AppTest, signed in as a demo athlete, on a real SQLite file.

Each test checks what the page must show and, as bob, that alice's private activity shows
nowhere; hostile names, titles and comments must come out as literal text.
"""

from __future__ import annotations

import re
from datetime import datetime

import pytest
from streamlit.testing.v1 import AppTest

from dashboard.queries import Viewer
from tests.dashboard.conftest import APP, PRIVATE_TITLE, XSS_COMMENT, XSS_TITLE

PAGES = ["views/feed.py", "views/activity.py", "views/live.py", "views/stats.py", "views/challenges.py", "views/upload.py",
         "views/settings.py", "views/athletes.py", "views/leaderboards.py", "views/discover.py"]


def run_page(world, username: str, page: str | None = None, params: dict | None = None) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    if username:
        ids = {"alice": world.alice_id, "bob": world.bob_id}
        at.session_state["viewer"] = Viewer(ids[username], username, username.title(), "athlete", "metric")
    if page:
        at.switch_page(page)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def all_text(at: AppTest) -> str:
    parts = []
    for kind in ("title", "markdown", "caption", "subheader", "metric", "info", "warning", "error", "success",
                 "button", "page_link", "expander", "text"):
        for el in getattr(at, kind):
            for attr in ("value", "label", "body"):
                v = getattr(el, attr, None)
                if isinstance(v, str):
                    parts.append(v)
    for df in list(at.dataframe) + list(at.table):
        parts.append(df.value.to_string())
    parts.extend(html_bodies(at))
    return "\n".join(parts)


def html_bodies(at: AppTest) -> list[str]:
    """The HTML of every st.html element (the light tables among them)."""
    return [el.proto.body for el in at.get("html")]


def table_rows(at: AppTest) -> list[list[str]]:
    """The rows of every light table on the page, cells as the browser shows them."""
    import re
    from html import unescape
    rows = []
    for body in html_bodies(at):
        for tr in re.findall(r"<tbody>(.*?)</tbody>", body, re.S):
            rows.extend([[unescape(c) for c in re.findall(r"<td>(.*?)</td>", r, re.S)]
                         for r in re.findall(r"<tr[^>]*>(.*?)</tr>", tr, re.S)])
    return rows


def test_signed_out_visitors_see_only_the_sign_in_page(world):
    at = run_page(world, "")
    assert [b.label for b in at.button if b.label] or at.form_submit_button
    assert any(t.label == "Username" for t in at.text_input)
    assert "Feed" not in [t.value for t in at.title]


def test_sign_in_with_a_wrong_password_is_refused(world):
    at = run_page(world, "")
    at.text_input(key="signin_username").input("alice")
    at.text_input(key="signin_password").input("wrong password")
    for b in at.get("form_submit_button"):
        if b.label == "Sign in":
            b.click()
    at.run()
    assert any("Wrong username or password" in e.value for e in at.error)
    assert "viewer" not in at.session_state


def test_feed_shows_friends_newest_first_with_hostile_text_literal(world):
    at = run_page(world, "alice", "views/feed.py")
    assert at.title[0].value == "Feed"
    links = [p.label for p in at.get("page_link")]
    assert len(links) >= 10
    # The hostile title is escaped for markdown, so it renders literally.
    assert any("onerror" in label and "\\<img" in label for label in links)
    # Dates on the cards run newest first.
    stamps = [re.search(r"\w{3} \d{2} \w{3} \d{4}, \d{2}:\d{2} UTC", md.value) for md in at.markdown]
    dates = [datetime.strptime(m.group(0), "%a %d %b %Y, %H:%M UTC") for m in stamps if m]
    assert len(dates) >= 10 and dates == sorted(dates, reverse=True)
    assert XSS_TITLE not in links  # never unescaped


def test_feed_comment_is_added_and_shown_as_text(world):
    at = run_page(world, "alice", "views/feed.py")
    key = f"ctext_{world.xss_id}"
    at.text_input(key=key).input("Nice one <b>friend</b>")
    for b in at.get("form_submit_button"):
        if b.form_id.endswith(f"comment_{world.xss_id}"):
            b.click()
            break
    at.run()
    text = all_text(at)
    assert "Nice one \\<b\\>friend\\</b\\>" in text
    assert "\\*\\*bold?\\*\\*" in text and XSS_COMMENT not in text


def test_activity_page_has_map_charts_splits_and_gpx(world):
    at = run_page(world, "alice", "views/activity.py", {"id": str(world.xss_id)})
    assert "onerror" in at.title[0].value and "\\<img" in at.title[0].value
    labels = [m.label for m in at.metric]
    assert {"Distance", "Moving time", "Avg pace"} <= set(labels)
    assert [s.value for s in at.subheader][:3] == ["Route", "Charts", "Splits"]
    splits = table_rows(at)
    assert len(splits) >= 10 and [r[0] for r in splits[:3]] == ["1", "2", "3"]  # about 10.8 km of splits
    assert at.get("download_button")


def test_activity_page_refuses_what_the_viewer_may_not_see(world):
    at = run_page(world, "bob", "views/activity.py", {"id": str(world.private_id)})
    assert any("not shared with you" in w.value for w in at.warning)
    assert PRIVATE_TITLE not in all_text(at) and "Secret intervals" not in all_text(at)
    at = run_page(world, "bob", "views/activity.py", {"id": "../../etc"})
    assert any("not shared with you" in w.value for w in at.warning)


def test_a_moderator_opens_a_private_activity_to_review_it_but_cannot_comment(world):
    """The moderators' page links to flagged activities their athletes may have made private:
    a moderator opens them (and their GPX); commenting still goes by who it is shared with."""
    import pytest
    from sqlalchemy.orm import Session

    from core.accounts.users import user_by_name
    from core.social.comments import NotFound, add_comment
    from core.storage.engine import make_engine
    from dashboard import queries

    engine = make_engine(world.url)
    with Session(engine) as s:
        moderator = user_by_name(s, "moderator")
        assert queries.activity_gpx(s, moderator.id, world.private_id)
        assert queries.activity_gpx(s, world.bob_id, world.private_id) is None
        with pytest.raises(NotFound):
            add_comment(s, moderator, world.private_id, "nice")
        mod_id = moderator.id
    engine.dispose()
    at = page_of(mod_id, "views/activity.py", {"id": str(world.private_id)})
    assert not any("not shared with you" in w.value for w in at.warning)
    assert PRIVATE_TITLE in at.title[0].value


def test_stats_page_totals_bests_and_heatmap(world):
    at = run_page(world, "alice", "views/stats.py")
    labels = [m.label for m in at.metric]
    assert labels[:3] == ["This week", "This month", "This year"]
    assert {"Fastest 1 km", "Fastest 5 km", "Fastest 10 km", "Longest ride"} <= set(labels)
    assert any(s.value == "Heatmap of my routes" for s in at.subheader)
    year = next(m for m in at.metric if m.label == "This year")
    assert float(year.value.split()[0]) > 0


def athlete_in(world, zone: str, runs: list[tuple]) -> int:
    """A new athlete living in ``zone`` whose completed runs are ``runs``: (start, km, held,
    best 1 km in s), each 30 minutes long."""
    import uuid
    from datetime import timedelta

    from core.accounts.users import create_user
    from core.activities.lifecycle import create_activity
    from core.storage.engine import make_engine, make_sessionmaker

    engine = make_engine(world.url)
    with make_sessionmaker(engine)() as s, s.begin():
        athlete = create_user(s, f"tz_{uuid.uuid4().hex[:8]}")
        athlete.settings = {**(athlete.settings or {}), "time_zone": zone}
        for start, km, held, best in runs:
            a = create_activity(s, athlete, "run", title=f"run {km}")
            a.status, a.start_time, a.completed_at = "completed", start, start + timedelta(minutes=30)
            a.distance_m, a.moving_time_s, a.elapsed_time_s, a.held = km * 1000, 1800.0, 1800.0, held
            a.shown_distance_m = km * 1000  # hiding nothing, as completion stores it
            a.summary = {"best_efforts_s": {"1000": best}}
        athlete_id = athlete.id
    engine.dispose()
    return athlete_id


def page_of(athlete_id: int, page: str, params: dict | None = None) -> AppTest:
    """``page`` as the user ``athlete_id`` sees it (their role and settings as stored)."""
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["viewer"] = Viewer(athlete_id, "tz", "Tz", "athlete", "metric")
    at.switch_page(page)
    for key, value in (params or {}).items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def stats_of_athlete_in(world, zone: str, runs: list[tuple]) -> AppTest:
    """My stats for a new athlete living in ``zone`` whose completed runs are ``runs``."""
    return page_of(athlete_in(world, zone, runs), "views/stats.py")


def test_times_show_on_the_athletes_clock_with_its_abbreviation(world):
    """An athlete in Sydney sees their runs at Sydney's time, summer (AEDT) or winter (AEST),
    on the feed, the activity page and My stats; the same moment is UTC for one who set no zone."""
    from datetime import UTC

    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from core.activities.tables import Activity
    from core.storage.engine import make_engine

    summer, winter = datetime(2025, 1, 10, 20, 0, tzinfo=UTC), datetime(2025, 4, 5, 21, 30, tzinfo=UTC)
    athlete_id = athlete_in(world, "Australia/Sydney", [(summer, 5.0, False, 290.0), (winter, 8.0, False, 300.0)])
    feed = all_text(page_of(athlete_id, "views/feed.py"))
    assert "Sat 11 Jan 2025, 07:00 AEDT" in feed
    assert "Sun 06 Apr 2025, 07:30 AEST" in feed  # after that morning's change back to standard time
    assert "UTC" not in feed
    engine = make_engine(world.url)
    with Session(engine) as s, s.begin():
        run = s.scalars(select(Activity).where(Activity.user_id == athlete_id, Activity.start_time == winter)).one()
        run.visibility, run_id = "public", run.id
    engine.dispose()
    assert "Sun 06 Apr 2025, 07:30 AEST" in all_text(page_of(athlete_id, "views/activity.py", {"id": run_id}))
    assert "Sat 11 Jan 2025, 07:00 AEDT" in all_text(page_of(athlete_id, "views/stats.py"))  # the fastest 1 km
    # bob set no zone: the same run, public, at the same moment in UTC.
    seen_by_bob = all_text(page_of(world.bob_id, "views/activity.py", {"id": run_id}))
    assert "Sat 05 Apr 2025, 21:30 UTC" in seen_by_bob and "AEST" not in seen_by_bob


def test_stats_count_weeks_in_the_athletes_time_zone_and_leave_held_activities_out_of_bests(world):
    """Kiritimati is 14 hours ahead of UTC. An activity a minute after its Monday midnight
    is this week's there, one a minute before is last week's; counted in UTC the week holds
    both or neither. A held (flagged) activity's bests are no records."""
    from datetime import UTC, timedelta
    from zoneinfo import ZoneInfo

    local = datetime.now(ZoneInfo("Pacific/Kiritimati"))
    monday = (local - timedelta(days=local.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    at = stats_of_athlete_in(world, "Pacific/Kiritimati", [
        ((monday + timedelta(minutes=minutes)).astimezone(UTC), km, held, best)
        for minutes, km, held, best in ((1, 7.0, False, 300.0), (-1, 3.0, False, 320.0), (-600, 5.0, True, 100.0))])
    week = next(m for m in at.metric if m.label == "This week")
    assert week.value == "7.0 km"
    fastest = next(m for m in at.metric if m.label == "Fastest 1 km")
    assert fastest.value == "5:00"  # not the held activity's 1:40
    assert "1 activity held for review is left out." in all_text(at)


def test_stats_show_for_an_athlete_whose_clocks_skip_midnight(world):
    """Havana moved its clocks from midnight to 1:00 on 2024-03-10: that day has no
    midnight to start a week or a month at, and the page must still show."""
    from datetime import UTC, timedelta

    at = stats_of_athlete_in(world, "America/Havana", [
        (datetime(2024, 3, 10, 15, 0, tzinfo=UTC), 5.0, False, 300.0),
        (datetime.now(UTC) - timedelta(days=1), 5.0, False, 300.0)])
    assert "2024" in all_text(at)  # the yearly totals hold the skipped-midnight day's run


def test_a_time_zone_the_server_no_longer_knows_is_said_and_times_go_by_utc(world):
    """A zone renamed or withdrawn from the time zone database since it was chosen: the
    pages show UTC, and Settings says so instead of falling back without a word."""
    from datetime import UTC

    athlete_id = athlete_in(world, "Mars/Olympus", [(datetime(2025, 4, 5, 21, 30, tzinfo=UTC), 5.0, False, 300.0)])
    assert "Sat 05 Apr 2025, 21:30 UTC" in all_text(page_of(athlete_id, "views/feed.py"))
    settings = page_of(athlete_id, "views/settings.py")
    assert any("Mars/Olympus" in w.value and "UTC" in w.value for w in settings.warning)
    assert next(b for b in settings.selectbox if b.label == "Time zone").value == "UTC"


def test_upload_page_imports_refuses_duplicates_and_bad_files(world, tmp_path):
    import random
    import time

    from core.synthetic.tracks import synthetic_track
    from core.tracks.formats.gpx import to_gpx

    gpx = to_gpx(synthetic_track(random.Random(99), "ride", time.time() - 7200, 46.0, 14.5, 40, 7.0), "Test ride")
    at = run_page(world, "bob", "views/upload.py")
    assert at.title[0].value == "Upload activities"
    uploader = at.get("file_uploader")[0]
    uploader.set_value([("ride.gpx", gpx.encode(), "application/gpx+xml"), ("junk.gpx", b"<gpx><trk>", "text/xml")])
    at.get("form_submit_button")[0].click()
    at.run()
    assert any("imported as a ride" in s.value for s in at.success), [e.value for e in at.error]
    assert any(e.value.startswith("junk\\.gpx: ") and len(e.value) > 20 for e in at.error), [e.value for e in at.error]
    uploader = at.get("file_uploader")[0]
    uploader.set_value([("ride-again.gpx", gpx.encode(), "application/gpx+xml")])
    at.get("form_submit_button")[0].click()
    at.run()
    assert any("already imported" in i.value for i in at.info)

    # Its page offers its athlete the file as uploaded, besides the GPX.
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from core.activities.tables import Activity
    from core.storage.engine import make_engine

    engine = make_engine(world.url)
    with Session(engine) as s:
        ride = s.scalars(select(Activity.id).where(Activity.user_id == world.bob_id, Activity.title == "Test ride")
                         ).one()
    engine.dispose()
    page = run_page(world, "bob", "views/activity.py", {"id": str(ride)})
    labels = [b.proto.label for b in page.get("download_button")]
    assert labels[0] == "Download GPX" and labels[1].startswith("Download the original GPX file ("), labels
    # An activity recorded on a device has no such file.
    assert [b.proto.label for b in run_page(world, "alice", "views/activity.py", {"id": str(world.xss_id)})
            .get("download_button")] == ["Download GPX"]


def test_settings_page_saves_cues_and_pairs_a_device(world):
    at = run_page(world, "bob", "views/settings.py")
    assert [s.value for s in at.subheader] == ["Profile", "Followers", "Privacy", "Route suggestions",
                                               "Password and sign-in", "Spoken cues", "Devices",
                                               "Download your data", "Delete my account"]
    for b in at.get("form_submit_button"):
        if b.label == "Create device token":
            b.click()
    at.run()
    token = at.code[0].value
    assert token.startswith("trk_")
    from sqlalchemy.orm import Session

    from core.accounts.tokens import user_for_token
    from core.storage.engine import make_engine
    engine = make_engine(world.url)
    with Session(engine) as s:
        assert user_for_token(s, token).username == "bob"
    engine.dispose()
    assert any(b.label == "Revoke" for b in at.button)


def test_challenges_page_shows_this_weeks_challenges_and_a_decline_takes_one_away(world, badge_world):
    at = run_page(world, "alice", "views/challenges.py")
    bars = [el.proto.text for el in at.get("progress")]
    assert any(t.startswith("**20.0 km of running this week** · 5.0 km of 20.0 km · in progress") for t in bars)
    assert any(t.startswith("**1 activity this week** · 1 of 1 · completed") for t in bars)
    at.button(key=f"decline_{badge_world.active_challenge_id}_too_hard").click().run()
    assert not at.exception
    bars = [el.proto.text for el in at.get("progress")]
    assert any("20.0 km of running this week" in t and "declined (Too hard)" in t for t in bars)
    assert not [b for b in at.button if b.key and b.key.startswith("decline_")]  # nothing left to decline
    # Bob sees none of it, and cannot decline alice's challenge by its id either.
    bob = run_page(world, "bob", "views/challenges.py")
    assert "20.0 km of running" not in all_text(bob) + " ".join(el.proto.text for el in bob.get("progress"))
    from core.challenges.assign import ChallengeError
    from dashboard import data

    with pytest.raises(ChallengeError, match="no such challenge"):
        data.decline_challenge(world.bob_id, badge_world.active_challenge_id, "too_easy")


def test_group_challenges_invite_join_and_board_for_members_only(world, badge_world):
    at = run_page(world, "alice", "views/challenges.py")
    text = all_text(at)
    assert "**Most distance this month** · started by **Mallory \\<script\\>alert\\(2\\)\\</script\\>**" in text
    board = [r for r in table_rows(at) if "Alice Runner" in r]
    assert board and board[0][2] == "invited"
    at.button(key=f"join_{badge_world.group_id}").click().run()
    assert not at.exception
    rows = [r for r in table_rows(at) if r[1] in ("Alice Runner", "Mallory <script>alert(2)</script>")]
    assert len(rows) == 2 and all(r[0] in ("1", "2") and r[2].endswith(" km") for r in rows)
    assert not [b for b in at.button if b.key == f"join_{badge_world.group_id}"]
    # Bob is not a member: he sees nothing of it.
    bob = run_page(world, "bob", "views/challenges.py")
    assert not [r for r in table_rows(bob) if "Mallory <script>alert(2)</script>" in r]
    assert "Most distance this month" not in all_text(bob)


def test_badges_page_shows_earned_withdrawn_next_and_the_streak_calendar(world, badge_world):
    at = run_page(world, "alice", "views/challenges.py")
    text = all_text(at)
    assert "First steps" in text and "First 5 km" in text
    assert {m.label: m.value for m in at.metric}["Badges earned"] == "2"
    assert f"activity {badge_world.run_id} was cropped" in text  # the withdrawn half marathon, and why
    progress = [el.proto.text for el in at.get("progress")]
    assert len(progress) >= 5 and all(" · " in p for p in progress)  # each next badge with what is left
    assert not any("First 5 km" in p for p in progress)  # earned ones are not "next"
    assert "Streak calendar" in text
    # Bob's page is his own: none of alice's badges.
    bob = all_text(run_page(world, "bob", "views/challenges.py"))
    assert "was cropped" not in bob


def test_feed_and_activity_page_show_the_badges_an_activity_earned(world, badge_world):
    text = all_text(run_page(world, "alice"))
    assert "New badges: :material/flag: **First steps** · :material/directions_run: **First 5 km**" in text
    assert ":material/task_alt: Challenge completed: **1 activity this week**" in text
    at = run_page(world, "bob", "views/activity.py", {"id": str(badge_world.run_id)})
    seen = all_text(at)
    assert "First 5 km" in seen  # bob follows alice and sees what her run earned on its own,
    # not what tells of her other activities (some may be private): a count, a challenge
    assert "First steps" not in seen and "Challenge completed" not in seen
    bob_feed = all_text(run_page(world, "bob"))
    assert "First 5 km" in bob_feed and "First steps" not in bob_feed and "Challenge completed" not in bob_feed
    assert not at.toast  # only its athlete gets the toast
    at = run_page(world, "alice", "views/activity.py", {"id": str(badge_world.run_id)})
    assert [t.proto.body for t in at.toast] == ["New badge: First steps", "New badge: First 5 km"]


def test_leaderboard_page_shows_the_board_and_my_rank(world):
    at = run_page(world, "alice", "views/leaderboards.py")
    assert any(m.label == "Your rank" and m.value.startswith("#") for m in at.metric)
    rows = table_rows(at)
    assert len(rows) >= 2
    assert "Mallory <script>alert(2)</script>" in [r[1] for r in rows]  # escaped in the HTML, shown as written
    assert "<script>" not in "".join(html_bodies(at))
    at.segmented_control(key="lb_scope").set_value("friends")
    at.run()
    assert not at.exception
    assert any(m.label == "Your rank" for m in at.metric)


def test_an_athlete_who_hides_part_of_their_activities_is_told_how_boards_count_them(world):
    """Hidden ends: the page says boards count what others are shown, and a new run is on
    the board once the worker has worked that out, not before (a total that counted it
    whole before would tell how much is hidden), for the distance others are shown."""
    import random
    import time

    from core.accounts.users import user_by_id
    from core.activities.imports import record_track
    from core.jobs.shown import settle_shown_distances
    from core.social.privacy_settings import set_hide_ends
    from core.social.zone_attack import outing
    from core.storage.engine import make_engine, make_sessionmaker

    athlete = athlete_in(world, "UTC", [])
    engine = make_engine(world.url)
    Session = make_sessionmaker(engine)
    with Session() as s, s.begin():
        set_hide_ends(s, user_by_id(s, athlete), 800)
        run = record_track(s, user_by_id(s, athlete), outing(random.Random(4), 46.05, 14.5, time.time() - 3600),
                           visibility="public", source="demo")
        run_id, whole = run.id, run.distance_m
    at = page_of(athlete, "views/leaderboards.py")
    assert any("boards count the distance others are shown" in c.value for c in at.caption)
    assert not any(m.label == "Your rank" for m in at.metric)
    while settle_shown_distances(Session):
        pass
    with Session() as s:
        from core.activities.tables import Activity
        shown = s.get(Activity, run_id).shown_distance_m
    engine.dispose()
    assert shown < whole - 1000
    import streamlit as st
    st.cache_data.clear()  # the page keeps a board for a minute
    at = page_of(athlete, "views/leaderboards.py")
    assert any(m.label == "Your rank" for m in at.metric)
    assert any(c.value == f"You: {shown / 1000:.1f} km" for c in at.caption)


def keep_live(world) -> None:
    """The world's activities in progress, heard from now: the world is made once per run, and
    the tests before this one may take longer than an activity stays live without a point."""
    import time

    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from core.activities.ingest import ingest_points
    from core.activities.tables import Activity
    from core.storage.engine import make_engine
    from core.storage.points import RoutePoint, last_point_t

    engine = make_engine(world.url)
    with Session(engine) as s, s.begin():
        for a in s.scalars(select(Activity).where(Activity.status == "active")):
            last = last_point_t(s, a.id)
            if last is not None:
                seq = int(s.scalar(select(func.max(RoutePoint.seq)).where(RoutePoint.activity_id == a.id)))
                ingest_points(s, a, [{"seq": seq + 1, "t": time.time(), "lat": 38.70, "lon": -9.14}])
    engine.dispose()


def test_live_page_shows_activities_in_progress(world):
    keep_live(world)
    at = run_page(world, "alice", "views/live.py")
    text = all_text(at)
    assert "Lunch loop \\(live\\)" in text and "Secret intervals \\(live\\)" in text
    distances = [m.value for m in at.metric if m.label == "Distance"]
    assert len(distances) == 2 and all(float(d.split()[0]) > 1.0 for d in distances)
    at = run_page(world, "bob", "views/live.py")
    text = all_text(at)
    assert "Lunch loop" in text and "Secret intervals" not in text


@pytest.mark.parametrize("page", PAGES)
def test_no_page_shows_another_athletes_private_activity(world, page):
    params = {"id": str(world.private_id)} if page.endswith("activity.py") else None
    at = run_page(world, "bob", page, params)
    assert PRIVATE_TITLE not in all_text(at) and "Secret intervals" not in all_text(at)


def test_athletes_page_finds_follows_and_unfollows(world):
    from sqlalchemy.orm import Session

    from core.accounts.users import create_user, user_by_name
    from core.storage.engine import make_engine

    engine = make_engine(world.url)
    with Session(engine, expire_on_commit=False) as s, s.begin():
        carol = user_by_name(s, "carol_new") or create_user(s, "carol_new", "Carol New", password="carol-pass")
    engine.dispose()

    def as_carol(page):
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.session_state["viewer"] = Viewer(carol.id, "carol_new", "Carol New", "athlete", "metric")
        at.switch_page(page)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    feed = as_carol("views/feed.py")
    assert any("Nothing here yet" in i.value for i in feed.info)
    at = as_carol("views/athletes.py")
    assert at.subheader[0].value == "You follow 0 athletes"
    at.text_input(key="athlete_query").input("mallor%").run()  # LIKE wildcards are taken literally
    assert any("Nobody by that name" in i.value for i in at.info)
    at.text_input(key="athlete_query").input("mallory").run()
    assert any("@mallory" in m.value for m in at.markdown)
    at.button(key=next(b.key for b in at.button if b.label == "Follow")).click().run()
    assert at.subheader[0].value == "You follow 1 athlete"
    feed = as_carol("views/feed.py")
    assert any("onerror" in p.label for p in feed.get("page_link"))
    at.button(key=next(b.key for b in at.button if b.label == "Unfollow")).click().run()
    assert at.subheader[0].value == "You follow 0 athletes"


def test_a_request_is_answered_in_settings_and_a_blocked_athlete_no_longer_finds_the_blocker(world):
    from sqlalchemy.orm import Session

    from core.accounts.users import create_user
    from core.social.follows import followers, set_approval
    from core.storage.engine import make_engine

    engine = make_engine(world.url)
    with Session(engine, expire_on_commit=False) as s, s.begin():
        dana = create_user(s, "dana_asks", "Dana <b>Asks</b>", password="dana-pass")
        eve = create_user(s, "eve_wants", "Eve Wants", password="eve-pass")
        set_approval(s, dana, True)

    def page_as(user, page):
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.session_state["viewer"] = Viewer(user.id, user.username, user.name, "athlete", "metric")
        at.switch_page(page)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    def click(at, label):
        at.button(key=next(b.key for b in at.button if b.label == label)).click().run()
        assert not at.exception, [e.value for e in at.exception]

    at = page_as(eve, "views/athletes.py")
    at.text_input(key="athlete_query").input("dana_asks").run()
    click(at, "Follow")
    assert any("Asked to follow" in m.value for m in at.success)
    assert [b.label for b in at.button if b.label in ("Follow", "Cancel request")] == ["Cancel request"]
    assert at.subheader[0].value == "You follow 0 athletes"

    at = page_as(dana, "views/settings.py")
    assert at.toggle(key="approve_followers").value is True
    assert any("Requests to follow you" in m.value for m in at.markdown)
    assert any("Eve Wants" in m.value for m in at.markdown)
    click(at, "Approve")
    assert not any("Requests to follow you" in m.value for m in at.markdown)
    with Session(engine) as s:
        assert [u.username for u in followers(s, dana.id)] == ["eve_wants"]

    at = page_as(dana, "views/athletes.py")
    assert any("Eve Wants" in m.value for m in at.markdown)  # under "Your followers"
    at.text_input(key="athlete_query").input("eve_wants").run()
    click(at, "Block")
    assert any("Blocked" in m.value for m in at.success)
    assert [b.label for b in at.button if b.label in ("Block", "Unblock", "Remove")] == ["Unblock"]
    with Session(engine) as s:
        assert followers(s, dana.id) == []

    at = page_as(eve, "views/athletes.py")
    at.text_input(key="athlete_query").input("dana_asks").run()
    assert any("Nobody by that name" in i.value for i in at.info)

    at = page_as(dana, "views/settings.py")
    assert any("Blocked athletes" in m.value for m in at.markdown)
    click(at, "Unblock")
    assert not any("Blocked athletes" in m.value for m in at.markdown)
    at.toggle(key="approve_followers").set_value(False).run()
    assert not at.exception
    engine.dispose()


def test_an_athlete_deletes_their_account_from_settings_after_typing_their_username(world):
    from sqlalchemy.orm import Session

    from core.accounts.users import create_user, user_by_name
    from core.storage.engine import make_engine

    engine = make_engine(world.url)
    with Session(engine, expire_on_commit=False) as s, s.begin():
        leaver = create_user(s, "leaving_soon", "Leaving Soon", password="leaving-pass")
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["viewer"] = Viewer(leaver.id, leaver.username, leaver.name, "athlete", "metric")
    at.switch_page("views/settings.py")
    at.run()
    assert any("comments you wrote on other athletes' activities included" in c.value for c in at.caption)
    at.text_input(key="delete_confirm").input("someone_else")
    at.text_input(key="delete_password").input("leaving-pass")
    at.button(key=next(b.key for b in at.button if b.label == "Delete my account for good")).click().run()
    assert any("not your username: nothing was deleted" in e.value for e in at.error)
    at.text_input(key="delete_confirm").input("leaving_soon")
    at.text_input(key="delete_password").input("wrong-pass")
    at.button(key=next(b.key for b in at.button if b.label == "Delete my account for good")).click().run()
    assert any("not your password: nothing was deleted" in e.value for e in at.error)
    with Session(engine) as s:
        assert user_by_name(s, "leaving_soon") is not None
    at.text_input(key="delete_confirm").input("leaving_soon")
    at.text_input(key="delete_password").input("leaving-pass")
    at.button(key=next(b.key for b in at.button if b.label == "Delete my account for good")).click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert any("were deleted" in i.value for i in at.info)  # back on the sign-in page
    with Session(engine) as s:
        assert user_by_name(s, "leaving_soon") is None
    engine.dispose()


def test_owner_edits_an_activity_and_others_cannot(world):
    at = run_page(world, "bob", "views/activity.py", {"id": str(world.xss_id)})
    assert not [t for t in at.toggle if t.label == "Edit or delete this activity"]  # not bob's
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from core.activities.tables import Activity
    from core.storage.engine import make_engine
    engine = make_engine(world.url)
    with Session(engine) as s:
        mine = s.scalars(select(Activity).where(Activity.user_id == world.alice_id,
                                                Activity.title == "Riverside tempo")).one().id
    at = run_page(world, "alice", "views/activity.py", {"id": str(mine)})
    assert not [t for t in at.text_input if t.label == "Title"]  # built only when asked for
    at.toggle(key="edit_mode").set_value(True).run()
    form_input = next(t for t in at.text_input if t.label == "Title")
    form_input.input("Riverside tempo (edited)")
    next(b for b in at.get("form_submit_button") if b.label == "Save").click()
    at.run()
    assert "Riverside tempo \\(edited\\)" in at.title[0].value
    with Session(engine) as s:
        assert s.get(Activity, mine).title == "Riverside tempo (edited)"
    engine.dispose()


def test_openid_connect_button_appears_when_configured(world):
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    assert not [b for b in at.button if "organisation" in b.label]
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.secrets["auth"] = {"redirect_uri": "http://localhost:8501/oauth2callback", "cookie_secret": "x" * 32,
                          "client_id": "tracker", "client_secret": "s",
                          "server_metadata_url": "https://id.example.org/.well-known/openid-configuration"}
    at.run()
    assert not at.exception
    assert [b for b in at.button if b.label == "Sign in with your organisation's account"]


def _flag_the_demo_drive(world):
    """Score the demo's car drive saved as a run (rules only), so it waits for review."""
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from core.activities.tables import Activity
    from core.anomaly.scoring import score_activity
    from core.anomaly.tables import ActivityFlag
    from core.storage.engine import make_engine

    engine = make_engine(world.url)
    with Session(engine) as s, s.begin():
        drive = s.scalars(select(Activity).where(Activity.title == "Morning run", Activity.max_speed_mps > 10)).first()
        flag = s.get(ActivityFlag, drive.id) or score_activity(s, drive, None)
        out = (drive.id, drive.user_id, flag.status)
    engine.dispose()
    return out


def test_moderators_review_and_dismiss_a_flag_athletes_cannot_reach_the_page(world):
    from core.accounts.users import user_by_name
    from core.storage.engine import make_engine

    activity_id, owner_id, status = _flag_the_demo_drive(world)
    assert status == "flagged"
    engine = make_engine(world.url)
    from sqlalchemy.orm import Session
    with Session(engine) as s:
        mod_id = user_by_name(s, "moderator").id
    engine.dispose()
    # An athlete: no moderation page in the navigation, and its URL leads elsewhere.
    at = run_page(world, "alice", "views/feed.py")
    assert "Flagged activities" not in all_text(at)
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["viewer"] = Viewer(world.alice_id, "alice", "Alice", "athlete", "metric")
    at.switch_page("views/moderation.py")
    at.run()
    assert "Flagged activities" not in [t.value for t in at.title]
    # A moderator sees the queue with the reasons and decides.
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["viewer"] = Viewer(mod_id, "moderator", "Morgan Moderator", "moderator", "metric")
    at.switch_page("views/moderation.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = all_text(at)
    assert at.title[0].value == "Flagged activities"
    assert "km/h" in text and "Precision of past flags" in text
    dismiss = [b for b in at.get("form_submit_button") if b.label == "Dismiss: legitimate"]
    assert dismiss
    dismiss[0].click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    from sqlalchemy import select

    from core.activities.tables import Activity
    from core.anomaly.tables import ModerationDecision
    engine = make_engine(world.url)
    with Session(engine) as s:
        decision = s.scalars(select(ModerationDecision).where(ModerationDecision.activity_id == activity_id)).one()
        assert decision.action == "dismiss" and decision.moderator_id == mod_id
        assert not s.get(Activity, activity_id).held
    engine.dispose()


def test_moderators_see_what_scoring_gave_up_on_with_its_error_and_have_it_scored_again(world):
    """An activity scoring failed on five times shows on the moderators' page, with its
    athlete, its error as written (hostile text stays text) and a button that has it scored
    again at the next round."""
    from sqlalchemy import delete, select
    from sqlalchemy.orm import Session

    from core.accounts.users import user_by_name
    from core.activities.tables import Activity
    from core.anomaly import failures
    from core.anomaly.tables import ActivityFlag, ScoringFailure
    from core.storage.engine import make_engine, make_sessionmaker

    engine = make_engine(world.url)
    Sessions = make_sessionmaker(engine)
    hostile = "<img src=x onerror=alert(1)> **bold** [link](javascript:alert(2))"
    with Sessions() as s:
        mod_id = user_by_name(s, "moderator").id
        activity_id = s.scalars(select(Activity.id).outerjoin(ActivityFlag, ActivityFlag.activity_id == Activity.id)
                                .outerjoin(ScoringFailure, ScoringFailure.activity_id == Activity.id)
                                .where(Activity.status == "completed", ActivityFlag.activity_id.is_(None),
                                       ScoringFailure.activity_id.is_(None)).limit(1)).first()
        before = failures.count_given_up(s)  # the browser tests' hostile world adds its own
    assert activity_id is not None, "the demo world is built without verdicts: one of its activities is needed"
    failures.record(Sessions, activity_id, ValueError(hostile))
    with Sessions() as s, s.begin():  # then given up on, as after the last attempt
        s.execute(ScoringFailure.__table__.update().where(ScoringFailure.activity_id == activity_id)
                  .values(retry_at=None, attempts=failures.MAX_ATTEMPTS))
    try:
        at = page_of(mod_id, "views/moderation.py")
        assert any(e.label == f"Could not be scored ({before + 1})" for e in at.expander)
        assert f"ValueError: {hostile}" in [c.value for c in at.code]
        assert "failed 5 times since" in all_text(at)
        again = [b for b in at.button if b.label == "Score again" and b.key == f"unscored_{activity_id}"]
        assert len(again) == 1
        again[0].click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        with Session(engine) as s:
            row = s.get(ScoringFailure, activity_id)
            assert row.retry_at is not None and row.attempts == failures.MAX_ATTEMPTS - 1
            assert row.retried_by == mod_id and row.retried_at is not None
        assert any(e.label == f"Could not be scored ({before})" for e in at.expander)
        with Sessions() as s, s.begin():  # tried, and failed again: the moderators see who asked
            s.execute(ScoringFailure.__table__.update().where(ScoringFailure.activity_id == activity_id)
                      .values(retry_at=None, attempts=failures.MAX_ATTEMPTS))
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        assert "scored again at the request of @moderator" in all_text(at)
    finally:
        with Sessions() as s, s.begin():
            s.execute(delete(ScoringFailure).where(ScoringFailure.activity_id == activity_id))
        engine.dispose()


def test_moderators_see_late_fixes_not_applied_with_their_error_and_have_them_recomputed(world):
    """An activity whose recomputation after late fixes was given up on shows on the
    moderators' page with its error as written, and a button that has it tried again."""
    from sqlalchemy import delete, insert, select
    from sqlalchemy.orm import Session

    from core.accounts.tables import DeviceToken, User
    from core.accounts.tokens import create_device_token
    from core.accounts.users import user_by_name
    from core.activities.tables import Activity
    from core.anomaly import failures
    from core.devices.tables import DeviceTrack
    from core.storage.engine import make_engine

    engine = make_engine(world.url)
    hostile = "<img src=x onerror=alert(1)> **bold**"
    with Session(engine) as s, s.begin():
        mod_id = user_by_name(s, "moderator").id
        activity_id = s.scalars(select(Activity.id).outerjoin(DeviceTrack, DeviceTrack.activity_id == Activity.id)
                                .where(Activity.status == "completed", DeviceTrack.activity_id.is_(None))
                                .limit(1)).first()
        token, _ = create_device_token(s, s.get(User, s.get(Activity, activity_id).user_id), "phone")
        s.flush()
        token_id = token.id
        s.execute(insert(DeviceTrack).values(activity_id=activity_id, user_id=s.get(Activity, activity_id).user_id,
                                             token_id=token_id, anchor_t=0.0, first_t=0.0,
                                             last_t=0.0, heard_at=0.0, recompute=True,
                                             recompute_attempts=failures.MAX_ATTEMPTS,
                                             recompute_error=f"ValueError: {hostile}"))
    try:
        at = page_of(mod_id, "views/moderation.py")
        assert any(e.label == "Late fixes not applied (1)" for e in at.expander)
        assert f"ValueError: {hostile}" in [c.value for c in at.code]
        again = [b for b in at.button if b.key == f"stale_{activity_id}"]
        assert len(again) == 1
        again[0].click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        with Session(engine) as s:
            row = s.get(DeviceTrack, activity_id)
            assert row.recompute_attempts == failures.MAX_ATTEMPTS - 1 and row.recompute_retry_at is not None
        assert any(e.label == "Late fixes not applied (0)" for e in at.expander)
    finally:
        with Session(engine) as s, s.begin():
            s.execute(delete(DeviceTrack).where(DeviceTrack.activity_id == activity_id))
            s.execute(delete(DeviceToken).where(DeviceToken.id == token_id))
        engine.dispose()


def _confirmed_drive(world, username: str, display: str, seed: int):
    """A public run with a car stretch, scored and confirmed by the moderator: (engine, athlete,
    moderator, activity, first reason, (first, last) minute of the stretch to crop)."""
    import random
    import time

    import numpy as np
    from sqlalchemy.orm import Session

    from core.accounts.users import create_user, user_by_name
    from core.activities.imports import record_track
    from core.anomaly import cheats
    from core.anomaly.moderation import decide
    from core.anomaly.scoring import score_activity
    from core.storage.engine import make_engine
    from core.storage.points import stored_track
    from core.synthetic.tracks import synthetic_track
    from core.tracks.geo import segment_lengths_m

    engine = make_engine(world.url)
    with Session(engine, expire_on_commit=False) as s, s.begin():
        athlete = create_user(s, f"{username}{random.randrange(10**6)}", display)
        mod = user_by_name(s, "moderator")
        run = synthetic_track(random.Random(80 + seed), "run", time.time() - 3 * 3600, 38.74, -9.16, 60, 3.0)
        drive = record_track(s, athlete, cheats.vehicle(run, random.Random(3 + seed)), title="Commute run",
                             visibility="public", source="demo")
        flag = score_activity(s, drive, None)
        reason = flag.reasons[0]
        decide(s, drive.id, mod, "confirm", "that was a car")
        track = stored_track(s, drive)
        fast = track.t[1:][segment_lengths_m(track.lat, track.lon) / np.diff(track.t) > 6.0]
        minutes = (int((fast.min() - track.t[0]) // 60) - 1, int((fast.max() - track.t[0]) // 60) + 2)
    return engine, athlete, mod, drive, reason, minutes


def test_a_confirmed_drive_the_athlete_crops_goes_back_to_the_moderators_beside_its_original_reasons(world):
    """The athlete may crop a confirmed activity (told it goes back to review); it then shows as
    cropped, waiting for a moderator, and the moderators see the crop before and after beside
    the reasons it was flagged for, and release it."""
    from sqlalchemy.orm import Session

    from core.activities.tables import Activity
    from core.anomaly.tables import ActivityFlag
    from dashboard.ui import plain

    engine, athlete, mod, drive, reason, minutes = _confirmed_drive(world, "cropper", "Cody Cropper", 0)

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["viewer"] = Viewer(athlete.id, athlete.username, "Cody Cropper", "athlete", "metric")
    at.switch_page("views/activity.py")
    at.query_params["id"] = str(drive.id)
    at.run()
    assert "confirmed as irregular" in all_text(at)
    at.toggle(key="crop_mode").set_value(True).run()
    assert "A crop sends it back to the moderators" in all_text(at)
    at.slider[0].set_value(minutes)
    next(b for b in at.get("form_submit_button") if b.label == "Remove this part").click().run()
    assert not at.exception, [e.value for e in at.exception]
    text = all_text(at)
    assert "A moderator will look at the new version" in text
    assert "cropped, waiting for a moderator" in text and plain(reason) in text
    assert "After your crop: the detector finds nothing irregular any more" in text
    with Session(engine) as s:
        assert s.get(ActivityFlag, drive.id).status == "cropped" and s.get(Activity, drive.id).held

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["viewer"] = Viewer(mod.id, "moderator", "Morgan Moderator", "moderator", "metric")
    at.switch_page("views/moderation.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = all_text(at)
    assert "cropped, to review" in text and "Reasons the flag was raised for" in text
    assert "a moderator had confirmed it" in text and "The athlete's crop" in text
    assert f"removed {minutes[0]}:00 to {minutes[1]}:00 of the recording" in text
    figures = {row[0]: row[1:] for row in table_rows(at) if row and row[0] in ("score", "distance")}
    assert float(figures["score"][0]) >= 0.5 > float(figures["score"][1])
    assert float(figures["distance"][0].split()[0]) > float(figures["distance"][1].split()[0])
    next(b for b in at.get("form_submit_button")
         if b.label == "Dismiss: legitimate" and b.form_id == f"decide_{drive.id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    with Session(engine) as s:
        assert s.get(ActivityFlag, drive.id).status == "dismissed" and not s.get(Activity, drive.id).held
    engine.dispose()


def test_with_redis_a_crop_is_scored_by_the_stream_and_the_page_says_it_is_being_checked(world, redis_client,
                                                                                        monkeypatch):
    """With Redis, the page crops and publishes without scoring: the athlete is told the
    activity is being checked again and sees it as it stood (confirmed, held) until a scorer
    of the stream writes the verdict; then the page shows the crop's outcome."""
    from sqlalchemy.orm import Session

    from core.activities.tables import Activity
    from core.anomaly.scoring import pending_crop
    from core.anomaly.tables import ActivityFlag
    from core.jobs.stream import RedisActivityStream, score
    from core.storage.engine import make_sessionmaker
    from dashboard import data

    monkeypatch.setattr(data, "redis", lambda: redis_client)
    engine, athlete, _mod, drive, _reason, minutes = _confirmed_drive(world, "streamcrop", "Stella Stream", 1)

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["viewer"] = Viewer(athlete.id, athlete.username, "Stella Stream", "athlete", "metric")
    at.switch_page("views/activity.py")
    at.query_params["id"] = str(drive.id)
    at.run()
    at.toggle(key="crop_mode").set_value(True).run()
    at.slider[0].set_value(minutes)
    next(b for b in at.get("form_submit_button") if b.label == "Remove this part").click().run()
    assert not at.exception, [e.value for e in at.exception]
    text = all_text(at)
    assert "being checked again" in text and "confirmed as irregular" in text
    with Session(engine) as s:
        assert s.get(ActivityFlag, drive.id).status == "confirmed" and s.get(Activity, drive.id).held
        assert len(pending_crop(s, drive.id).crops) == 1

    assert score(make_sessionmaker(engine), RedisActivityStream(redis_client), None, 0.5)["written"] == 1
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = all_text(at)
    assert "being checked again" not in text
    assert "cropped, waiting for a moderator" in text
    assert "After your crop: the detector finds nothing irregular any more" in text
    engine.dispose()


def test_a_random_sample_shows_marked_to_moderators_and_not_at_all_to_its_athlete(world, monkeypatch):
    """An activity scored clear near the threshold and drawn for the moderators' sample: its
    athlete's page says nothing of it; the moderators' queue shows it marked as a sample; a
    confirmation holds it like a confirmed flag, and only then does the athlete see it."""
    import random
    import time

    from sqlalchemy.orm import Session

    from core.accounts.users import create_user, user_by_name
    from core.activities.imports import record_track
    from core.activities.tables import Activity
    from core.anomaly import scoring
    from core.anomaly.moderation import latest_decision
    from core.anomaly.tables import ActivityFlag
    from core.storage.engine import make_engine
    from core.synthetic.tracks import synthetic_track

    monkeypatch.setattr(scoring, "SAMPLE_RATE", 1.0)  # drawn whatever its id
    engine = make_engine(world.url)
    with Session(engine, expire_on_commit=False) as s, s.begin():
        athlete = create_user(s, f"sandy{random.randrange(10**6)}", "Sandy Runner")
        mod = user_by_name(s, "moderator")
        run = record_track(s, athlete, synthetic_track(random.Random(90), "run", time.time() - 5 * 3600, 38.74, -9.16,
                                                       40, 3.0), title="Tuesday run", visibility="public")
        # Rules only, an ordinary run scores 0: within the band below a threshold of 0.1.
        assert scoring.score_activity(s, run, None, 0.1).status == "sampled" and not run.held

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["viewer"] = Viewer(athlete.id, athlete.username, "Sandy Runner", "athlete", "metric")
    at.switch_page("views/activity.py")
    at.query_params["id"] = str(run.id)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    text = all_text(at).lower()
    assert "tuesday run" in text and not at.warning
    assert "sample" not in text and "moderator" not in text and "flag" not in text

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["viewer"] = Viewer(mod.id, "moderator", "Morgan Moderator", "moderator", "metric")
    at.switch_page("views/moderation.py")
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    card = next(md.value for md in at.markdown if "Sandy Runner" in md.value)
    assert "random sample of a cleared activity, near the threshold" in card
    assert any("the detector cleared it" in i.value and "stays on the leaderboards" in i.value for i in at.info)
    next(b for b in at.get("form_submit_button")
         if b.label == "Confirm: irregular" and b.form_id == f"decide_{run.id}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    with Session(engine) as s:
        assert s.get(ActivityFlag, run.id).status == "confirmed" and s.get(Activity, run.id).held
        assert latest_decision(s, run.id).sample

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["viewer"] = Viewer(athlete.id, athlete.username, "Sandy Runner", "athlete", "metric")
    at.switch_page("views/activity.py")
    at.query_params["id"] = str(run.id)
    at.run()
    assert "confirmed as irregular by a moderator" in all_text(at)
    engine.dispose()


def test_samples_have_their_own_section_below_a_full_page_of_flags_and_no_crop_button(world, monkeypatch):
    """More flags wait than a page shows, all scoring above any sample: the samples still show,
    in their own section below the flags, marked, with dismiss and confirm but no crop request
    (it would tell the athlete); the caption counts decisions, samples among them."""
    import random
    import time

    from sqlalchemy import update
    from sqlalchemy.orm import Session

    from core.accounts.users import create_user, user_by_name
    from core.activities.imports import record_track
    from core.anomaly import scoring
    from core.anomaly.tables import ActivityFlag
    from core.storage.engine import make_engine
    from core.synthetic.tracks import synthetic_track

    monkeypatch.setattr(scoring, "SAMPLE_RATE", 1.0)  # drawn whatever its id
    engine = make_engine(world.url)
    with Session(engine, expire_on_commit=False) as s, s.begin():
        athlete = create_user(s, f"flo{random.randrange(10**6)}", "Flo Flagged")
        mod = user_by_name(s, "moderator")
        flagged = []
        for k in range(21):
            run = record_track(s, athlete, synthetic_track(random.Random(200 + k), "run", time.time() - (k + 10) * 3600,
                                                           38.74, -9.16, 5, 3.0), title=f"Flagged run {k}")
            scoring.record_verdict(s, run.id, scoring.Scoring(
                flagged=True, score=0.97, reasons=["test flag"], codes="", verdict={}, features={}, fingerprint=None,
                centroid=None, model_version="test"))
            flagged.append(run.id)
        sample = record_track(s, athlete, synthetic_track(random.Random(250), "run", time.time() - 8 * 3600,
                                                          38.74, -9.16, 5, 3.0), title="Sampled run")
        assert scoring.score_activity(s, sample, None, 0.1).status == "sampled"
    try:
        at = AppTest.from_file(str(APP), default_timeout=120)
        at.session_state["viewer"] = Viewer(mod.id, "moderator", "Morgan Moderator", "moderator", "metric")
        at.switch_page("views/moderation.py")
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        headers = [h.value for h in at.subheader]
        assert any(h.startswith("Flags (") for h in headers)
        assert any(h.startswith("Random samples (") for h in headers)
        assert [h.split(" (")[0] for h in headers].index("Flags") < [h.split(" (")[0] for h in headers].index(
            "Random samples")
        assert any("Sampled run" in md.value for md in at.markdown)
        assert any("Flo Flagged" in md.value and "random sample of a cleared activity, near the threshold" in md.value
                   for md in at.markdown)
        labels = {b.label for b in at.get("form_submit_button") if b.form_id == f"decide_{sample.id}"}
        assert labels == {"Dismiss: legitimate", "Confirm: irregular"}
        flag_labels = {b.label for b in at.get("form_submit_button") if b.form_id == f"decide_{flagged[0]}"}
        assert "Ask the athlete to crop" in flag_labels
        assert not any("recalibrated" in c.value and " flags, F1" in c.value for c in at.caption)
    finally:
        with Session(engine) as s, s.begin():  # out of the queue for the other tests
            s.execute(update(ActivityFlag).where(ActivityFlag.activity_id.in_([*flagged, sample.id]))
                      .values(status="dismissed"))
        engine.dispose()


# ---------------------------------------------------------------------------------------
# Discover: route suggestions, saved routes, ratings, athletes to follow; the settings question


def as_athlete(user_id: int, username: str, page: str) -> AppTest:
    at = AppTest.from_file(str(APP), default_timeout=120)
    at.session_state["viewer"] = Viewer(user_id, username, username, "athlete", "metric")
    at.switch_page(page)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def suggested_ids(at: AppTest) -> list[int]:
    """The routes suggested on the page, in order (one "Not for me" button each)."""
    return [int(b.key.removeprefix("dismiss_")) for b in at.button if b.key and b.key.startswith("dismiss_")]


def saved_ids(at: AppTest) -> list[int]:
    return [int(b.key.removeprefix("unsave_")) for b in at.button if b.key and b.key.startswith("unsave_")]


def test_discover_suggests_routes_with_reasons_and_save_and_not_for_me_change_the_list(world, discover_world):
    from sqlalchemy.orm import Session

    from core.recommend.service import saved_routes, suggestions_for
    from core.storage.engine import make_engine
    from dashboard.ui import plain

    dw = discover_world
    uid = dw.users["dora"]
    engine = make_engine(world.url)
    with Session(engine) as s:
        expected = [(r.id, r.name, x.reason) for r, x in suggestions_for(s, uid, 10)]
    at = as_athlete(uid, dw.usernames["dora"], "views/discover.py")
    assert at.title[0].value == "Discover"
    assert [h.value for h in at.subheader] == ["Suggested routes", "Saved routes", "Rate a route you completed",
                                               "Suggested athletes"]
    shown = suggested_ids(at)
    assert len(shown) >= 4 and shown == [r for r, _, _ in expected]
    assert dw.routes["North"] not in shown and dw.routes["Centre"] not in shown  # she ran those
    text = all_text(at)
    for _, name, reason in expected:
        assert plain(name) in text and plain(reason[:1].upper() + reason[1:]) in text
    # The hostile route names are escaped for Markdown: shown literally, never as markup.
    hostile = [loop for loop in ("img", "script", "braces", "link") if dw.routes[loop] in shown]
    assert len(hostile) >= 2
    for loop in hostile:
        assert f"**{plain(dw.names[loop])}**" in text and dw.names[loop] not in text
    # Distance and climbing in her units, and a small map of each route: its line, no start or finish.
    assert re.search(r"\d+\.\d km · \d+ m climbing · loop · done by \d+ athletes", text)
    maps = [el.proto.json_args for el in at.get("component_instance")]
    assert len(maps) == len(shown)
    assert all("suggested-route-line" in m and "start-marker" not in m and "finish-marker" not in m for m in maps)

    # "Not for me": gone from the list, recorded, and said so.
    dismissed, kept = shown[0], shown[1]
    at.button(key=f"dismiss_{dismissed}").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert dismissed not in suggested_ids(at) and kept in suggested_ids(at)
    assert any("will not be suggested again" in s_.value for s_ in at.success)
    # Save: off the list, into the saved routes; Unsave takes it out again.
    at.button(key=f"save_{kept}").click().run()
    assert kept not in suggested_ids(at) and saved_ids(at) == [kept]
    with Session(engine) as s:
        assert [r.id for r in saved_routes(s, uid)] == [kept]
        assert dismissed not in [r.id for r, _ in suggestions_for(s, uid, 10)]
    at = as_athlete(uid, dw.usernames["dora"], "views/discover.py")  # a fresh visit reads the same
    assert dismissed not in suggested_ids(at) and kept not in suggested_ids(at) and saved_ids(at) == [kept]
    at.button(key=f"unsave_{kept}").click().run()
    assert saved_ids(at) == [] and any("Save a suggested route" in c.value for c in at.caption)
    with Session(engine) as s:
        assert saved_routes(s, uid) == []
    engine.dispose()


def test_discover_suggests_athletes_to_follow_with_reasons(world, discover_world):
    from sqlalchemy.orm import Session

    from core.social.follows import followed_athletes
    from core.storage.engine import make_engine

    dw = discover_world
    uid = dw.users["dora"]
    at = as_athlete(uid, dw.usernames["dora"], "views/discover.py")
    follows = [b for b in at.button if b.key and b.key.startswith("suggested_follow_")]
    assert follows, "no athlete suggested"
    others = set(dw.users.values()) - {uid}
    picked = int(follows[0].key.removeprefix("suggested_follow_"))
    assert picked in others
    assert any(md.value.startswith("**") and " Discover** · @discover" in md.value for md in at.markdown)
    assert any("like you" in c.value or "near where you start" in c.value for c in at.caption)
    follows[0].click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert f"suggested_follow_{picked}" not in [b.key for b in at.button]
    engine = make_engine(world.url)
    with Session(engine) as s:
        assert picked in [u.id for u in followed_athletes(s, uid)]
    engine.dispose()


def test_discover_rates_a_completed_route_and_says_why_a_rating_is_refused(world, discover_world):
    from sqlalchemy.orm import Session

    from core.activities.lifecycle import delete_activity
    from core.activities.tables import Activity
    from core.recommend.tables import RouteSignal
    from core.storage.engine import make_engine

    dw = discover_world
    uid = dw.users["eli"]
    north, east = dw.routes["North"], dw.routes["East"]
    at = as_athlete(uid, dw.usernames["eli"], "views/discover.py")
    options = at.selectbox(key="rate_route").options  # her routes as plain text: name, distance, times
    assert len(options) == 2
    assert any(re.fullmatch(r"North Loop · \d+\.\d km · 1 time", o) for o in options), options

    def rate(route_id: int, stars: int | None) -> AppTest:
        at.selectbox(key="rate_route").set_value(route_id)
        if stars is not None:
            at.radio(key="rate_stars").set_value(stars)
        next(b for b in at.get("form_submit_button") if b.label == "Rate").click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    # No stars chosen: core's reason, said so.
    rate(north, None)
    assert any(e.value == "Rating not saved: a rating is a whole number of stars from 1 to 5." for e in at.error)
    rate(north, 4)
    assert any(s_.value == "Rated **North Loop** 4 stars." for s_ in at.success), [s_.value for s_ in at.success]
    engine = make_engine(world.url)
    with Session(engine) as s:
        assert s.get(RouteSignal, (uid, north, "rating")).value == 4.0
    # The run on East deleted (in another tab, say) after the page showed it: refused, with the reason.
    at.selectbox(key="rate_route").set_value(east)
    at.radio(key="rate_stars").set_value(5)
    with Session(engine) as s, s.begin():
        for activity_id in dw.runs[("eli", "East")]:
            delete_activity(s, s.get(Activity, activity_id))
    next(b for b in at.get("form_submit_button") if b.label == "Rate").click()
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    assert any(e.value == "Rating not saved: rate a route after completing it." for e in at.error), \
        [e.value for e in at.error]
    with Session(engine) as s:
        assert s.get(RouteSignal, (uid, east, "rating")) is None
    assert len(at.selectbox(key="rate_route").options) == 1  # East is no longer hers to rate
    engine.dispose()


def test_settings_question_stores_its_answers_and_discover_suggests_from_them(world, discover_world):
    from sqlalchemy.orm import Session

    from core.accounts.users import create_user
    from core.recommend.service import settings_of
    from core.storage.engine import make_engine

    engine = make_engine(world.url)
    with Session(engine, expire_on_commit=False) as s, s.begin():
        fern = create_user(s, "discover-fern", "Fern New")
    # Nothing known of her: the page says why there is nothing, and where to answer.
    at = as_athlete(fern.id, fern.username, "views/discover.py")
    assert suggested_ids(at) == []
    assert any("Nothing to suggest yet" in i.value and "Settings" in i.value for i in at.info)
    assert any(p.label == "Answer the route question in Settings" for p in at.get("page_link"))

    at = as_athlete(fern.id, fern.username, "views/settings.py")
    assert "Route suggestions" in [h.value for h in at.subheader]
    assert at.checkbox(key="discovery_discoverable").value is True  # findable unless she says otherwise

    def submit(at: AppTest) -> AppTest:
        next(b for b in at.get("form_submit_button") if b.label == "Save suggestion settings").click()
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    # A refused answer: core's reason, and nothing stored.
    at.number_input(key="discovery_distance").set_value(0.1)
    submit(at)
    assert any(e.value == "Not saved: usual distance must be between 0.5 and 500 km." for e in at.error), \
        [e.value for e in at.error]
    with Session(engine) as s:
        assert settings_of(s, fern.id) is None
    # Only half an area.
    at.number_input(key="discovery_distance").set_value(6.0)
    at.number_input(key="discovery_lat").set_value(52.3712)
    submit(at)
    assert any("both a latitude and a longitude" in e.value for e in at.error)
    at.radio(key="discovery_sport").set_value("run")
    at.radio(key="discovery_terrain").set_value("flat")
    at.number_input(key="discovery_lon").set_value(4.8934)
    at.checkbox(key="discovery_discoverable").uncheck()
    submit(at)
    assert any(s_.value.startswith("Saved") for s_ in at.success), [e.value for e in at.error]
    with Session(engine) as s:
        row = settings_of(s, fern.id)
        assert (row.sport, row.usual_distance_m, row.terrain) == ("run", 6000.0, "flat")
        assert (row.area_lat, row.area_lon) == (52.37, 4.89) and row.discoverable is False
    # Shown again as stored.
    at = as_athlete(fern.id, fern.username, "views/settings.py")
    assert at.radio(key="discovery_sport").value == "run" and at.radio(key="discovery_terrain").value == "flat"
    assert at.number_input(key="discovery_distance").value == 6.0
    assert at.number_input(key="discovery_lat").value == 52.37 and at.checkbox(key="discovery_discoverable").value is False
    # From her answers alone, routes near her area.
    at = as_athlete(fern.id, fern.username, "views/discover.py")
    assert len(suggested_ids(at)) >= 3 and not at.info
    engine.dispose()


def test_moderators_see_the_storage_tiers_and_move_old_activities_to_the_archive(tmp_path, monkeypatch):
    """The Storage tiers page shows what ``tiers status`` prints and starts what ``tiers run``
    does, with its progress; the old activity's points end in the archive and still read
    whole. Athletes cannot reach it. On a database of its own: the move archives every old
    activity, and the shared world's must stay where they are."""
    import random
    import time
    from datetime import timedelta

    import streamlit as st
    from sqlalchemy import func, select
    from sqlalchemy.orm import Session

    from core.accounts.users import create_user
    from core.activities.imports import record_track
    from core.activities.tables import Activity
    from core.storage.base import utcnow
    from core.storage.engine import make_engine
    from core.storage.points import RoutePoint, stored_track
    from core.storage.schema import migrate
    from core.synthetic.tracks import synthetic_track
    from dashboard import tier_moves

    url = f"sqlite:///{tmp_path / 'tiers.db'}"
    engine = make_engine(url)
    migrate(engine)
    with Session(engine) as s, s.begin():
        mod = create_user(s, "tier_moderator", "Tia Moderator", role="moderator")
        runner = create_user(s, "tier_runner", "Rhea Runner")
        old = record_track(s, runner, synthetic_track(random.Random(5), "run", time.time() - 400 * 86400, 46.0,
                                                      14.5, 20, 3.0), source="demo")
        old.start_time = utcnow() - timedelta(days=400)
        ids = (mod.id, runner.id, old.id, old.point_count)
    mod_id, runner_id, old_id, points = ids
    monkeypatch.setenv("TRACKER_DATABASE_URL", url)
    monkeypatch.setenv("TRACKER_DATA_DIR", str(tmp_path))
    st.cache_resource.clear()  # the pages' session factory, made from the environment
    st.cache_data.clear()
    try:
        assert "Storage tiers" not in [t.value for t in page_of(runner_id, "views/storage.py").title]
        at = page_of(mod_id, "views/storage.py")
        assert at.title[0].value == "Storage tiers"
        assert "1 to archive" in all_text(at) and "1 activities" in [m.value for m in at.metric][0]
        [b for b in at.get("form_submit_button") if b.label == "Move now"][0].click()
        at.run()
        for _ in range(600):  # the move runs in a thread of this process
            move = tier_moves.last()
            if move is not None and not move.running:
                break
            time.sleep(0.1)
        assert move.error is None and move.result["archived"] == 1, move
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        text = all_text(at)
        assert "ended" in text and "1 activities archived" in text, text
        assert at.metric[1].value == "1 activities" and "0 to archive" in text
        with Session(engine) as s:
            assert s.get(Activity, old_id).points_tier == "cold"
            assert s.scalar(select(func.count()).select_from(RoutePoint).where(RoutePoint.activity_id == old_id)) == 0
            assert len(stored_track(s, s.get(Activity, old_id))) == points
        # An archive out of reach: said plainly, without what its URL may hold in secret.
        monkeypatch.setenv("TRACKER_ARCHIVE_URL", "nosuch://KEYID:SECRETKEY@bucket/archive")
        at = page_of(mod_id, "views/storage.py")
        text = all_text(at)
        assert "cannot be read" in text and "//bucket/archive" in text and "SECRETKEY" not in text, text
        assert not at.get("form_submit_button")
    finally:
        engine.dispose()
        st.cache_resource.clear()
        st.cache_data.clear()
