"""``python -m realtime.balancer --processes N``: N ingest processes behind HAProxy.

The balancer listens on ``--port`` (the devices' port) and spreads connections over the
ingest processes, which listen on ``--backend-port`` and the ports after it, by least
connections, with health checks on their ``/healthz`` (configuration: realtime/haproxy.cfg).
A process that dies is started again after ``RESTART_AFTER_S``; meanwhile HAProxy sends its
devices, as they reconnect, to the others. With ``--processes 1`` the one ingest process
listens on ``--port`` itself, with no balancer: the layout of a single machine.

HAProxy's statistics page and Prometheus metrics (``--stats-port``) listen on 127.0.0.1
unless ``--stats-host`` says otherwise: they are for the operator and a scraper, not for
the devices, whatever ``--host`` is.

SIGTERM or SIGINT stops the ingest processes (each commits and acknowledges what it has
received, then closes its connections) and then HAProxy.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import logging
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from realtime.health import healthy
from realtime.logs import configure_logging

log = logging.getLogger("realtime.balancer")

CONFIG = Path(__file__).with_name("haproxy.cfg")
RESTART_AFTER_S = 1.0  # the first restart of a process that died; doubled while it keeps dying
RESTART_MAX_S = 30.0
STEADY_S = 60.0  # a process up this long starts again after RESTART_AFTER_S when it dies
START_TIMEOUT_S = 60.0
HUNG_AFTER_S = 10.0  # a process that answers no /healthz for this long is killed and started again
CHECK_EVERY_S = 1.0
MAX_CONNECTIONS = 200_000
PR_SET_PDEATHSIG = 1
STOP_TIMEOUT_S = 40.0  # an ingest process drains for up to 30 s (realtime.server.DRAIN_TIMEOUT_S)
STATS_HOST = "127.0.0.1"  # HAProxy's statistics and metrics: this machine only unless told


class MissingBalancer(RuntimeError):
    pass


def haproxy_binary() -> str:
    found = shutil.which("haproxy") or next(
        (p for p in ("/usr/sbin/haproxy", "/usr/local/sbin/haproxy") if os.access(p, os.X_OK)), None)
    if found is None:
        raise MissingBalancer("more than one ingest process needs HAProxy in front of them "
                              "(Debian: apt-get install haproxy)")
    return found


def die_with_parent() -> None:
    """In a child: be sent SIGTERM when the balancer dies, even by SIGKILL (Linux)."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def port_in_use(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        return sock.connect_ex((host, port)) == 0


def write_config(folder: Path, backends: list[tuple[str, int]]) -> Path:
    """realtime/haproxy.cfg with one server line per ingest process."""
    lines = [CONFIG.read_text().rstrip("\n")]
    lines += [f"    server ingest{i} {host}:{port}" for i, (host, port) in enumerate(backends, 1)]
    path = folder / "haproxy.cfg"
    path.write_text("\n".join(lines) + "\n")
    return path


def max_connections() -> int:
    """Half the open-file limit (each device holds two descriptors in HAProxy), raised to its
    hard limit first; at most ``MAX_CONNECTIONS``."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with contextlib.suppress(ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        soft = hard
    limit = MAX_CONNECTIONS if soft == resource.RLIM_INFINITY else (soft - 100) // 2
    return max(1, min(MAX_CONNECTIONS, limit))


def bind_address(host: str, port: int) -> str:
    """``host:port`` as HAProxy binds it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def balancer_env(host: str, port: int, stats_port: int, threads: int = 1,
                 env: dict[str, str] | None = None, stats_host: str = STATS_HOST) -> dict[str, str]:
    """HAProxy's environment: the devices' frontend on ``host``, its statistics and metrics
    on ``stats_host`` (this machine only by default)."""
    return dict(env if env is not None else os.environ, INGEST_BIND=bind_address(host, port),
                BALANCER_STATS_BIND=bind_address(stats_host, stats_port),
                BALANCER_THREADS=str(threads), BALANCER_MAXCONN=str(max_connections()))


def port_conflicts(processes: int, port: int, backend_port: int, stats_port: int) -> str | None:
    """Why these ports cannot serve together (None when they can): each in 1-65535, the
    backends' range included, and no two of the devices' port, the statistics port and the
    backends' ports the same."""
    for name, value in (("--port", port), ("--backend-port", backend_port), ("--stats-port", stats_port)):
        if not 1 <= value <= 65535:
            return f"{name} must be a port from 1 to 65535, not {value}"
    if processes == 1:
        return None  # the one ingest process listens on --port: no backend, no statistics
    last = backend_port + processes - 1
    if last > 65535:
        return (f"{processes} ingest processes from --backend-port {backend_port} need ports up to {last}, "
                "past 65535: choose a lower --backend-port")
    if port == stats_port:
        return f"--port and --stats-port are both {port}: the devices and the statistics need a port each"
    for name, value in (("--port", port), ("--stats-port", stats_port)):
        if backend_port <= value <= last:
            return (f"{name} {value} is one of the ingest processes' ports {backend_port}-{last} "
                    "(--backend-port and the ports after it)")
    return None


