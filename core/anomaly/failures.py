"""Activities the detector failed to score, kept apart so that one cannot hold up the others.

Scoring takes the completed activities without a verdict oldest first. An activity whose
scoring raises (a track no code path expected, an archived file gone) would come first again
at every round, and stop the scoring of everyone after it; on the stream, its entry would be
claimed again every minute for ever. Instead its failure is written down
(``scoring_failures``) and it waits: ``RETRY_AFTER_S`` after its first failures, then, after
``MAX_ATTEMPTS``, no more, provided other activities were scored since its first failure
(else it keeps waiting at the last step: nothing shows the fault is its own). What is given up on shows on the moderators' page, with the error,
since an activity nobody scored has escaped the detector; a moderator can have it tried
again (after a fix is deployed). A verdict written by any path (a later attempt, the
athlete's crop) removes the failure.

Only errors of the activity count: a database or Redis error is the service's, not the
activity's, and is raised for the round to fail and be tried again as before. Nor is a
round in which every activity tried failed (``Round``), whatever the error: nothing is
written down, and the activities are tried again at the next round.
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import ColumnElement, delete, func, or_, select
from sqlalchemy.exc import (
    DisconnectionError,
    InterfaceError,
    InternalError,
    OperationalError,
    ProgrammingError,
)
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.orm import Session, aliased, sessionmaker

from core.accounts.tables import User
from core.activities.tables import Activity
from core.anomaly.tables import ActivityFlag, PendingCrop, ScoringFailure
from core.storage.base import utcnow
from core.storage.engine import write_transaction

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
# Seconds to wait after the first, second, third and fourth failure; the fifth gives up.
RETRY_AFTER_S = (60, 600, 3600, 6 * 3600)
ERROR_CHARS = 300


def service_error(exc: BaseException) -> bool:
    """Whether ``exc`` is the service's rather than the activity's: the database unreachable,
    busy, deadlocked or out of step with the code (operational, interface, internal and
    programming errors, a pool timeout), or Redis. The database refusing a value (DataError,
    IntegrityError) or a value it could not even be sent (a StatementError wrapping a Python
    error) comes from the activity's data."""
    if isinstance(exc, (OperationalError, InterfaceError, InternalError, ProgrammingError, DisconnectionError,
                        PoolTimeout)):
        return True
    try:
        from redis.exceptions import RedisError
    except ImportError:  # pragma: no cover - redis is in requirements.txt
        return False
    return isinstance(exc, RedisError)


def due(now: datetime | None = None) -> ColumnElement[bool]:
    """The condition, on a query outer-joined to ``ScoringFailure`` by activity id, for an
    activity to be scored now: it never failed, or its next attempt is due."""
    return or_(ScoringFailure.activity_id.is_(None), ScoringFailure.retry_at <= (now or utcnow()))


def describe(exc: BaseException) -> str:
    """The error in a line a text column takes: no NUL (PostgreSQL refuses it), no lone
    surrogate (no encoding takes it), cut to ``ERROR_CHARS``."""
    text = f"{type(exc).__name__}: {exc}".strip().rstrip(":")
    text = text.replace("\x00", "\\x00").encode("utf-8", "backslashreplace").decode("utf-8")
    return text if len(text) <= ERROR_CHARS else text[:ERROR_CHARS - 1] + "…"


