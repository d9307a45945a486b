"""An athlete's archive of everything held about them: what the zip holds, and writing it
(``core.jobs.export`` asks for it, builds it in the worker and keeps it for a time).

The zip holds:

* ``activities/<id>.gpx``: each activity with positions, whole (the athlete's own privacy
  zones and hidden ends are theirs to see), heart rate and cadence included;
  ``activities/<id>.tcx``: each one with points a GPX cannot hold (an indoor session, a
  device's minutes before it had a fix), every timed point; and ``activities.csv``, the
  listing of the completed ones in the columns of a Strava export, each with the file that
  holds it whole, so the zip imports again here (``core.activities.archive``) or elsewhere;
* ``originals/<id>/<its name>.gz``: each activity that came from a file (an upload, a
  Strava export), as that file was, before any crop; ``activities.json`` gives its name and
  ``activities.csv`` lists it under "Original Filename", so importing the zip here keeps it
  as the original again;
* ``activities/<id>.csv``: every point of every activity (indoor ones too), with time,
  position, elevation, accuracy, heart rate and cadence; ``activities/<id>.hints.csv``: a
  phone app's motion hints;
* ``activities.json``: each activity's title, dates, sport, visibility, status, figures,
  start, pause, resume and stop times, and the route it followed;
* ``profile.json`` (account, settings, privacy zones as the athlete drew them, route
  suggestion settings), ``social.json`` (follows both ways, requests, blocks they made,
  comments given and received, kudos given and how many received), ``challenges.json``
  (badges, weekly and group challenges), ``moderation.json`` (flags on their activities and
  moderators' decisions about them, without the moderator nor another athlete's activity
  a copy was found of), ``engagement.json`` (days of visits and sign-ins, drop-off risk,
  route ratings and suggestions), ``devices.json`` (device names and sign-in sessions).

No secrets: no password, token or session hash, no zone's hidden offset. Other athletes
appear by username and display name only, and only where the athlete already sees them
(who follows them, who commented or gave kudos, on what).
"""

from __future__ import annotations

import csv
import io
import json
import logging
import zipfile
from collections.abc import Callable

import numpy as np
from sqlalchemy import func, inspect, or_, select
from sqlalchemy.orm import Session, sessionmaker

from core.accounts.tables import DeviceToken, LoginAttempt, User, WebSession
from core.activities.archive import ORIGINAL_COLUMN, path_name
from core.activities.originals import OriginalFileError, original_of, read_gzipped
from core.activities.tables import Activity, ActivityEvent
from core.anomaly.detector import as_athlete_sees
from core.anomaly.tables import ActivityFlag, ModerationDecision, PendingCrop
from core.challenges.tables import (
    BadgeAward,
    Challenge,
    EngagementDay,
    EngagementRisk,
    GroupChallenge,
    GroupMember,
)
from core.config import load_settings
from core.devices.tables import FixHint
from core.recommend.tables import DiscoverySettings, RouteSignal, RouteSuggestion
from core.routes.tables import RouteActivity
from core.social.tables import Block, Comment, FollowRequest, Friend, Kudos, PrivacyZone
from core.storage.cold import Archive, open_archive
from core.storage.points import stored_track
from core.tracks.formats.gpx import to_gpx
from core.tracks.formats.tcx import to_tcx

log = logging.getLogger(__name__)

PROGRESS_EVERY = 25  # activities between two progress writes
SECRET_COLUMNS = {"password_hash", "token_hash", "hidden_lat", "hidden_lon", "hidden_radius_m", "moderator_id",
                  "fingerprint", "verdict", "claim"}
POINT_HEADER = ["time_unix_s", "lat", "lon", "elevation_m", "accuracy_m", "heart_rate_bpm", "cadence"]
STRAVA_TYPE = {"run": "Run", "ride": "Ride"}
STRAVA_VISIBILITY = {"public": "everyone", "followers": "followers_only", "private": "only_me"}
LISTING = ["Activity ID", "Activity Date", "Activity Name", "Activity Type", "Elapsed Time", "Distance",
           "Activity Visibility", "Filename", ORIGINAL_COLUMN]


class ExportError(ValueError):
    """An export that cannot be asked for or read; the message says why."""


