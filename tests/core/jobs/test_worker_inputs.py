"""The worker's configuration mistakes end it with one line saying which variable and why,
before it touches anything: a Redis URL its client would misread or refuse, a metrics port
that is no port or is taken."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from core.config import load_settings
from core.jobs.metrics import MetricsPortError, WorkerMetrics

ROOT = Path(__file__).resolve().parents[3]


@pytest.mark.parametrize("url", ["redis://127.0.0.1:6379/13", "redis://127.0.0.1:6379", "redis://127.0.0.1:6379/",
                                 "rediss://:secret@cache.example:6380/2", "unix:///run/redis.sock?db=3",
                                 "redis://127.0.0.1:6379?db=4"])
def test_redis_urls_the_client_reads_as_meant_are_taken(monkeypatch, url):
    monkeypatch.setenv("TRACKER_REDIS_URL", url)
    assert load_settings().redis_url == url


@pytest.mark.parametrize("url, reason", [
    ("abc", "must start with redis://, rediss:// or unix:// (its scheme: none)"),
    ("http://127.0.0.1:6379/13", "(its scheme: http://)"),
    ("redis://127.0.0.1:6379/13x", "by number (such as /0 or ?db=0), not /13x"),
    ("redis://127.0.0.1:6379/abc", "not /abc"),
    ("redis://127.0.0.1:6379/1/2", "not /1/2"),
    ("redis://127.0.0.1:6379/\u0661\u0662", "by number"),
    ("redis://127.0.0.1:6379/1?db=x", "not ?db=x"),
    ("unix:///run/redis.sock?db=x", "not ?db=x"),
    ("unix://", "names no socket path"),
    ("redis://127.0.0.1:99999/1", "not a Redis URL: its port is out of range"),
    ("redis://:Abc/def+ghi@127.0.0.1:6379/11", "a password holding / # ? @ or : must be percent-encoded"),
    ("redis://127.0.0.1:0/1", "port 0"),
])
def test_a_redis_url_the_client_would_misread_or_refuse_is_refused(monkeypatch, url, reason):
    monkeypatch.setenv("TRACKER_REDIS_URL", url)
    with pytest.raises(ValueError, match="^TRACKER_REDIS_URL ") as caught:
        load_settings()
    assert reason in str(caught.value)


@pytest.mark.parametrize("url, secret", [
    ("redis://:hunter2@127.0.0.1:6379/x", "hunter2"),
    # A "/" in the password cuts the address short, and urllib's own message quotes the rest.
    ("redis://:Abc/def+ghi@127.0.0.1:6379/11", "Abc"),
    ("redis://default:s3cr/et@cache.example:6379/0", "s3cr"),
    ("redis://default:s3cr#et@cache.example:6379/0", "s3cr"),
    # Digits before the "/" read as a port: the rest would have been quoted as the database.
    ("redis://:12/secretpart@host:6379/0", "secretpart"),
    ("redis://user:6379/secretpart@host/0", "secretpart"),
    ("redis://:1#secret@host:6379/0", "secret"),
    ("redis://:12?x@host/0", "x@host"),
])
def test_a_refused_redis_url_is_not_repeated_in_the_error(monkeypatch, url, secret):
    """The URL may hold a password: the error says what is wrong without any of it."""
    monkeypatch.setenv("TRACKER_REDIS_URL", url)
    with pytest.raises(ValueError) as caught:
        load_settings()
    assert secret not in str(caught.value)


@pytest.mark.parametrize("name, value, reason", [
    ("TRACKER_MAX_UPLOAD_BYTES", "-1", "a whole number of bytes from 1 to 9223372036854775807"),
    ("TRACKER_MAX_UPLOAD_BYTES", "0", "a whole number of bytes from 1 to 9223372036854775807"),
    ("TRACKER_MAX_UPLOAD_BYTES", "\u0663\u0660\u0660", "a whole number of bytes from 1 to 9223372036854775807"),  # Arabic-Indic 300
    ("TRACKER_MAX_POINTS_PER_FILE", "0", "a whole number from 1 to 9223372036854775807"),
    ("TRACKER_MAX_POINTS_PER_FILE", "1.5", "a whole number from 1 to 9223372036854775807"),
    ("TRACKER_DEVICE_IDLE_COMPLETE_S", "-600", "a number of seconds above 0, at most 3153600000"),
    ("TRACKER_DEVICE_IDLE_COMPLETE_S", "nan", "a number of seconds above 0, at most 3153600000"),
    ("TRACKER_DEVICE_IDLE_COMPLETE_S", "inf", "a number of seconds above 0, at most 3153600000"),
    ("TRACKER_EXPORT_KEEP_HOURS", "-1", "a number of hours above 0, at most 876000"),
    ("TRACKER_TIER_COLD_DAYS", "-1", "a number of days from 0 to 36500"),
    ("TRACKER_TIER_COLD_DAYS", "nan", "a number of days from 0 to 36500"),
    ("TRACKER_TIER_HOT_READS", "-3", "a whole number of reads from 0 to 9223372036854775807"),
    ("TRACKER_TIER_HOT_WINDOW_DAYS", "0", "a number of days above 0, at most 36500"),
    ("TRACKER_TIER_HOT_WINDOW_DAYS", "1e400", "a number of days above 0, at most 36500"),
    ("TRACKER_TIER_COLD_DAYS", "1000000", "a number of days from 0 to 36500"),
    ("TRACKER_TIER_COLD_DAYS", "1e10", "a number of days from 0 to 36500"),
    ("TRACKER_TIER_HOT_READS", "100000000000000000000", f"a whole number of reads from 0 to {2**63 - 1}"),
    ("TRACKER_EXPORT_KEEP_HOURS", "1e300", "a number of hours above 0, at most 876000"),
    ("TRACKER_POINT_PARTITION_SIZE", "100000000000000000000", "a whole number from 1 to 1000000000000"),
    ("TRACKER_POINT_PARTITION_SIZE", "0", "a whole number from 1 to 1000000000000"),
])
def test_a_number_out_of_its_range_is_refused_with_the_range(monkeypatch, name, value, reason):
    """Negative sizes, durations and counts, nan and inf, digits other than ASCII (which
    Python's int reads), and a partition size past the database's bigint bounds."""
    monkeypatch.setenv(name, value)
    with pytest.raises(ValueError) as caught:
        load_settings()
    assert str(caught.value) == f"{name} must be {reason}, not {value!r}"


def test_numbers_at_the_edges_of_their_range_are_taken(monkeypatch):
    for name, value in (("TRACKER_TIER_HOT_READS", "0"), ("TRACKER_TIER_COLD_DAYS", "0"),
                        ("TRACKER_POINT_PARTITION_SIZE", "1000000000000"), ("TRACKER_MAX_UPLOAD_BYTES", " 1 "),
                        ("TRACKER_DEVICE_IDLE_COMPLETE_S", "0.5")):
        monkeypatch.setenv(name, value)
    settings = load_settings()
    assert (settings.tier_hot_reads, settings.tier_cold_days, settings.point_partition_size,
            settings.max_upload_bytes, settings.device_idle_complete_s) == (0, 0.0, 10**12, 1, 0.5)


def test_the_worker_metrics_address_is_read(monkeypatch):
    monkeypatch.delenv("TRACKER_WORKER_METRICS_HOST", raising=False)
    assert load_settings().worker_metrics_host == "127.0.0.1"
    monkeypatch.setenv("TRACKER_WORKER_METRICS_HOST", "0.0.0.0")
    assert load_settings().worker_metrics_host == "0.0.0.0"


@pytest.mark.parametrize("value", ["abc", "70000", "0", "-1", "12x", "\u0661\u0662"])
def test_a_metrics_port_that_is_no_port_is_refused(monkeypatch, value):
    monkeypatch.setenv("TRACKER_WORKER_METRICS_PORT", value)
    with pytest.raises(ValueError, match="TRACKER_WORKER_METRICS_PORT must be a port from 1 to 65535"):
        load_settings()


def test_a_metrics_port_is_read(monkeypatch):
    monkeypatch.setenv("TRACKER_WORKER_METRICS_PORT", "9466")
    assert load_settings().worker_metrics_port == 9466
    monkeypatch.setenv("TRACKER_WORKER_METRICS_PORT", "")
    assert load_settings().worker_metrics_port is None


def test_metrics_on_a_port_in_use_say_so():
    metrics = WorkerMetrics()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(MetricsPortError, match=f"on 127.0.0.1:{port}: Address already in use"):
            metrics.serve(port)


def run_worker(tmp_path, **variables: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, TRACKER_DATA_DIR=str(tmp_path), TRACKER_DATABASE_URL=f"sqlite:///{tmp_path / 'w.db'}",
               **variables)
    return subprocess.run([sys.executable, "-m", "core", "worker"], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


@pytest.mark.parametrize("variables, reason", [
    ({"TRACKER_REDIS_URL": "abc"}, "TRACKER_REDIS_URL must start with redis://"),
    ({"TRACKER_REDIS_URL": "redis://127.0.0.1:6379/13x"}, "TRACKER_REDIS_URL must name its database by number"),
    ({"TRACKER_WORKER_METRICS_PORT": "abc"}, "TRACKER_WORKER_METRICS_PORT must be a port from 1 to 65535"),
    ({"TRACKER_WORKER_METRICS_PORT": "70000"}, "TRACKER_WORKER_METRICS_PORT must be a port from 1 to 65535"),
])
def test_the_worker_refuses_a_bad_variable_in_one_line(tmp_path, variables, reason):
    done = run_worker(tmp_path, **variables)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("python -m core worker: ") and reason in lines[0], done.stderr
    assert not (tmp_path / "w.db").exists()  # nothing was touched


def test_the_worker_refuses_a_metrics_port_in_use_in_one_line(tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run_worker(tmp_path, TRACKER_WORKER_METRICS_PORT=str(port))
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"127.0.0.1:{port}: Address already in use" in lines[0], done.stderr
    assert "TRACKER_WORKER_METRICS_PORT" in lines[0]


@pytest.mark.parametrize("command, prog", [
    (["core", "migrate"], "python -m core"),
    (["realtime", "--port", "1"], "python -m realtime"),
    (["realtime.http", "--port", "1"], "python -m realtime.http"),
])
@pytest.mark.parametrize("variables, reason", [
    ({"TRACKER_REDIS_URL": "redis://127.0.0.1:6379/abc"}, "TRACKER_REDIS_URL must name its database by number"),
    ({"TRACKER_MAX_UPLOAD_BYTES": "64MB"}, "TRACKER_MAX_UPLOAD_BYTES must be a whole number of bytes from 1 to"),
    ({"TRACKER_MAX_UPLOAD_BYTES": "1" + "0" * 400}, "not '1000000000000000000000000000000000000000'..."),
    ({"TRACKER_TIER_HOT_WINDOW_DAYS": "a month"}, "TRACKER_TIER_HOT_WINDOW_DAYS must be a number of days above 0"),
    ({"TRACKER_DATABASE_URL": "garbage"}, "TRACKER_DATABASE_URL is not a database URL"),
    ({"TRACKER_DATABASE_URL": "mysql://u:secret@db.example/t"}, "TRACKER_DATABASE_URL must name SQLite or PostgreSQL"),
])
def test_every_entry_point_refuses_a_bad_setting_in_one_line(tmp_path, command, prog, variables, reason):
    env = {**os.environ, "TRACKER_DATA_DIR": str(tmp_path), "TRACKER_DATABASE_URL": f"sqlite:///{tmp_path / 'w.db'}",
           **variables}
    done = subprocess.run([sys.executable, "-m", *command], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{prog}: ") and reason in lines[0], done.stderr
    assert not (tmp_path / "w.db").exists()


@pytest.mark.parametrize("url, reason", [
    ("postgresql+psycopg://postgres@127.0.0.1:1/none", "Connection refused"),
    (None, "file is not a database"),
])
def test_a_database_that_cannot_be_used_is_one_line_from_the_command_line(tmp_path, url, reason):
    """A server that is down, or a file that is no database: the command says so in one
    line, without a traceback."""
    if url is None:
        (tmp_path / "not.db").write_text("these are not the pages of a database\n" * 200)
        url = f"sqlite:///{tmp_path / 'not.db'}"
    env = dict(os.environ, TRACKER_DATA_DIR=str(tmp_path), TRACKER_DATABASE_URL=url)
    done = subprocess.run([sys.executable, "-m", "core", "badges", "--user", "ann"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    assert lines[0].startswith("python -m core: the database (TRACKER_DATABASE_URL) cannot be used: ")
    assert reason in lines[0]
