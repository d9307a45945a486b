"""``python -m core jobs run NAME...``: run one of the worker's jobs once, now, to completion
where it works in batches, printing one JSON line per job. The worker's own schedule stays
in ``core.jobs.worker``."""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback

from core.cli.admin import open_sessions
from core.config import load_settings

# The jobs, in the order the worker runs them (scoring first, so a held activity forms no route).
JOBS = ("scoring", "shown", "routes", "engagement", "challenges", "badges", "recommendations", "leaderboards",
        "housekeeping")
# Names that stand for several jobs: suggestions are trained on routes brought up to date first.
ALIASES = {"all": JOBS, "recommendations": ("routes", "recommendations")}


def _add(total: dict, more: dict) -> None:
    """Add ``more`` into ``total``: numbers summed, dicts merged the same way, anything else replaced."""
    for key, value in more.items():
        if isinstance(value, dict):
            _add(total.setdefault(key, {}), value)
        elif isinstance(value, int | float) and not isinstance(value, bool) \
                and isinstance(total.get(key), int | float):
            total[key] += value
        else:
            total[key] = value


def run_scoring(Session, settings) -> dict:
    """The saved model (trained if there is none or it is refused), every activity completed
    since scored a batch at a time until a batch comes back short, then the threshold
    recalibrated from moderators' decisions."""
    from core.jobs.scoring import SCORE_BATCH, ModelKeeper, calibrate, score

    done: dict = {}
    model = ModelKeeper(settings, Session).current(time.monotonic(), done)
    batches = scored = 0
    while True:
        n = score(Session, settings, model, {})
        batches += 1
        scored += n
        if n < SCORE_BATCH:
            break
    done["scored"] = scored
    calibrate(Session, settings, done)
    return {"done": done, "batches": batches}


def run_shown(Session, _settings) -> dict:
    """Work out the distance others are shown of every activity waiting for it, a round at
    a time until none is left (or only ones that failed)."""
    from core.jobs.shown import settle_shown_distances

    done: dict = {}
    batches = 0
    while True:
        result = settle_shown_distances(Session).get("shown")
        if not result:
            break
        batches += 1
        _add(done, {k: v for k, v in result.items() if k not in ("seconds", "behind")})
        if not (result["own"] or result["cut"] or result["changed_meanwhile"]):
            break  # only failures left: they are tried again by the worker's next rounds
    return {"done": done, "batches": batches}


def run_routes(Session, _settings) -> dict:
    """Match the pending activities against the routes, a batch at a time until none is left."""
    from core.jobs.routes import match_routes

    done: dict = {}
    batches = 0
    while True:
        result = match_routes(Session, audit=batches == 0).get("routes")
        if not result:
            break
        batches += 1
        _add(done, {k: v for k, v in result.items() if k != "seconds"})
    return {"done": done, "batches": batches}


def run_engagement(Session, settings) -> dict:
    """Retrain the drop-off model on the database's history (when it has enough), and score
    every athlete active in the last eight weeks."""
    from core.jobs.engagement import score_engagement

    done = score_engagement(Session, settings)["engagement"]
    done.pop("seconds", None)
    return {"done": done}


def run_challenges(Session, settings) -> dict:
    """Assign this week's challenges to every athlete due for them, mark those of weeks that
    are over as missed, and let the adaptive policy learn from the weeks it can."""
    from core.challenges.adaptive import learn
    from core.challenges.assign import end_weeks
    from core.challenges.churn_store import current_model
    from core.jobs.badges import assign_challenges

    done: dict = {}
    batches = 0
    while True:
        result = assign_challenges(Session, policy=settings.challenge_policy,
                                   risk_model=current_model(settings)).get("challenges")
        if not result or not result["athletes"]:
            break
        batches += 1
        _add(done, {k: v for k, v in result.items() if k != "seconds"})
    done["missed"] = end_weeks(Session)
    while learnt := learn(Session):
        _add(done, {"learned": learnt["learned"]})
    return {"done": done, "batches": batches}


def run_badges(Session, _settings) -> dict:
    """Recount the badges of every athlete due for it, a batch at a time until none is left
    (activities are counted once scored and matched: run scoring and routes first)."""
    from core.jobs.badges import award_badges

    done: dict = {}
    batches = 0
    while True:
        result = award_badges(Session).get("badges")
        if not result or not result["athletes"]:
            break
        batches += 1
        _add(done, {k: v for k, v in result.items() if k != "seconds"})
    return {"done": done, "batches": batches}


