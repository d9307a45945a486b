"""Phone apps over HTTP: OsmAnd-protocol fixes per second through the HTTP ingest service
against a bare Starlette endpoint that answers 200 without storing.

Both servers run in a subprocess of their own under the same uvicorn configuration as
``python -m realtime.http`` (the service is that very command, on a fresh SQLite file). The
same load generator drives both in the same run: many simulated phones, each with its own
device token and keep-alive connection, each sending its fixes one request at a time and
waiting for the answer, as Traccar Client does. The generator writes raw HTTP/1.1 requests
on asyncio streams so that it costs far less than either server. Prints both rates and the
ratio (the target is 0.5 or more), and the answer latency of each.

    python bench/http_ingest.py [--phones 100] [--seconds 10] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import ROOT
from _ingest import cpu_seconds, free_port, raise_fd_limit, wait_healthy
from sqlalchemy.orm import Session

from core.accounts.tokens import create_device_token
from core.accounts.users import create_user
from core.storage.engine import make_engine
from core.storage.schema import migrate

# A bare endpoint: the same framework and server settings as realtime/http/__main__.py, nothing stored.
BARE_SERVER = r"""
import sys, uvicorn
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

async def ok(request):
    await request.body()
    return PlainTextResponse("OK\n")

async def healthz(request):
    return PlainTextResponse("ok\n")

app = Starlette(routes=[Route("/", ok, methods=["GET", "POST"]), Route("/healthz", healthz)])
config = uvicorn.Config(app, host="127.0.0.1", port=int(sys.argv[1]), log_level="warning", access_log=False,
                        proxy_headers=False, server_header=False, timeout_keep_alive=30,
                        timeout_graceful_shutdown=30)
uvicorn.Server(config).run()
"""

METRES_PER_DEGREE = 111_195.0
FIX_EVERY_S = 1.0  # a phone's fixes are a second apart in their own time (sent as fast as answered)
SPEED_MPS = 3.0  # a runner


def make_tokens(url: str, count: int) -> list[str]:
    """``count`` athletes with a device token each (the token is each phone's ``id``)."""
    engine = make_engine(url)
    migrate(engine)
    tokens = []
    with Session(engine) as s, s.begin():
        for i in range(count):
            user = create_user(s, f"phone{i}_{os.getpid() % 10_000}")
            _, token = create_device_token(s, user, name="phone")
            tokens.append(token)
    engine.dispose()
    return tokens


def start_service(url: str, data_dir: Path) -> tuple[subprocess.Popen, int]:
    port = free_port()
    env = dict(os.environ, TRACKER_DATA_DIR=str(data_dir), PYTHONPATH=str(ROOT))
    env.pop("TRACKER_REDIS_URL", None)  # no Live page here: fixes in, stored, answered
    # Each phone sends as fast as it is answered, far above a real phone's one fix a second,
    # so the per-token limit (meant for one phone) is lifted for the bench.
    proc = subprocess.Popen([sys.executable, "-m", "realtime.http", "--port", str(port), "--database-url", url,
                             "--log-level", "WARNING", "--rate", "1000000"],
                            cwd=ROOT, env=env, stderr=subprocess.PIPE, preexec_fn=raise_fd_limit)
    wait_healthy(port, proc)
    return proc, port


def start_bare() -> tuple[subprocess.Popen, int]:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-c", BARE_SERVER, str(port)], stderr=subprocess.PIPE,
                            preexec_fn=raise_fd_limit)
    wait_healthy(port, proc)
    return proc, port


@dataclass
class Load:
    requests: int = 0
    errors: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


