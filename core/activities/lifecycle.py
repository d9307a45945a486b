"""The activity lifecycle: creating an activity, the commands that move it from state to
state, and its owner's edits and deletion.

Create (run or ride) -> start -> pause <-> resume -> stop -> complete, or discard from any
open state; a stopped activity may still be resumed. A command that asks for the state the
activity is already in is a no-op that returns it. Completion recomputes the summary from
the stored track (``core.activities.summary``). Points are stored elsewhere: a device's by
``core.activities.ingest``, a file's by ``core.activities.imports``.
"""

from __future__ import annotations

import logging
import math
import time
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.accounts.tables import User
from core.activities import originals
from core.activities.references import forget_activities
from core.activities.summary import Summary, complete_activity
from core.activities.tables import COMMAND_STATUS, SPORTS, VISIBILITIES, Activity, ActivityEvent
from core.text import CLIENT_REF_MAX_CHARS, TITLE_MAX_CHARS, TextRefused, check_identifier, fit

log = logging.getLogger(__name__)

OPEN_STATUSES = ("created", "active", "paused", "stopped")
# command -> {current status: new status}
TRANSITIONS = {
    "start": {"created": "active"},
    "pause": {"active": "paused"},
    "resume": {"paused": "active", "stopped": "active"},
    "stop": {"active": "stopped", "paused": "stopped"},
    "complete": {"stopped": "completed"},
    "discard": {s: "discarded" for s in OPEN_STATUSES},
}
# The status each command leads to, so a repeated command is recognised as a no-op.
TARGET = COMMAND_STATUS


class ActivityError(ValueError):
    """A request about an activity that cannot be honoured; ``code`` is machine-readable."""

    code = "activity_error"

    def __init__(self, message: str, code: str | None = None):
        super().__init__(message)
        if code:
            self.code = code


class InvalidTransition(ActivityError):
    code = "invalid_transition"


class ActivityClosed(ActivityError):
    code = "activity_closed"


class NotFound(ActivityError):
    code = "not_found"


def create_activity(s: Session, user: User, sport: str, title: str | None = None,
                    visibility: str | None = None, source: str = "device",
                    client_ref: str | None = None) -> Activity:
    """Create a new activity (not yet started) for ``user``.

    With ``client_ref`` (the device's own id for it) a repeated create returns the
    activity made the first time, so a device may retry after a lost answer. A title
    longer than the column is cut with an ellipsis; a ``client_ref`` too long is refused.
    """
    if client_ref is not None:
        try:
            check_identifier(client_ref, CLIENT_REF_MAX_CHARS, "client_ref")
        except TextRefused as exc:
            raise ActivityError(str(exc), "invalid_value") from None
        existing = s.scalars(select(Activity).where(Activity.user_id == user.id,
                                                    Activity.client_ref == client_ref)).first()
        if existing is not None:
            return existing
    if sport not in SPORTS:
        raise ActivityError(f"sport must be one of {', '.join(SPORTS)}, not {sport!r}", "invalid_sport")
    visibility = check_visibility(visibility or user.default_visibility)
    activity = Activity(user_id=user.id, sport=sport, status="created", source=source,
                        title=fit(title, TITLE_MAX_CHARS) or default_title(sport), visibility=visibility,
                        client_ref=client_ref)
    s.add(activity)
    s.flush()
    return activity


def default_title(sport: str) -> str:
    """The title of an activity its athlete did not name."""
    return "Run" if sport == "run" else "Ride"


def get_owned_activity(s: Session, activity_id: int, user_id: int, lock: bool = False) -> Activity:
    """The activity if it exists and belongs to ``user_id``; NotFound otherwise."""
    query = select(Activity).where(Activity.id == activity_id)
    if lock:
        query = query.with_for_update(of=Activity)
    activity = s.scalars(query).first()
    if activity is None or activity.user_id != user_id:
        # The same answer for "absent" and "someone else's", so ids cannot be probed.
        raise NotFound(f"no activity {activity_id} for this user")
    return activity


def edit_activity(s: Session, activity: Activity, title: str | None = None,
                  visibility: str | None = None) -> Activity:
    """Change an activity's title (cut to fit with an ellipsis) or who may see it (the
    caller checked ownership)."""
    if title is not None:
        title = fit(title, TITLE_MAX_CHARS)
        if not title:
            raise ActivityError("a title cannot be empty", "invalid_value")
        activity.title = title
    if visibility is not None:
        activity.visibility = check_visibility(visibility)
    s.flush()
    return activity


def delete_activity(s: Session, activity: Activity) -> None:
    """Delete an activity; its points, events, comments and kudos go with it through the foreign
    keys' ON DELETE CASCADE (the caller checked ownership); badges, challenges and routes
    that name it forget it; the file it was imported from is deleted after the commit."""
    forget_activities(s, activity.user_id, [activity.id])
    # The file it was imported from goes once the deletion is committed.
    originals.forget_after_commit(s, activity.user_id, [activity.id])
    s.delete(activity)
    s.flush()


def change_status(s: Session, activity: Activity, command: str, at: float | None = None,
                  summary: Summary | None = None) -> Activity:
    """Apply a lifecycle command; a repeated command is a no-op. ``summary``: for "complete",
    the activity's summary as worked out before the transaction from the points and pauses it
    still has (else it is worked out here)."""
    if command not in TRANSITIONS:
        raise InvalidTransition(f"unknown command {command!r}; expected one of {', '.join(TRANSITIONS)}",
                                "unknown_command")
    if activity.status == TARGET[command]:
        return activity
    new_status = TRANSITIONS[command].get(activity.status)
    if new_status is None:
        raise InvalidTransition(f"cannot {command} an activity that is {activity.status}")
    at = time.time() if at is None else float(at)
    if not math.isfinite(at):
        raise ActivityError("event time must be a finite number of seconds", "invalid_time")
    if command == "complete":
        complete_activity(s, activity, at, summary)
    activity.status = new_status
    if command == "start" and activity.start_time is None:
        activity.start_time = datetime.fromtimestamp(at, tz=UTC)
    s.add(ActivityEvent(activity_id=activity.id, user_id=activity.user_id, command=command, status=new_status, at=at))
    s.flush()
    return activity


def check_visibility(visibility: str) -> str:
    """``visibility`` if it is one of VISIBILITIES; ActivityError otherwise."""
    if visibility not in VISIBILITIES:
        raise ActivityError(f"visibility must be one of {', '.join(VISIBILITIES)}", "invalid_visibility")
    return visibility