class Cluster:
    """The ingest processes and HAProxy, started, watched and stopped together."""

    def __init__(self, backend_ports: list[int], host: str, port: int, stats_port: int, server_args: list[str],
                 threads: int = 1, env: dict[str, str] | None = None, stats_host: str = STATS_HOST):
        self.host, self.port, self.stats_port, self.threads = host, port, stats_port, threads
        self.stats_host = stats_host
        self.backends = [("127.0.0.1", p) for p in backend_ports]
        self.server_args = server_args
        self.env = dict(env if env is not None else os.environ)
        self.ingest: list[subprocess.Popen | None] = [None] * len(backend_ports)
        self.died_at: list[float | None] = [None] * len(backend_ports)
        self.started_at = [0.0] * len(backend_ports)
        self.answered_at = [0.0] * len(backend_ports)
        self.delay = [RESTART_AFTER_S / 2] * len(backend_ports)  # doubled at the first death
        self.checked_at = 0.0
        self.haproxy: subprocess.Popen | None = None
        self.folder = Path(tempfile.mkdtemp(prefix="tracker-balancer-"))

    def start_ingest(self, i: int) -> subprocess.Popen:
        host, port = self.backends[i]
        proc = subprocess.Popen([sys.executable, "-m", "realtime", "--host", host, "--port", str(port),
                                 *self.server_args], env=self.env, preexec_fn=die_with_parent)
        self.ingest[i] = proc
        self.died_at[i] = None
        self.started_at[i] = self.answered_at[i] = time.monotonic()
        return proc

    def start(self) -> None:
        binary = haproxy_binary()
        taken = [port for port in (self.port, self.stats_port, *(p for _, p in self.backends)) if port_in_use(port)]
        if taken:
            raise RuntimeError(f"port {', '.join(map(str, taken))} in use: is an earlier balancer or ingest "
                               "process still running?")
        # Raises the file limit.
        env = balancer_env(self.host, self.port, self.stats_port, self.threads, self.env, self.stats_host)
        for i in range(len(self.backends)):
            self.start_ingest(i)
        deadline = time.monotonic() + START_TIMEOUT_S
        for i, (host, port) in enumerate(self.backends):
            while not healthy(f"http://{host}:{port}/healthz"):
                if self.ingest[i].poll() is not None:
                    raise RuntimeError(f"ingest process on port {port} exited with {self.ingest[i].returncode}")
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ingest process on port {port} did not answer /healthz")
                time.sleep(0.1)
        config = write_config(self.folder, self.backends)
        check = subprocess.run([binary, "-c", "-f", str(config)], capture_output=True, text=True, env=env)
        if check.returncode != 0:
            raise RuntimeError(f"HAProxy refused its configuration: {(check.stderr or check.stdout).strip()}")
        self.haproxy = subprocess.Popen([binary, "-db", "-f", str(config)], env=env, preexec_fn=die_with_parent)
        while not healthy(f"http://{self.host}:{self.port}/healthz"):
            if self.haproxy.poll() is not None:
                raise RuntimeError(f"HAProxy exited with {self.haproxy.returncode}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"HAProxy did not answer on {self.host}:{self.port}")
            time.sleep(0.1)
        log.info(f"HAProxy on {self.host}:{self.port} (statistics and metrics on "
                 f"{bind_address(self.stats_host, self.stats_port)}) "
                 f"in front of {len(self.backends)} ingest processes on ports "
                 f"{', '.join(str(p) for _, p in self.backends)}")

    def watch_once(self) -> None:
        """Start again an ingest process that died (after ``RESTART_AFTER_S``, doubled while
        it keeps dying), kill one that has not answered /healthz for ``HUNG_AFTER_S`` (hung:
        HAProxy has taken it out, but its open transactions may hold locks the others need);
        HAProxy's exit ends the cluster (RuntimeError)."""
        if self.haproxy is not None and self.haproxy.poll() is not None:
            raise RuntimeError(f"HAProxy exited with {self.haproxy.returncode}")
        now = time.monotonic()
        check = now - self.checked_at >= CHECK_EVERY_S
        if check:
            self.checked_at = now
        for i, proc in enumerate(self.ingest):
            if proc is None:
                continue
            port = self.backends[i][1]
            if proc.poll() is None:
                if not check:
                    continue
                if healthy(f"http://{self.backends[i][0]}:{port}/healthz"):
                    self.answered_at[i] = time.monotonic()
                elif now - max(self.answered_at[i], self.started_at[i] + START_TIMEOUT_S - HUNG_AFTER_S) \
                        > HUNG_AFTER_S:
                    log.warning(f"ingest process on port {port} has not answered /healthz for "
                                f"{now - self.answered_at[i]:.0f} s: killing it")
                    proc.kill()
                continue
            if self.died_at[i] is None:
                self.died_at[i] = now
                steady = now - self.started_at[i] >= STEADY_S
                self.delay[i] = RESTART_AFTER_S if steady else min(self.delay[i] * 2, RESTART_MAX_S)
                log.warning(f"ingest process on port {port} exited with {proc.returncode}; "
                            f"starting it again in {self.delay[i]:.0f} s")
            elif now - self.died_at[i] >= self.delay[i]:
                self.start_ingest(i)

    def stop(self) -> None:
        """Drain the ingest processes, then stop HAProxy."""
        running = [p for p in self.ingest if p is not None and p.poll() is None]
        for proc in running:
            proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        for proc in running:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if self.haproxy is not None and self.haproxy.poll() is None:
            self.haproxy.terminate()
            try:
                self.haproxy.wait(10)
            except subprocess.TimeoutExpired:
                self.haproxy.kill()
        shutil.rmtree(self.folder, ignore_errors=True)


def check_configuration() -> str | None:
    """Why the ingest processes would refuse the ``TRACKER_*`` configuration (None when they
    would not): checked before any of them starts."""
    from core.config import load_settings

    try:
        load_settings()
    except ValueError as exc:
        return str(exc)
    return None


def preflight(args) -> int:
    """``--check``: HAProxy installed when it is needed, and every port free; 0 if so, else
    1 with the reason."""
    try:
        if args.processes > 1:
            haproxy_binary()
    except MissingBalancer as exc:
        print(f"python -m realtime.balancer: {exc}", file=sys.stderr)
        return 1
    ports = [args.port] if args.processes == 1 else [
        args.port, args.stats_port, *range(args.backend_port, args.backend_port + args.processes)]
    taken = [port for port in ports if port_in_use(port)]
    if taken:
        print(f"python -m realtime.balancer: port {', '.join(map(str, taken))} in use: is an earlier balancer "
              "or ingest process still running?", file=sys.stderr)
        return 1
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m realtime.balancer", description=__doc__.split("\n")[0])
    parser.add_argument("--processes", type=int, default=1, help="ingest processes (default 1: no balancer)")
    parser.add_argument("--host", default="127.0.0.1", help="where the devices connect")
    parser.add_argument("--port", type=int, default=8765, help="the devices' port")
    parser.add_argument("--backend-port", type=int, default=8770,
                        help="the first ingest process's port (the others take the ports after it)")
    parser.add_argument("--stats-port", type=int, default=8769, help="HAProxy's /healthz, /stats and /metrics")
    parser.add_argument("--stats-host", default=STATS_HOST,
                        help="where the statistics port listens (default 127.0.0.1: this machine only; "
                             "0.0.0.0 for a scraper elsewhere)")
    parser.add_argument("--threads", type=int, default=1, help="HAProxy's threads")
    parser.add_argument("--log-level", default="INFO")
    parser.add_argument("--check", action="store_true",
                        help="check the arguments, the configuration, HAProxy and the ports; start nothing")
    args, server_args = parser.parse_known_args()
    server_args += ["--log-level", args.log_level]
    if args.processes < 1:
        parser.error(f"--processes must be at least 1, not {args.processes}")
    if args.threads < 1:
        parser.error(f"--threads must be at least 1, not {args.threads}")
    if not args.host.strip() or not args.stats_host.strip():
        parser.error("--host and --stats-host must name an address")
    conflict = port_conflicts(args.processes, args.port, args.backend_port, args.stats_port)
    if conflict is not None:
        parser.error(conflict)
    problem = check_configuration()
    if problem is not None:
        print(f"{parser.prog}: {problem}", file=sys.stderr)
        return 1
    if args.check:
        return preflight(args)
    if args.processes == 1:
        os.execv(sys.executable, [sys.executable, "-m", "realtime", "--host", args.host, "--port", str(args.port),
                                  *server_args])
    configure_logging(args.log_level)
    ports = [args.backend_port + i for i in range(args.processes)]
    cluster = Cluster(ports, args.host, args.port, args.stats_port, server_args, threads=args.threads,
                      stats_host=args.stats_host)
    stopping = []
    previous = {sig: signal.signal(sig, lambda *_: stopping.append(True)) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        cluster.start()
        while not stopping:
            cluster.watch_once()
            time.sleep(0.2)
        return 0
    except (MissingBalancer, RuntimeError, OSError) as exc:
        log.error(str(exc))
        return 1
    finally:
        cluster.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)


if __name__ == "__main__":
    sys.exit(main())