def _plain(row, drop: set[str] = frozenset()) -> dict:
    """A row's columns as JSON-ready values, without the secret ones."""
    out = {}
    for attr in inspect(row).mapper.column_attrs:
        if attr.key in SECRET_COLUMNS or attr.key in drop:
            continue
        value = getattr(row, attr.key)
        out[attr.key] = value.isoformat() if hasattr(value, "isoformat") else value
    return out


def _names(s: Session, ids) -> dict[int, dict]:
    ids = sorted(set(ids))
    return {u.id: {"username": u.username, "name": u.name}
            for u in s.scalars(select(User).where(User.id.in_(ids)))} if ids else {}


def write_export(Session: sessionmaker[Session], user_id: int, out, progress: Callable[[int, int], None] | None = None
                 ) -> dict:
    """Write the zip of everything about ``user_id`` to ``out`` (a path or a binary file);
    ``progress(done, total)`` is called as activities are written. Counts of what it holds."""
    with Session() as s:
        user = s.get(User, user_id)
        if user is None:
            raise ExportError(f"there is no user {user_id}")
        activities = list(s.scalars(select(Activity).where(Activity.user_id == user_id).order_by(Activity.id)))
        sections = _sections(s, user)
    total = len(activities) + 1
    archive = open_archive(load_settings())  # the files activities were imported from
    listing = io.StringIO()
    writer = csv.writer(listing)
    writer.writerow(LISTING)
    rows, files = [], 0
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, value in sections.items():
            zf.writestr(name, _json(value))
        for k, activity in enumerate(activities, start=1):
            row, listed = _activity(Session, zf, activity, archive)
            rows.append(row)
            files += bool(listed)
            if listed and activity.status == "completed":  # what imports again: the completed ones
                start = activity.start_time or activity.created_at
                writer.writerow([activity.id, start.strftime("%b %d, %Y, %I:%M:%S %p"), activity.title,
                                 STRAVA_TYPE.get(activity.sport, activity.sport),
                                 round(activity.elapsed_time_s or 0), round((activity.distance_m or 0) / 1000, 2),
                                 STRAVA_VISIBILITY.get(activity.visibility, "only_me"), listed,
                                 row.get("original_file") or ""])
            if progress is not None and (k % PROGRESS_EVERY == 0 or k == len(activities)):
                progress(k, total)
        zf.writestr("activities.json", _json(rows))
        zf.writestr("activities.csv", listing.getvalue())
        zf.writestr("README.txt", __doc__ or "")
    if progress is not None:
        progress(total, total)
    return {"activities": len(activities), "files": files, "sections": len(sections) + 2}


def _zip_time(at) -> tuple:
    """A zip entry's date and time (zip cannot hold a date before 1980)."""
    return max(at.timetuple()[:6], (1980, 1, 1, 0, 0, 0))


def _json(value) -> str:
    return json.dumps(value, indent=1, ensure_ascii=False, default=str)


