"""Schemathesis against the running HTTP service: every operation of ``/api/v1/openapi.json``
called with generated requests (valid and invalid), each answer checked against the document
(no server error, a documented status, content type and body). Fails on any finding, with
schemathesis' own report: the request to reproduce and the answer.

bench/http_schema.py runs the same against a service of its own and prints the summary.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

CHECKS = "not_a_server_error,response_schema_conformance,status_code_conformance,content_type_conformance"
EXAMPLES = int(os.environ.get("TRACKER_SCHEMA_EXAMPLES", 100))  # per operation and phase
SEED = int(os.environ.get("TRACKER_SCHEMA_SEED", 1))  # the same requests every run; set another to explore


def schemathesis_command(url: str, token: str, report_dir: Path, examples: int = EXAMPLES, seed: int = SEED) -> list[str]:
    """The ``st run`` command line for the service at ``url`` with this device token."""
    st = Path(sys.executable).with_name("st")
    return [str(st), "run", f"{url}/api/v1/openapi.json", "--header", f"Authorization: Bearer {token}",
            "--checks", CHECKS, "--max-examples", str(examples), "--seed", str(seed), "--workers", "1",
            "--generation-database", "none", "--request-timeout", "30", "--no-color",
            "--report", "junit", "--report-dir", str(report_dir)]


@pytest.mark.timeout(600)
def test_the_api_keeps_to_its_openapi_document(http, tmp_path):
    st = Path(sys.executable).with_name("st")
    assert st.exists(), "schemathesis is not installed (requirements.txt)"
    # Generated requests come many times faster than a phone's: the per-token limit is lifted
    # so that they reach the endpoints rather than the limit's 429.
    http.svc.rate_per_s = http.svc.burst = 1e6
    token = http.token("schemathesis")
    created = requests.post(f"{http.url}/api/v1/activities", json={"sport": "run", "title": "Schema"},
                            headers={"Authorization": f"Bearer {token}"}, timeout=30)
    assert created.status_code == 201, created.text
    command = schemathesis_command(http.url, token, tmp_path / "report")
    # Run from a scratch folder: schemathesis keeps its files in the working directory.
    env = dict(os.environ, NO_COLOR="1", COLUMNS="120")
    done = subprocess.run(command, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=540)
    output = (done.stdout + done.stderr).replace(token, "<token>")
    print(output)
    assert done.returncode == 0, f"schemathesis found problems (exit {done.returncode}):\n{output}"
