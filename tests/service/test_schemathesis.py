"""The whole HTTP contract under fuzzing: schemathesis against a real server's own
``/openapi.json``, every check, every phase, must end with no failure and no error.

The server runs with a bearer token (schemathesis authenticates through the document's
``HTTPBearer`` scheme and also checks that requests without it are refused). The run is
configured by ``tests/schemathesis.toml`` (deterministic, 60 examples per operation, the
stateful phase following the document's links) and ``tests/schemathesis_hooks.py``. Besides
the exit status, the run's reports must show every operation tested and the stateful phase
walking the life of an experiment: create -> tasks -> reports -> state and export.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from teacher_service.testing import ServerProcess

REPO = Path(__file__).resolve().parents[2]
CONFIG = REPO / "tests" / "schemathesis.toml"
TOKEN = "fuzz+token/7="
#: Links of the stateful phase that must each be followed at least once.
CHAIN = (
    "POST /v1/experiments -> [201] create_tasks",
    "POST /v1/experiments/{experiment_id}/tasks -> [200] report_the_first_task",
    "POST /v1/experiments/{experiment_id}/reports -> [200] get_state",
    "POST /v1/experiments/{experiment_id}/reports -> [200] export_history",
    "POST /v1/experiments -> [201] delete_experiment",
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]


@pytest.fixture
def server(server_factory: Any, sqlite_url: str) -> ServerProcess:
    """A teacher service with a bearer token on a fresh SQLite file."""
    return server_factory(sqlite_url, token=TOKEN)


def _transitions(ndjson: Path) -> Counter[str]:
    """How often each link (``source -> [status] name``) was followed in the stateful phase."""
    seen: Counter[str] = Counter()

    def walk(obj: Any) -> None:
        if isinstance(obj, dict):
            step = obj.get("transition")
            if isinstance(step, dict) and "id" in step:
                seen[step["id"].rsplit(" -> ", 1)[0]] += 1
            for v in obj.values():
                walk(v)
        elif isinstance(obj, list):
            for v in obj:
                walk(v)

    for line in ndjson.read_text().splitlines():
        walk(json.loads(line))
    return seen


def test_schemathesis_finds_no_failure_and_no_error(server: ServerProcess, tmp_path: Path) -> None:
    reports = tmp_path / "reports"
    cmd = [
        str(Path(sys.executable).with_name("schemathesis")),
        "--config-file",
        str(CONFIG),
        "run",
        f"{server.url}/openapi.json",
        "--checks",
        "all",
        "--report",
        "json,ndjson",
        "--report-dir",
        str(reports),
    ]
    env = {
        **os.environ,
        "AUTOCURRICULUM_TOKEN": TOKEN,
        "PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]),
        "NO_COLOR": "1",
    }
    proc = subprocess.run(
        cmd, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=800, check=False
    )
    out = proc.stdout + proc.stderr
    log = server.log_path.read_text()
    assert proc.returncode == 0, out[-20_000:] + "\n--- server log ---\n" + log[-5000:]

    summary = json.loads(next(reports.glob("json-*.json")).read_text())
    assert summary["complete"] and summary["exit_code"] == 0
    assert summary["failures"] == [] and summary["errors"] == []
    ops = summary["operations"]
    assert ops["tested"] == ops["total"] == ops["selected"] >= 18, ops
    assert ops["errored"] == 0 and ops["skipped"] == 0
    for phase in ("examples", "coverage", "fuzzing", "stateful"):
        assert summary["phases"][phase]["status"] == "success", summary["phases"]
    assert summary["test_cases"]["generated"] > 1000
    assert summary["warnings"]["missing_test_data"] == []

    followed = _transitions(next(reports.glob("ndjson-*.ndjson")))
    missing = [link for link in CHAIN if followed[link] == 0]
    assert missing == [], dict(followed)
    assert "unhandled error" not in log
