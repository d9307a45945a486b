"""Where a flagged activity stands, and what may move it: the flag's states and their allowed
transitions, written once as a table (as ``core.activities.lifecycle`` does for an activity).

Three parties move a flag. Scoring sets ``clear``, ``flagged`` or ``sampled``, but never
overturns a moderator: it applies only to an activity with no verdict yet, or one that is
clear, flagged or sampled. ``sampled`` is an activity scored clear, just below the threshold,
that scoring drew at random for the moderators (``core.anomaly.scoring.SAMPLE_RATE``): it is
not held and its athlete is told nothing, but it waits in the queue so that decisions can
show the threshold too high as well as too low. A moderator decides on what waits in the queue
(``flagged``, ``crop_requested``, ``cropped``, ``sampled``): dismiss, confirm, or ask the
athlete to crop; confirming a sample holds the activity as any confirmed flag (the athlete
then sees the confirmation), dismissing it leaves it as it was, found fine. A sample cannot
be sent for a crop: the request would hold it and tell the athlete, revealing a review they
are not to know of; the moderator confirms or dismisses it. The athlete's
crop changes the track: an activity nobody has ruled against (no verdict, clear, flagged,
sampled, dismissed) is scored again and takes the new score's status; one a moderator
confirmed or asked to crop goes back to the moderators as ``cropped``, still held, and only a
moderator releases it."""

from __future__ import annotations

from core.anomaly.tables import FLAG_STATUSES, MODERATION_ACTIONS

SCORE_CLEAR = "score_clear"
SCORE_FLAGGED = "score_flagged"
SCORE_SAMPLED = "score_sampled"  # scored clear, and drawn for the moderators' random sample
DISMISS, CONFIRM, REQUEST_CROP = MODERATION_ACTIONS
CROP = "crop"
EVENTS = (SCORE_CLEAR, SCORE_FLAGGED, SCORE_SAMPLED, DISMISS, CONFIRM, REQUEST_CROP, CROP)

# Not a status: the crop's new score decides (clear, flagged or sampled).
RESCORED = "rescored"
# event -> {current status (None: no verdict yet): new status}
TRANSITIONS: dict[str, dict[str | None, str]] = {
    SCORE_CLEAR: {None: "clear", "clear": "clear", "flagged": "clear", "sampled": "clear"},
    SCORE_FLAGGED: {None: "flagged", "clear": "flagged", "flagged": "flagged", "sampled": "flagged"},
    SCORE_SAMPLED: {None: "sampled", "clear": "sampled", "flagged": "sampled", "sampled": "sampled"},
    DISMISS: {"flagged": "dismissed", "crop_requested": "dismissed", "cropped": "dismissed",
              "sampled": "dismissed"},
    CONFIRM: {"flagged": "confirmed", "crop_requested": "confirmed", "cropped": "confirmed",
              "sampled": "confirmed"},
    # Not from "sampled": a crop request is held and shown to the athlete.
    REQUEST_CROP: {"flagged": "crop_requested", "crop_requested": "crop_requested", "cropped": "crop_requested"},
    CROP: {None: RESCORED, "clear": RESCORED, "flagged": RESCORED, "sampled": RESCORED, "dismissed": RESCORED,
           "confirmed": "cropped", "crop_requested": "cropped", "cropped": "cropped"},
}
# Statuses whose activities are kept out of leaderboards.
HELD = frozenset({"flagged", "confirmed", "crop_requested", "cropped"})
# Statuses a moderator may decide on: the review queue (random samples last: they score lowest).
AWAITING_MODERATOR = tuple(s for s in FLAG_STATUSES if s in TRANSITIONS[DISMISS])
# Statuses of activities found fine: scored clear (drawn for the sample or not), or dismissed
# by a moderator. Their features are the athlete's history and the model's training rows from
# the database.
FOUND_FINE = ("clear", "dismissed", "sampled")
# Statuses in which the athlete is invited to crop: the detector flagged the activity, or a
# moderator asked for a crop.
CROP_INVITED = ("flagged", "crop_requested")

_STANDING = {
    None: "has no verdict yet",
    "clear": "is not flagged",
    "flagged": "is flagged and waits for a moderator",
    "dismissed": "was cleared by a moderator",
    "confirmed": "was confirmed as irregular by a moderator",
    "crop_requested": "waits for the athlete's crop, as a moderator asked",
    "cropped": "was cropped after a moderator's decision and waits for a moderator",
    "sampled": "was scored clear and drawn as a random sample for a moderator",
}
_WHY_NOT = {
    SCORE_CLEAR: "a new score does not overturn a moderator's decision",
    SCORE_FLAGGED: "a new score does not overturn a moderator's decision",
    SCORE_SAMPLED: "a new score does not overturn a moderator's decision",
    DISMISS: "only a flag waiting for review can be dismissed",
    CONFIRM: "only a flag waiting for review can be confirmed",
    REQUEST_CROP: "only a flag waiting for review, not a random sample, can lead to a crop request",
    CROP: "it cannot be cropped",
}


class ModerationError(ValueError):
    """A moderation or crop request that cannot be honoured."""


def score_event(flagged: bool, sampled: bool = False) -> str:
    """The event a score result is: flagged, or clear (drawn for the sample or not)."""
    return SCORE_FLAGGED if flagged else SCORE_SAMPLED if sampled else SCORE_CLEAR


def apply_event(status: str | None, event: str, flagged: bool | None = None, sampled: bool = False) -> str:
    """The status ``event`` leads to from ``status``; ModerationError when it may not.

    ``flagged`` is the new score's result, needed when a crop has the activity scored again;
    ``sampled`` whether a clear new score is drawn for the sample.
    """
    if event not in TRANSITIONS:
        raise ModerationError(f"unknown event {event!r}; expected one of {', '.join(EVENTS)}")
    if status is not None and status not in FLAG_STATUSES:
        raise ModerationError(f"unknown flag status {status!r}")
    new = TRANSITIONS[event].get(status)
    if new is None:
        raise ModerationError(f"this activity {_STANDING[status]}: {_WHY_NOT[event]}")
    if new == RESCORED:
        if flagged is None:
            raise ModerationError("a crop of this activity needs its new score")
        return TRANSITIONS[score_event(flagged, sampled)][None]
    return new


def is_held(status: str | None) -> bool:
    """Whether an activity with this flag status is kept out of leaderboards."""
    return status in HELD