def _activity(Session: sessionmaker[Session], zf: zipfile.ZipFile, activity: Activity, archive: Archive
              ) -> tuple[dict, str]:
    """Write one activity's files (every point as CSV, the GPX, a TCX when some points have
    no position, the phone's hints); its entry in activities.json and the name of the file
    that holds the whole recording to import again ("" when there is none). A recording that
    cannot be written as GPX or TCX still has its CSV, and the archive its other activities."""
    with Session() as s:
        track = stored_track(s, activity)
        events = [_plain(e, {"activity_id", "id"}) for e in s.scalars(
            select(ActivityEvent).where(ActivityEvent.activity_id == activity.id).order_by(ActivityEvent.id))]
        route = s.get(RouteActivity, activity.id)
        original = original_of(s, activity.user_id, activity.id)
        hints = s.execute(select(FixHint.seq, FixHint.is_moving, FixHint.motion, FixHint.speed_mps, FixHint.bearing,
                                 FixHint.battery).where(FixHint.activity_id == activity.id)
                          .order_by(FixHint.seq)).all()
    entry_original = {}
    if original is not None:
        entry_original = {"original_name": original.name, "original_bytes": original.size}
        try:
            gzipped = read_gzipped(archive, original)
        except OriginalFileError as exc:
            log.warning("activity %s: %s", activity.id, exc)
            entry_original["original_error"] = "the original file could not be read: its points are in the CSV"
        else:
            # Under its own name, a colon (which some systems refuse in a path) and a percent
            # sign percent-encoded (an import here decodes them); already gzipped, so stored
            # as it is.
            entry_original["original_file"] = f"originals/{activity.id}/{path_name(original.name)}.gz"
            zf.writestr(zipfile.ZipInfo(entry_original["original_file"], _zip_time(original.created_at)),
                        gzipped, compress_type=zipfile.ZIP_STORED)
    entry = {**_plain(activity), "events": events, "route_id": route.route_id if route is not None else None,
             **entry_original}
    if len(track):
        points = io.StringIO()
        w = csv.writer(points)
        w.writerow(POINT_HEADER)
        for row in zip(track.t, track.lat, track.lon, track.ele, track.acc, track.hr, track.cad):
            w.writerow(["" if not np.isfinite(v) else f"{v:.10g}" for v in row])
        entry["points_file"] = f"activities/{activity.id}.csv"
        zf.writestr(entry["points_file"], points.getvalue())
    if hints:
        out = io.StringIO()
        w = csv.writer(out)
        w.writerow(["seq", "is_moving", "motion", "speed_mps", "bearing", "battery"])
        w.writerows(["" if v is None else v for v in h] for h in hints)
        entry["phone_hints_file"] = f"activities/{activity.id}.hints.csv"
        zf.writestr(entry["phone_hints_file"], out.getvalue())
    gpx = ""
    if int(np.count_nonzero(np.isfinite(track.lat) & np.isfinite(track.t))) >= 2:
        try:
            document = to_gpx(track, name=activity.title)
        except Exception as exc:  # noqa: BLE001 - one odd recording leaves its GPX out, not the archive
            log.warning("activity %s: no GPX (%s)", activity.id, exc)
            entry["gpx_error"] = f"no GPX could be written ({exc.__class__.__name__}): its points are in the CSV"
        else:
            gpx = f"activities/{activity.id}.gpx"
            zf.writestr(gpx, document)
    entry["file"] = gpx or None
    timed = np.isfinite(track.t)
    listed = gpx
    if int(np.count_nonzero(timed)) >= 2 and (not gpx or (timed & ~np.isfinite(track.lat)).any()):
        # Points without a position (indoor, or before a fix) are not in a GPX: a TCX holds
        # them all, so the listing imports the recording back whole.
        try:
            document = to_tcx(track, name=activity.title)
        except Exception as exc:  # noqa: BLE001 - as the GPX above
            log.warning("activity %s: no TCX (%s)", activity.id, exc)
            entry["tcx_error"] = f"no TCX could be written ({exc.__class__.__name__}): its points are in the CSV"
        else:
            listed = entry["whole_file"] = f"activities/{activity.id}.tcx"
            zf.writestr(listed, document)
    return entry, listed