def record(Session: sessionmaker[Session], activity_id: int, exc: BaseException,
           now: datetime | None = None, tried_at: datetime | None = None) -> ScoringFailure | None:
    """Write down a failure to score ``activity_id``, and when to try again (None: given up).
    Nothing when the activity is gone or got a verdict meanwhile. Under the activity's row
    lock, as verdicts are written, so that two scorers, or a scorer and the athlete's crop,
    take turns. ``tried_at``: when the round that failed began (its first failure's time,
    so that others scored in that same round count as scored since)."""
    now = now or utcnow()
    with write_transaction(Session, "scoring_failure") as s:
        activity = s.scalars(select(Activity).where(Activity.id == activity_id).with_for_update(of=Activity)).first()
        crops = s.scalars(select(PendingCrop).where(PendingCrop.activity_id == activity_id)).first()
        if activity is None or (s.get(ActivityFlag, activity_id) is not None and crops is None):
            return None  # scored meanwhile (a crop waiting for its new score is not)
        if crops is not None and crops.cropped_at > (tried_at or now):
            return None  # cropped again since the round began: the new track is tried afresh
        failure = s.get(ScoringFailure, activity_id)
        if failure is None:
            failure = ScoringFailure(activity_id=activity_id, user_id=activity.user_id, attempts=0,
                                     first_failed_at=tried_at or now)
            s.add(failure)
        failure.attempts += 1
        failure.error = describe(exc)
        failure.failed_at = now
        if failure.attempts >= MAX_ATTEMPTS and not scored_since(s, failure.first_failed_at, activity_id):
            # Nothing else scored since its first failure either (a quiet night and an outage):
            # no sign the fault is its own, so it waits at the last step again.
            failure.attempts = MAX_ATTEMPTS - 1
        wait = RETRY_AFTER_S[failure.attempts - 1] if failure.attempts < MAX_ATTEMPTS else None
        failure.retry_at = None if wait is None else now + timedelta(seconds=wait)
        s.flush()
        s.expunge(failure)
    if failure.retry_at is None:
        log.error("gave up scoring activity %s after %s attempts: %s", activity_id, failure.attempts, failure.error)
    else:
        log.warning("scoring activity %s failed (attempt %s, next at %s): %s", activity_id, failure.attempts,
                    failure.retry_at.isoformat(timespec="seconds"), failure.error)
    return failure


def scored_since(s: Session, since: datetime, activity_id: int) -> bool:
    """Whether any other activity got a verdict after ``since``."""
    return s.scalar(select(ActivityFlag.activity_id).where(ActivityFlag.scored_at > since,
                                                         ActivityFlag.activity_id != activity_id).limit(1)) is not None


class Round:
    """The failures of one round of scoring, written down only if the round shows them to be
    the activities' own: at least one activity scored (a verdict written, not an activity
    found done already), or fewer than ``SYSTEMIC`` failed.
    When ``SYSTEMIC`` or more failed and none scored, the cause is shared (a bad deploy, a
    model that does not load, an archive out of reach): nothing is written down, so that no
    activity is given up on for it, and ``systemic`` says so."""

    SYSTEMIC = 3

    def __init__(self, record_failure=None):
        """``record_failure(Session, activity_id, exc, tried_at=...)`` writes one down
        (``record`` by default: scoring's)."""
        self.record_failure = record_failure or record
        self.began = utcnow()
        self.scored = 0
        self.failed: list[tuple[int, BaseException]] = []

    def attempt(self, activity_id: int, handle) -> int:
        """``handle(activity_id)``, which returns how many rows it wrote (a verdict written
        counts the activity as scored). An error of the activity's own is logged and kept
        for ``settle`` (0 returned); the service's is raised."""
        try:
            wrote = handle(activity_id)
        except Exception as exc:  # noqa: BLE001 - the activity's own error waits; the service's is raised
            if service_error(exc):
                raise
            log.exception("activity %s failed", activity_id)
            self.failed.append((activity_id, exc))
            return 0
        if wrote:
            self.scored += 1
        return wrote

    @property
    def systemic(self) -> bool:
        return not self.scored and len(self.failed) >= self.SYSTEMIC

    def settle(self, Session: sessionmaker[Session]) -> list[int]:
        """Write the failures down unless ``systemic``; the ids written down. An error in
        writing one down (other than the service's) is logged, and the others go on."""
        if self.systemic:
            kinds = sorted({type(exc).__name__ for _, exc in self.failed})
            log.error("scoring failed on all %s activities it tried (%s): taken for a fault of the service, "
                      "no activity is charged with it", len(self.failed), ", ".join(kinds))
            return []
        written = []
        for activity_id, exc in self.failed:
            try:
                self.record_failure(Session, activity_id, exc, tried_at=self.began)
            except Exception as error:  # noqa: BLE001 - a failure to write a failure down holds nobody up
                if service_error(error):
                    raise
                log.exception("could not write down the failure of activity %s", activity_id)
                continue
            written.append(activity_id)
        return written


