"""The TypeScript example (``examples/typescript``) against a real server: "any language" can
call the API from the OpenAPI document alone.

In a copy of the example: ``npm ci``, ``npm run generate`` (openapi-typescript reads the live
server's ``/openapi.json``), ``npm run build`` (``tsc`` in strict mode: every call, body and
error read must type-check against the document) and ``npm start`` (openapi-fetch drives an
ALP-GMM experiment with a bearer token and shows a 404 and a 422). Its last stdout line is a JSON
summary, checked here and cross-checked with the server over httpx.

Needs ``node`` and ``npm`` (Debian: ``nodejs``, ``npm``) and the npm registry or a warm npm
cache. Without node/npm the test is skipped, except under ``CI=true``, where that is a failure.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest

from teacher_service.testing import ServerProcess

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "typescript"
TOKEN = "ts+token/42="  # "+", "/" and "=" as in base64 tokens
ROUNDS, BATCH = 3, 8  # what src/main.ts sends: ROUNDS requests of BATCH tasks, each reported


@pytest.fixture
def npm() -> str:
    """The path of npm (node is there too); skips (fails under CI=true) when either is missing."""
    node, npm = shutil.which("node"), shutil.which("npm")
    if node and npm:
        return npm
    missing = " and ".join(n for n, p in (("node", node), ("npm", npm)) if not p)
    reason = f"{missing} not found (Debian: apt-get install nodejs npm)"
    if os.environ.get("CI") == "true":
        pytest.fail(f"CI=true but {reason}")
    pytest.skip(reason)


@pytest.fixture
def server(server_factory: Any, sqlite_url: str) -> ServerProcess:
    """A teacher service with a bearer token on a fresh SQLite file."""
    return server_factory(sqlite_url, token=TOKEN)


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float, log: Path) -> str:
    """Run ``cmd``; on a non-zero exit or a timeout fail with its output and the server's log."""

    def failure(what: str, out: str | bytes | None, err: str | bytes | None) -> str:
        def text(s: str | bytes | None) -> str:
            return s.decode(errors="replace") if isinstance(s, bytes) else (s or "")

        server_log = log.read_text(errors="replace")[-4000:] if log.exists() else ""
        return (
            f"`{' '.join(cmd)}` {what}\n--- stdout\n{text(out)[-8000:]}\n"
            f"--- stderr\n{text(err)[-8000:]}\n--- server log (tail)\n{server_log}"
        )

    try:
        proc = subprocess.run(
            cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False
        )
    except subprocess.TimeoutExpired as e:
        pytest.fail(failure(f"timed out after {timeout:.0f} s", e.stdout, e.stderr))
    assert proc.returncode == 0, failure(f"exited {proc.returncode}", proc.stdout, proc.stderr)
    return proc.stdout


@pytest.mark.timeout(300)
def test_typescript_client_generated_from_openapi(
    npm: str, server: ServerProcess, tmp_path: Path
) -> None:
    work = tmp_path / "typescript"
    shutil.copytree(
        EXAMPLE,
        work,
        ignore=lambda d, names: [
            n
            for n in names
            if n in ("node_modules", "dist") or (n == "schema.d.ts" and Path(d).name == "src")
        ],
    )
    assert not (work / "src" / "schema.d.ts").exists()
    options = json.loads((work / "tsconfig.json").read_text())["compilerOptions"]
    assert options["strict"] is True, "the example's type-check must stay strict"
    env = {
        **os.environ,
        "AUTOCURRICULUM_SERVER": server.url,
        "AUTOCURRICULUM_TOKEN": TOKEN,
        "npm_config_update_notifier": "false",
        "npm_config_fund": "false",
        "npm_config_audit": "false",
    }
    log = server.log_path

    _run([npm, "ci", "--no-audit", "--no-fund"], work, env, 180, log)
    _run([npm, "run", "generate"], work, env, 60, log)
    schema = (work / "src" / "schema.d.ts").read_text()
    assert '"/v1/experiments/{experiment_id}/tasks"' in schema
    assert "ErrorResponse" in schema
    _run([npm, "run", "build"], work, env, 120, log)  # tsc --strict: must type-check
    assert (work / "dist" / "main.js").exists()

    name = "ts-example-1"
    out = _run([npm, "start", "--", name], work, env, 60, log)
    lines = [line for line in out.splitlines() if line.strip()]
    assert lines, "npm start printed nothing"
    try:
        summary: dict[str, Any] = json.loads(lines[-1])
    except json.JSONDecodeError as e:
        pytest.fail(f"last stdout line is not JSON ({e}):\n{out}")

    sent = ROUNDS * BATCH
    assert summary["experiment"] == name
    assert summary["teacher_kind"] == "alp_gmm"
    assert "alp_gmm" in summary["teacher_kinds"]
    assert summary["tasks_received"] == summary["tasks_issued"] == sent, summary
    assert summary["reports_sent"] == summary["reports_acked"] == sent, summary
    assert summary["reports_accepted"] == sent, summary
    assert isinstance(summary["not_found_detail"], str)
    assert f"{name}-does-not-exist" in summary["not_found_detail"], summary
    assert isinstance(summary["invalid_detail"], str) and summary["invalid_detail"].strip()
    assert summary["invalid_errors"] >= 1, summary

    # the server agrees: the experiment exists under that name, with those counters
    auth = {"Authorization": f"Bearer {TOKEN}"}
    with httpx.Client(base_url=server.url, headers=auth, timeout=10.0) as http:
        exp = http.get(f"/v1/experiments/{name}")
        assert exp.status_code == 200, exp.text
        assert exp.json()["id"] == summary["id"]
        assert exp.json()["teacher"]["kind"] == "alp_gmm"
        state = http.get(f"/v1/experiments/{summary['id']}/state")
        assert state.status_code == 200, state.text
        counters = state.json()["counters"]
        assert counters["tasks_issued"] == sent, counters
        assert counters["reports_accepted"] == sent, counters
        assert counters["outstanding"] == 0, counters
    assert httpx.get(f"{server.url}/v1/experiments/{name}", timeout=10.0).status_code == 401