class Phone:
    """One phone's fix stream: heading north from its own start, a fix a second."""

    def __init__(self, token: str, k: int, t0: float):
        self.token, self.k, self.t0, self.n = token, k, t0, 0

    def request(self) -> bytes:
        t = self.t0 + self.n * FIX_EVERY_S
        lat = 45.0 + (self.k % 100) * 0.01 + self.n * SPEED_MPS * FIX_EVERY_S / METRES_PER_DEGREE
        lon = 14.0 + (self.k // 100) * 0.01
        self.n += 1
        query = (f"id={self.token}&timestamp={int(t)}&lat={lat:.7f}&lon={lon:.7f}&speed={SPEED_MPS / 0.514444:.2f}"
                 f"&bearing=0.0&altitude=300.0&accuracy=4.0&batt=87.0")
        return (f"GET /?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: TraccarClient\r\n"
                f"Accept: */*\r\n\r\n").encode()


async def read_answer(reader: asyncio.StreamReader) -> int:
    """One HTTP/1.1 answer (Content-Length bodies only, as uvicorn sends them); its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
            break
    if length:
        await reader.readexactly(length)
    return status


async def drive(port: int, phones: list[Phone], seconds: float) -> Load:
    """Every phone on its own keep-alive connection sends a fix, waits for the answer, and
    sends the next, for ``seconds`` once all are connected."""
    load = Load()
    connected = asyncio.Event()
    ready = {"n": 0}

    async def one(phone: Phone) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        ready["n"] += 1
        if ready["n"] == len(phones):
            connected.set()
        await connected.wait()
        end = time.monotonic() + seconds
        try:
            while time.monotonic() < end:
                sent = time.monotonic()
                writer.write(phone.request())
                status = await read_answer(reader)
                load.latencies.append(time.monotonic() - sent)
                load.requests += 1
                if status != 200:
                    load.errors += 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(one(p)) for p in phones]
    await connected.wait()
    began = time.monotonic()
    await asyncio.gather(*tasks)
    load.seconds = time.monotonic() - began
    return load


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--phones", type=int, default=100, help="simulated phones, one connection and token each")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--rounds", type=int, default=3, help="alternating runs of each; medians are reported")
    args = parser.parse_args()
    raise_fd_limit()
    data_dir = Path(tempfile.mkdtemp(prefix="http-ingest-"))
    url = f"sqlite:///{data_dir / 'tracker.db'}"
    tokens = make_tokens(url, args.phones)
    t0 = time.time() - 86_000  # yesterday: every fix is in the past whatever the run's length
    phones = [Phone(token, k, t0) for k, token in enumerate(tokens)]

    bare, bare_port = start_bare()
    service, port = start_service(url, data_dir)
    runs: dict[str, list[Load]] = {"bare": [], "service": []}
    cpu: dict[str, list[tuple[float, float]]] = {"bare": [], "service": []}
    try:
        for _ in range(args.rounds):  # alternated, so a noisy neighbour hurts both alike
            for name, proc, p in (("bare", bare, bare_port), ("service", service, port)):
                before, gen_before, began = cpu_seconds(proc.pid), time.process_time(), time.monotonic()
                load = asyncio.run(drive(p, phones, args.seconds))
                wall = time.monotonic() - began
                runs[name].append(load)
                cpu[name].append(((cpu_seconds(proc.pid) - before) / max(load.requests, 1),
                                  (time.process_time() - gen_before) / wall))
    finally:
        for proc in (bare, service):
            proc.terminate()
            proc.wait(30)
    stored = stored_fixes(url)

    def median_rate(name: str) -> float:
        return statistics.median(load.rate for load in runs[name])

    def latency(name: str, q: float) -> float:
        return 1000 * statistics.median(load.percentile(q) for load in runs[name])

    base, ours = median_rate("bare"), median_rate("service")
    errors = sum(load.errors for load in runs["service"]) + sum(load.errors for load in runs["bare"])
    sent = sum(load.requests for load in runs["service"])
    print(f"phones: {args.phones}, each on its own keep-alive connection sending one OsmAnd fix per request "
          f"(GET, query parameters) and waiting for the answer; {args.rounds} x {args.seconds:.0f} s each; "
          f"database: SQLite")
    print(f"bare Starlette 200:      {base:,.0f} fixes/s  (runs: {', '.join(f'{r.rate:,.0f}' for r in runs['bare'])}; "
          f"p50 {latency('bare', 0.5):.2f} ms, p99 {latency('bare', 0.99):.2f} ms)")
    print(f"HTTP ingest service:     {ours:,.0f} fixes/s  (runs: {', '.join(f'{r.rate:,.0f}' for r in runs['service'])}; "
          f"p50 {latency('service', 0.5):.2f} ms, p99 {latency('service', 0.99):.2f} ms)")
    print(f"ratio service / bare:    {ours / base:.2f}  (target: 0.5 or more)")
    print(f"server CPU per request:  bare {1e6 * statistics.median(c for c, _ in cpu['bare']):.0f} us, "
          f"service {1e6 * statistics.median(c for c, _ in cpu['service']):.0f} us; the load generator used "
          f"{statistics.median(g for _, g in cpu['bare']):.2f} of a core against the bare endpoint, "
          f"{statistics.median(g for _, g in cpu['service']):.2f} against the service")
    print(f"answers other than 200:  {errors}; fixes answered by the service: {sent:,}, stored: {stored:,}")


def stored_fixes(url: str) -> int:
    from sqlalchemy import func, select

    from core.storage.points import RoutePoint

    engine = make_engine(url)
    try:
        with Session(engine) as s:
            return int(s.scalar(select(func.count()).select_from(RoutePoint)))
    finally:
        engine.dispose()


if __name__ == "__main__":
    main()
