"""Schemathesis against the HTTP ingest service, with its summary printed: the service started
as ``python -m realtime.http`` on a fresh SQLite file, an athlete with a device token and an
activity, then ``st run`` on ``/api/v1/openapi.json`` with the checks of
tests/realtime/http/test_schema.py (server errors, documented statuses, content types and
bodies). Exits with schemathesis' status: non-zero when it found something.

    python bench/http_schema.py [--examples 100] [--seed 1]
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _common import ROOT
from _ingest import free_port, raise_fd_limit, wait_healthy
from sqlalchemy.orm import Session

from core.accounts.tokens import create_device_token
from core.accounts.users import create_user
from core.activities.lifecycle import create_activity
from core.storage.engine import make_engine
from core.storage.schema import migrate

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--examples", type=int, default=100, help="test cases per operation and phase at most")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    st = Path(sys.executable).with_name("st")
    if not st.exists():
        sys.exit("schemathesis is not installed: pip install -r requirements.txt")
    work = Path(tempfile.mkdtemp(prefix="http-schema-"))
    url = f"sqlite:///{work / 'tracker.db'}"
    engine = make_engine(url)
    migrate(engine)
    with Session(engine) as s, s.begin():
        user = create_user(s, "schema")
        _, token = create_device_token(s, user, name="schemathesis")
        create_activity(s, user, "run", title="Schema")
    engine.dispose()

    port = free_port()
    env = dict(os.environ, TRACKER_DATA_DIR=str(work), PYTHONPATH=str(ROOT))
    env.pop("TRACKER_REDIS_URL", None)
    # Generated requests come far faster than a phone's: the per-token limit is lifted so
    # that they reach the endpoints rather than its 429.
    service = subprocess.Popen([sys.executable, "-m", "realtime.http", "--port", str(port), "--database-url", url,
                                "--log-level", "WARNING", "--rate", "1000000"],
                               cwd=ROOT, env=env, stderr=subprocess.DEVNULL, preexec_fn=raise_fd_limit)
    try:
        wait_healthy(port, service)
        command = [str(st), "run", f"http://127.0.0.1:{port}/api/v1/openapi.json",
                   "--header", f"Authorization: Bearer {token}", "--checks", CHECKS,
                   "--max-examples", str(args.examples), "--seed", str(args.seed), "--workers", "1",
                   "--generation-database", "none", "--request-timeout", "30", "--no-color"]
        shown = shlex.join(command).replace(token, "$TOKEN")
        print(f"$ {shown}", flush=True)
        began = time.monotonic()
        # From the scratch folder: schemathesis keeps its files in the working directory.
        done = subprocess.run(command, cwd=work, env=dict(env, NO_COLOR="1"), capture_output=True, text=True)
        print((done.stdout + done.stderr).replace(token, "$TOKEN"), flush=True)
        print(f"schemathesis exit status {done.returncode} after {time.monotonic() - began:.0f} s "
              f"({args.examples} examples per operation at most, seed {args.seed})")
        return done.returncode
    finally:
        service.terminate()
        service.wait(30)


if __name__ == "__main__":
    sys.exit(main())
