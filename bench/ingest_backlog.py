"""Live ingest while the worker scores a backlog, against the same load without it.

Builds a database with a 2,000-activity scoring backlog (``core.synthetic.demo.build_backlog``) and a
trained anomaly model, starts the ingest server, and drives it with ``--connections``
devices each sending one fix per ``--every`` seconds. Rounds alternate: without the worker,
then with ``python -m core worker`` scoring the backlog (the worker is started for each
such round and stopped after it, so the backlog lasts). Fifty open activities silent for
three days give its housekeeping something to close. Prints ack latency p50/p99 with and
without the backlog, errors, and the worker's longest write transaction per job.

    python bench/ingest_backlog.py [--connections 200] [--seconds 20] [--rounds 2] [--postgres SERVER_URL]

With ``--postgres`` (a server URL, e.g. TRACKER_BENCH_POSTGRES_URL) it runs on a database
it creates there and drops afterwards; by default on a fresh SQLite file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from _common import ROOT
from _ingest import drive, make_devices, port_is_ingest, start_ingest
from sqlalchemy import func, select, text
from sqlalchemy.engine import make_url

from core.accounts.users import create_user
from core.activities.ingest import point_rows
from core.activities.lifecycle import change_status, create_activity
from core.anomaly.tables import ActivityFlag
from core.storage.engine import make_engine, make_sessionmaker
from core.storage.points import insert_points
from core.storage.schema import migrate
from core.synthetic.demo import build_backlog

RIDING = {"point_every_s": 3.0, "speed_mps": 7.5}


def add_abandoned(Session, count: int = 50) -> None:
    """Open activities silent for three days, for the worker's housekeeping to close."""
    old = time.time() - 3 * 86400
    with Session() as s, s.begin():
        user = create_user(s, f"abandoned_{uuid.uuid4().hex[:8]}")
        for _ in range(count):
            activity = create_activity(s, user, "run")
            activity.created_at = datetime.fromtimestamp(old, tz=UTC)
            change_status(s, activity, "start", at=old)
            insert_points(s, point_rows(activity.id, [{"seq": i, "t": old + 5 * i, "lat": 46.05 + i * 1e-4,
                                                       "lon": 14.5} for i in range(200)]))


def scored(Session) -> int:
    with Session() as s:
        return s.scalar(select(func.count()).select_from(ActivityFlag))


def start_worker(env: dict, log: Path, nice: int = 0) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "core", "worker"], cwd=ROOT, env=env,
                            stdout=log.open("a"), stderr=subprocess.STDOUT,
                            preexec_fn=(lambda: os.nice(nice)) if nice else None)


def stop(proc: subprocess.Popen) -> None:
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()


def write_locks(log: Path) -> dict[str, dict]:
    """The worst figures per job over every round the worker logged (p99: the worst round's)."""
    worst: dict[str, dict] = {}
    for line in log.read_text().splitlines():
        if "jobs done: " not in line:
            continue
        for job, row in json.loads(line.split("jobs done: ", 1)[1]).get("write_locks", {}).items():
            w = worst.setdefault(job, {"count": 0, "p99_ms": 0.0, "max_ms": 0.0, "max_wait_ms": 0.0})
            w["count"] += row["count"]
            w["p99_ms"] = max(w["p99_ms"], row.get("p99_ms", 0.0))
            w["max_ms"] = max(w["max_ms"], row["max_ms"])
            w["max_wait_ms"] = max(w["max_wait_ms"], row.get("max_wait_ms", 0.0))
    return worst


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return 1000 * ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


@contextmanager
def database(work: Path, postgres: str | None):
    """A fresh SQLite file, or a database created on the PostgreSQL server and dropped after."""
    if not postgres:
        yield f"sqlite:///{work / 'backlog.db'}"
        return
    admin = make_engine(postgres, isolation_level="AUTOCOMMIT")
    name = f"tracker_backlogbench_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(postgres).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--connections", type=int, default=200)
    parser.add_argument("--every", type=float, default=1.0, help="seconds between one device's messages")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=2, help="pairs of rounds (without, with the worker)")
    parser.add_argument("--backlog", type=int, default=2000)
    parser.add_argument("--nice", type=int, default=0, help="start the worker with this niceness")
    parser.add_argument("--postgres", help="a PostgreSQL server URL (default: a fresh SQLite file)")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-backlog-"))
    try:
        with database(work, args.postgres) as url:
            run(args, url, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run(args, url: str, work: Path) -> None:
    engine = make_engine(url)
    migrate(engine)
    Session = make_sessionmaker(engine)
    print(f"building a backlog of {args.backlog} activities and training the model ...", flush=True)
    with Session() as s, s.begin():
        build_backlog(s, args.backlog)
    add_abandoned(Session)
    env = dict(os.environ, TRACKER_DATABASE_URL=url, TRACKER_DATA_DIR=str(work / "data"), PYTHONPATH=str(ROOT))
    env.pop("TRACKER_REDIS_URL", None)
    train_env = dict(env, TRACKER_DATABASE_URL=f"sqlite:///{work / 'train.db'}")
    subprocess.run([sys.executable, "-m", "core", "anomaly", "train"], cwd=ROOT, env=train_env, check=True,
                   capture_output=True)
    devices = make_devices(url, args.connections)
    ingest, port = start_ingest(url)
    port_is_ingest[port] = True
    log = work / "worker.log"
    quiet, busy, errors = [], [], {"without": 0, "with": 0}
    during = 0
    try:
        for _ in range(args.rounds):
            result = asyncio.run(drive(port, devices, args.seconds, interval_s=args.every, **RIDING))
            quiet.extend(result.latencies)
            errors["without"] += result.errors
            worker = start_worker(env, log, args.nice)
            try:
                deadline = time.time() + 300
                before = scored(Session)
                while scored(Session) == before and time.time() < deadline:
                    time.sleep(0.2)
                before = scored(Session)
                result = asyncio.run(drive(port, devices, args.seconds, interval_s=args.every, **RIDING))
                during += scored(Session) - before
            finally:
                stop(worker)
            busy.extend(result.latencies)
            errors["with"] += result.errors
    finally:
        stop(ingest)
        engine.dispose()
    db = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    rate = args.connections / args.every
    print(f"database: {db}; {args.connections} devices, one fix per {args.every:g} s each (~{rate:,.0f} msg/s); "
          f"{args.rounds} x {args.seconds:.0f} s without and with the worker scoring a {args.backlog}-activity backlog")
    print(f"without the backlog: ack p50 {pct(quiet, 0.5):.2f} ms, p99 {pct(quiet, 0.99):.2f} ms, "
          f"max {pct(quiet, 1.0):.1f} ms ({len(quiet)} acks, {errors['without']} errors)")
    print(f"while scoring:       ack p50 {pct(busy, 0.5):.2f} ms, p99 {pct(busy, 0.99):.2f} ms, "
          f"max {pct(busy, 1.0):.1f} ms ({len(busy)} acks, {errors['with']} errors; "
          f"{during} activities scored meanwhile)")
    for job, row in sorted(write_locks(log).items()):
        print(f"worker write transactions, {job}: {row['count']}, p99 {row['p99_ms']:.1f} ms, "
              f"longest {row['max_ms']:.1f} ms "
              f"(longest wait for the lock {row['max_wait_ms']:.1f} ms)")


if __name__ == "__main__":
    main()