class Pause:
    """A scorer's wait after rounds that failed as a whole (``Round.systemic``): the service
    is at fault, so the next round would fail the same way. It waits ``PAUSE_FIRST_S`` from
    the round's end, twice as long after each such round in a row (at most ``PAUSE_MAX_S``),
    and not at all once a round scores something. An activity that was not in the failed
    round (one completed since) ends the wait at once: it may score, which shows the others'
    faults to be their own. Kept in memory by the process that loops (the worker): a restart
    tries at once."""

    def __init__(self):
        self.rounds = 0  # systemic rounds in a row
        self.until = 0.0  # monotonic time before which no round is run
        self.failed: set[int] = set()  # the activities of the last round that failed as a whole

    def waiting(self, now: float, pending: list[int] | None = None) -> bool:
        """Whether to put the round off: the wait is not over, and nothing is ``pending``
        beyond the activities that failed."""
        return now < self.until and (pending is None or set(pending) <= self.failed)

    def after(self, tried: Round, now: float) -> None:
        """Take a round's outcome into account (``now``: when it ended)."""
        if tried.systemic:
            self.rounds += 1
            wait = min(PAUSE_FIRST_S * 2 ** (self.rounds - 1), PAUSE_MAX_S)
            self.until = now + wait
            self.failed = {activity_id for activity_id, _ in tried.failed}
            log.error("scoring paused for %.0f s after %s failed round(s) in a row", wait, self.rounds)
        elif tried.scored:
            if self.rounds:
                log.info("scoring works again after %s failed round(s)", self.rounds)
            self.rounds, self.until, self.failed = 0, 0.0, set()


PAUSE_FIRST_S = 60.0
PAUSE_MAX_S = 900.0


def clear(s: Session, activity_id: int) -> None:
    """Forget the activity's failures (it has a verdict now), in the caller's transaction."""
    s.execute(delete(ScoringFailure).where(ScoringFailure.activity_id == activity_id))


def given_up(s: Session, limit: int = 50) -> list[tuple[ScoringFailure, Activity, User, User | None]]:
    """The activities scoring gave up on and that still have no verdict (or crops waiting for
    their new one), latest failure
    first, with their athletes and the moderator who last had them tried again (if any)."""
    retried_by = aliased(User)
    return list(s.execute(
        select(ScoringFailure, Activity, User, retried_by).join(Activity, Activity.id == ScoringFailure.activity_id)
        .join(User, User.id == Activity.user_id)
        .outerjoin(retried_by, retried_by.id == ScoringFailure.retried_by)
        .outerjoin(ActivityFlag, ActivityFlag.activity_id == ScoringFailure.activity_id)
        .where(ScoringFailure.retry_at.is_(None), _unscored())
        .order_by(ScoringFailure.failed_at.desc(), ScoringFailure.activity_id).limit(limit)))


def given_up_on(s: Session, activity_id: int) -> bool:
    """Whether scoring gave up on the activity (a moderator decides without its score)."""
    failure = s.get(ScoringFailure, activity_id)
    return failure is not None and failure.retry_at is None


def count_given_up(s: Session) -> int:
    """How many activities ``given_up`` lists, without the limit."""
    return s.scalar(select(func.count()).select_from(ScoringFailure)
                    .outerjoin(ActivityFlag, ActivityFlag.activity_id == ScoringFailure.activity_id)
                    .where(ScoringFailure.retry_at.is_(None), _unscored())) or 0


def _unscored() -> ColumnElement[bool]:
    """On a query of failures outer-joined to ``ActivityFlag``: the activity has no verdict,
    or crops waiting for their new one (``PendingCrop``)."""
    return or_(ActivityFlag.activity_id.is_(None),
               select(PendingCrop.activity_id).where(PendingCrop.activity_id == ScoringFailure.activity_id).exists())


def try_again(s: Session, activity_id: int, moderator: User | None = None, now: datetime | None = None) -> bool:
    """Have a given-up activity scored at the next round, once more before it is given up
    again (``moderator``'s request, kept with the failure, in the caller's transaction);
    False if it is not given up."""
    failure = s.get(ScoringFailure, activity_id)
    if failure is None or failure.retry_at is not None:
        return False
    now = now or utcnow()
    failure.attempts = MAX_ATTEMPTS - 1
    failure.retry_at = now
    if moderator is not None:
        failure.retried_by, failure.retried_at = moderator.id, now
        log.info("moderator %s had activity %s scored again", moderator.username, activity_id)
    return True