def run_leaderboards(Session, settings) -> dict:
    """Rebuild the Redis boards (nothing to do without Redis)."""
    from core.jobs.leaderboards import run_once
    from core.social.leaderboards import connect_redis

    redis = connect_redis(settings.redis_url)
    out = {"done": run_once(Session, redis).get("leaderboards", {})}
    if redis is None:
        out["note"] = "no TRACKER_REDIS_URL: the boards are read from the database, nothing to rebuild"
    return out


def run_housekeeping(Session, _settings) -> dict:
    """Close abandoned activities a batch at a time until a batch comes back short; purge
    expired web sessions and old failed sign-ins."""
    from core.activities.open import CLOSE_BATCH
    from core.jobs.housekeeping import housekeeping

    done: dict = {}
    batches = 0
    while True:
        result = housekeeping(Session)
        batches += 1
        _add(done, result)
        if sum(result.get("abandoned", {}).values()) < CLOSE_BATCH:
            break
    return {"done": done, "batches": batches}


def run_recommendations(Session, settings) -> dict:
    """Retrain the route suggestions and precompute each active athlete's list."""
    from core.jobs.recommendations import train_recommendations

    done = train_recommendations(Session, settings)["recommendations"]
    done.pop("seconds", None)
    return {"done": done}


RUNNERS = {"scoring": run_scoring, "shown": run_shown, "routes": run_routes, "engagement": run_engagement, "challenges": run_challenges,
           "badges": run_badges, "recommendations": run_recommendations, "leaderboards": run_leaderboards,
           "housekeeping": run_housekeeping}


def job_names(names: list[str]) -> list[str]:
    """The jobs the names stand for, aliases expanded, each once, in the worker's order."""
    wanted = set()
    for name in names:
        wanted.update(ALIASES.get(name, (name,)))
    return [job for job in JOBS if job in wanted]


def cmd_jobs_run(args) -> int:
    """Run the named jobs once now; one JSON line per job; exit 1 if any failed."""
    from core.storage.engine import WRITE_LOCKS

    settings = load_settings()
    Session = open_sessions()
    # After the migration, whose own messages are of no interest here; what the jobs say goes to stderr.
    logging.basicConfig(level=logging.INFO, stream=sys.stderr,
                        format="%(asctime)s %(name)s %(levelname)s %(message)s")
    failed = 0
    for job in job_names(args.names):
        began = time.monotonic()
        WRITE_LOCKS.snapshot(reset=True)
        try:
            line = {"job": job, **RUNNERS[job](Session, settings)}
        except Exception as exc:  # noqa: BLE001 - the job's failure is its line; the other jobs still run
            traceback.print_exc(file=sys.stderr)
            line = {"job": job, "error": f"{exc.__class__.__name__}: {exc}"}
            failed += 1
        line["seconds"] = round(time.monotonic() - began, 3)
        locks = WRITE_LOCKS.snapshot(reset=True)
        if locks:
            line["write_locks"] = locks
        print(json.dumps(line, default=str), flush=True)
    return 1 if failed else 0


def add_commands(sub) -> None:
    p = sub.add_parser("jobs", help="run the worker's jobs by hand")
    jobs = p.add_subparsers(dest="jobs_command", required=True)
    r = jobs.add_parser(
        "run", help="run jobs once now, to completion (one JSON line per job)",
        description="Run each named job once now, to completion where it works in batches, and print one "
                    "JSON line per job with what it did. scoring: the anomaly model (trained if there is "
                    "none), every activity completed since scored, the threshold recalibrated; routes: "
                    "pending activities matched against routes; engagement: the drop-off model retrained on "
                    "the database (when it has enough history) and every recently active athlete's risk scored; "
                    "challenges: this week's challenges assigned to the athletes due for them; badges: the badges and challenge progress of athletes whose scored and "
                    "matched activities changed recounted; leaderboards: the Redis boards rebuilt; "
                    "housekeeping: abandoned activities closed, expired sessions purged; recommendations: "
                    "routes, then the suggestion model retrained and each athlete's list precomputed; "
                    "all: every job.")
    names = tuple(dict.fromkeys((*JOBS, *ALIASES)))
    r.add_argument("names", nargs="+", metavar="NAME", choices=names, help=f"one of {', '.join(names)}")
    r.set_defaults(func=cmd_jobs_run)
