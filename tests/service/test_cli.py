"""The ``autocurriculum`` CLI, run as a user would (subprocess), against a real server."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import BOX2


def cli(*args: str, env: dict | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "student_workers", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def test_every_command_has_help() -> None:
    for cmd in (
        [],
        ["serve"],
        ["experiments"],
        ["experiments", "create"],
        ["experiments", "list"],
        ["experiments", "show"],
        ["experiments", "delete"],
        ["bench"],
        ["bench", "teachers"],
        ["demo"],
        ["demo-toy"],
        ["train"],
        ["evaluate"],
        ["export"],
    ):
        res = cli(*cmd, "--help")
        assert res.returncode == 0, res.stderr
        assert "Usage" in res.stdout


def test_experiments_create_list_show(server) -> None:
    res = cli(
        "experiments",
        "create",
        "--server",
        server.url,
        "--name",
        "walker",
        "--space",
        json.dumps(BOX2),
        "--teacher",
        '{"kind": "alp_gmm", "fit_rate": 100}',
        "--seed",
        "5",
    )
    assert res.returncode == 0, res.stderr
    created = json.loads(res.stdout)
    assert created["name"] == "walker" and created["teacher"]["fit_rate"] == 100
    assert created["seed"] == 5
    res = cli("experiments", "list", "--server", server.url)
    assert res.returncode == 0 and "walker" in res.stdout and "alp_gmm" in res.stdout
    res = cli("experiments", "show", "walker", "--state", "--server", server.url)
    shown = json.loads(res.stdout)
    assert shown["id"] == created["id"] and shown["state"]["teacher_kind"] == "alp_gmm"
    # Creating it again: with --exist-ok the same setup is the same experiment (what a job
    # that may restart does); without it, or with another setup, a message and exit 1.
    again = ["experiments", "create", "--server", server.url, "--name", "walker"]
    again += ["--space", json.dumps(BOX2), "--seed", "5"]
    same = ["--teacher", '{"kind": "alp_gmm", "fit_rate": 100}']
    res = cli(*again, *same, "--exist-ok")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["id"] == created["id"]
    for extra in ([*same], ["--teacher", "random", "--exist-ok"]):
        res = cli(*again, *extra)
        assert res.returncode == 1 and "walker" in res.stderr and "Traceback" not in res.stderr


def test_cli_errors_are_messages_not_tracebacks(server, tmp_path: Path) -> None:
    cases = [
        (
            [
                "experiments",
                "create",
                "--server",
                server.url,
                "--name",
                "x",
                "--space",
                "{not json",
            ],
            "not valid JSON",
        ),
        (
            [
                "experiments",
                "create",
                "--server",
                server.url,
                "--name",
                "x",
                "--space",
                json.dumps(BOX2),
                "--teacher",
                "nope",
            ],
            "nope",
        ),
        (["experiments", "show", "missing", "--server", server.url], "missing"),
        (["experiments", "list", "--server", "http://127.0.0.1:9"], "127.0.0.1:9"),
        (["bench", "teachers", "--teacher", "nope", "--out", str(tmp_path / "x.json")], "nope"),
        # the demo trains on MiniGrid levels: a teacher of discrete task lists is refused
        # before anything starts
        (["demo", "--teacher", "sec", "--db", str(tmp_path / "d.db")], "discrete spaces only"),
        (["demo", "--teacher", "nope", "--db", str(tmp_path / "d.db")], "unknown teacher"),
        (["bench", "teachers", "--variant", "nope", "--out", str(tmp_path / "x.json")], "nope"),
        (["bench", "teachers", "--teacher", '{"kind": "riac", "p_uniform": 2}'], "p_uniform"),
        (
            [
                "experiments",
                "create",
                "--server",
                server.url,
                "--name",
                "y",
                "--space",
                f"@{tmp_path / 'absent.json'}",
            ],
            "not valid JSON",
        ),
    ]
    for args, fragment in cases:
        res = cli(*args)
        assert res.returncode != 0, args
        assert "Traceback" not in res.stderr + res.stdout, res.stderr
        assert "error" in res.stderr.lower() and fragment in res.stderr, (args, res.stderr)
    create_dup = ("experiments", "create", "--server", server.url, "--name", "dup")
    cli(*create_dup, "--space", json.dumps(BOX2))
    res = cli(*create_dup, "--space", json.dumps(BOX2))
    assert res.returncode != 0 and "already exists" in res.stderr and "Traceback" not in res.stderr


def test_bench_teachers_in_process_and_over_http(server, tmp_path: Path) -> None:
    out = tmp_path / "local.json"
    res = cli(
        "bench",
        "teachers",
        "--teacher",
        "random",
        "--teacher",
        '{"kind":"alp_gmm","fit_rate":100,"bootstrap":100}',
        "--variant",
        "base",
        "--variant",
        "dim5",
        "--seeds",
        "2",
        "--episodes",
        "1500",
        "--jobs",
        "2",
        "--out",
        str(out),
    )
    assert res.returncode == 0, res.stderr
    report = json.loads(out.read_text())
    assert report["mode"] == "in-process" and report["machine"]["cores"] >= 1
    assert list(report["results"]) == ["base", "dim5"] and report["jobs"] == 2
    assert report["reference"]["covar_gmm"]["20000"] == 66.9
    for per_variant in report["results"].values():
        assert list(per_variant) == [
            "random",
            '{"bootstrap": 100, "fit_rate": 100, "kind": "alp_gmm"}',
        ]
        for r in per_variant.values():
            assert [run["seed"] for run in r["runs"]] == [0, 1]
            assert r["runs"][0]["curve"][-1][0] == 1500
            assert r["summary"]["final"]["mean"] >= 0 and r["summary"]["wall_s_per_run"] > 0
    table = out.with_suffix(".md").read_text()
    assert "| `random` |" in table and "| teacher | base | dim5 |" in table
    png = out.with_suffix(".png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 10_000
    out2 = tmp_path / "http.json"
    res = cli(
        "bench",
        "teachers",
        "--teacher",
        "random",
        "--variant",
        "base",
        "--seeds",
        "1",
        "--episodes",
        "1000",
        "--jobs",
        "1",
        "--no-plot",
        "--server",
        server.url,
        "--out",
        str(out2),
    )
    assert res.returncode == 0, res.stderr
    http = json.loads(out2.read_text())
    assert http["mode"] == "http" and not out2.with_suffix(".png").exists()
    # Same seed, same teacher: the HTTP path gives exactly the in-process curve.
    local_random = report["results"]["base"]["random"]["runs"][0]["curve"]
    http_random = http["results"]["base"]["random"]["runs"][0]["curve"]
    assert http_random == local_random[: len(http_random)]


def test_demo_runs_a_curriculum_and_stores_every_report(tmp_path: Path) -> None:
    from teacher_service.testing import free_port

    db = tmp_path / "demo.db"
    res = cli(
        "demo-toy", "--episodes", "600", "--db", str(db), "--port", str(free_port()), "--no-serve"
    )
    assert res.returncode == 0, res.stderr
    assert "Reports stored: 600" in res.stdout
    assert "http://127.0.0.1:" in res.stdout and db.exists()
    # the live dashboard's address is printed, pointing at this experiment
    assert re.search(r"live dashboard:\s+http://127\.0\.0\.1:\d+/\?exp=demo-", res.stdout)