def _sections(s: Session, user: User) -> dict[str, object]:
    """The JSON files of the archive, but for the activities."""
    uid = user.id
    mine = select(Activity.id).where(Activity.user_id == uid)
    follows = s.execute(select(Friend.user_id, Friend.friend_id, Friend.created_at)
                        .where(or_(Friend.user_id == uid, Friend.friend_id == uid))).all()
    requests = s.execute(select(FollowRequest.user_id, FollowRequest.target_id, FollowRequest.created_at)
                         .where(or_(FollowRequest.user_id == uid, FollowRequest.target_id == uid))).all()
    blocks = s.execute(select(Block.blocked_id, Block.created_at).where(Block.user_id == uid)).all()
    given = s.execute(select(Comment, Activity.user_id).join(Activity, Activity.id == Comment.activity_id)
                      .where(Comment.user_id == uid)).all()
    received = list(s.scalars(select(Comment).where(Comment.activity_id.in_(mine), Comment.user_id != uid)))
    kudos_given = s.execute(select(Kudos, Activity.user_id).join(Activity, Activity.id == Kudos.activity_id)
                            .where(Kudos.user_id == uid)).all()
    # Kudos are shown to the athlete as counts: the archive gives the counts, not the givers.
    kudos_received = s.execute(select(Kudos.activity_id, func.count()).where(
        Kudos.activity_id.in_(mine), Kudos.user_id != uid).group_by(Kudos.activity_id)).all()
    names = _names(s, [r[0] for r in follows] + [r[1] for r in follows] + [r[0] for r in requests]
                   + [r[1] for r in requests] + [r[0] for r in blocks] + [r[1] for r in given]
                   + [c.user_id for c in received] + [r[1] for r in kudos_given])

    def who(other_id: int) -> dict:
        return names.get(other_id, {"username": None, "name": None})

    groups = s.execute(select(GroupChallenge, GroupMember.status).join(
        GroupMember, GroupMember.group_id == GroupChallenge.id).where(GroupMember.user_id == uid)).all()
    created = list(s.scalars(select(GroupChallenge).where(GroupChallenge.creator_id == uid)))
    return {
        "profile.json": {
            "account": _plain(user),
            "privacy_zones": [_plain(z) for z in s.scalars(select(PrivacyZone).where(PrivacyZone.user_id == uid))],
            "route_suggestion_settings": [_plain(d) for d in s.scalars(
                select(DiscoverySettings).where(DiscoverySettings.user_id == uid))],
        },
        "social.json": {
            "following": [{**who(b), "since": at.isoformat()} for a, b, at in follows if a == uid],
            "followers": [{**who(a), "since": at.isoformat()} for a, b, at in follows if b == uid],
            "requests_sent": [{**who(b), "at": at.isoformat()} for a, b, at in requests if a == uid],
            "requests_received": [{**who(a), "at": at.isoformat()} for a, b, at in requests if b == uid],
            "blocked": [{**who(b), "at": at.isoformat()} for b, at in blocks],
            "comments_given": [{**_plain(c, {"user_id"}), "on_athlete": who(owner)["username"]} for c, owner in given],
            "comments_received": [{**_plain(c, {"user_id"}), "from": who(c.user_id)["username"]} for c in received],
            "kudos_given": [{**_plain(k, {"user_id"}), "to": who(owner)["username"]} for k, owner in kudos_given],
            "kudos_received": [{"activity_id": a, "count": n} for a, n in kudos_received],
        },
        "challenges.json": {
            "badges": [_plain(b) for b in s.scalars(select(BadgeAward).where(BadgeAward.user_id == uid))],
            "weekly": [_plain(c) for c in s.scalars(select(Challenge).where(Challenge.user_id == uid))],
            "groups_created": [_plain(g) for g in created],
            "groups_joined": [{**_plain(g, {"creator_id"}), "my_answer": status} for g, status in groups],
        },
        "moderation.json": {
            "flags": [_flag(f) for f in s.scalars(select(ActivityFlag).where(ActivityFlag.user_id == uid))],
            "decisions": [_plain(d) for d in s.scalars(select(ModerationDecision)
                                                       .where(ModerationDecision.activity_id.in_(mine)))],
            "crops_being_scored": [_plain(p) for p in s.scalars(select(PendingCrop).where(PendingCrop.user_id == uid))],
        },
        "engagement.json": {
            "days": [_plain(d) for d in s.scalars(select(EngagementDay).where(EngagementDay.user_id == uid))],
            "drop_off_risk": [_plain(r) for r in s.scalars(select(EngagementRisk)
                                                           .where(EngagementRisk.user_id == uid))],
            "route_ratings": [_plain(r) for r in s.scalars(select(RouteSignal).where(RouteSignal.user_id == uid))],
            "route_suggestions": [_plain(r) for r in s.scalars(select(RouteSuggestion)
                                                               .where(RouteSuggestion.user_id == uid))],
        },
        "devices.json": {
            "devices": [_plain(t) for t in s.scalars(select(DeviceToken).where(DeviceToken.user_id == uid))],
            "web_sessions": [_plain(w) for w in s.scalars(select(WebSession).where(WebSession.user_id == uid))],
            "failed_sign_ins": [a.at.isoformat() for a in s.scalars(
                select(LoginAttempt).where(LoginAttempt.key == f"user:{user.username}"))],
        },
    }


def _flag(flag: ActivityFlag) -> dict:
    """A flag as its athlete is shown it: a copy's original is not named."""
    out = _plain(flag)
    out["reasons"] = [as_athlete_sees(r) for r in flag.reasons or []]
    if flag.crop and flag.crop.get("reasons_before"):
        out["crop"] = {**flag.crop, "reasons_before": [as_athlete_sees(r) for r in flag.crop["reasons_before"]]}
    return out
