"""``docker compose up``: the whole stack (PostgreSQL, teacher, Ray head and workers, trainer),
built and run for real with the same docker-compose.yml users run.

Where Docker Hub cannot be reached, the base images are stand-ins built from Debian (a
``debootstrap`` root with python3 for ``BASE_IMAGE``, and Debian's postgresql for the postgres
image), passed through ``tests/stack/compose.standins.yml``; they are built once and kept, as
are the image layers, so a second run only rebuilds what changed. A local CPU torch wheel
(from pip's ``--find-links``) is preferred when there is one. Without a Docker engine the test
is skipped, saying why, except under ``CI=true`` (.ci/run starts one), where that is a failure.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

import httpx
import pytest

from tests.helpers import free_port

REPO = Path(__file__).resolve().parents[2]
HERE = Path(__file__).resolve().parent
PROJECT = "autocurriculum-stack-test"
PYTHON_STANDIN = "autocurriculum-standin/python:bookworm"
POSTGRES_STANDIN = "autocurriculum-standin/postgres:bookworm"
EXPERIMENT = "stack"
SMALL_LEVELS = '{"kind":"level","generator":"minigrid","config":{"size":7,"max_walls":4}}'

pytestmark = pytest.mark.timeout(1200)


def docker_available() -> str | None:
    """Why the stack cannot run here, or None."""
    if shutil.which("docker") is None:
        return "no docker client"
    if compose_command() is None:
        return "neither `docker compose` nor `docker-compose`"
    res = subprocess.run(["docker", "info"], capture_output=True, text=True, timeout=60)
    if res.returncode != 0:
        return f"no Docker engine answers: {res.stderr.strip()[-300:]}"
    return None


def compose_command() -> list[str] | None:
    """``docker compose`` (v2) where installed, else Debian's ``docker-compose``."""
    if shutil.which("docker"):
        v2 = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60)
        if v2.returncode == 0:
            return ["docker", "compose"]
    return ["docker-compose"] if shutil.which("docker-compose") else None


def run(*args: str, timeout: float = 600, check: bool = True, **kw) -> subprocess.CompletedProcess:
    res = subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, **kw)
    if check and res.returncode != 0:
        raise AssertionError(f"{' '.join(args)} -> {res.returncode}\n{res.stderr[-3000:]}")
    return res


def image_exists(name: str) -> bool:
    return run("docker", "image", "inspect", name, check=False).returncode == 0


def ensure_standins() -> None:
    """Build the Debian stand-ins of python:3.12-slim and postgres (once per machine)."""
    if not image_exists(PYTHON_STANDIN):
        if os.geteuid() != 0 or shutil.which("debootstrap") is None:
            pytest.fail(f"{PYTHON_STANDIN} is missing and debootstrap needs root to build it")
        with tempfile.TemporaryDirectory(prefix="standin-") as tmp:
            root = Path(tmp) / "root"
            include = "--include=python3,python3-venv,ca-certificates"
            run("debootstrap", "--variant=minbase", include, "bookworm", str(root),
                "http://deb.debian.org/debian", timeout=900)  # fmt: skip
            # the host's CA bundle: pip inside the builds trusts what the host trusts
            shutil.copy("/etc/ssl/certs/ca-certificates.crt", root / "etc/ssl/certs/")
            tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
            run("docker", "import", "--change", "ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt",
                "-", PYTHON_STANDIN, stdin=tar.stdout)  # fmt: skip
            assert tar.wait() == 0
    if not image_exists(POSTGRES_STANDIN):
        run("docker", "build", "-q", "-t", POSTGRES_STANDIN, str(HERE / "postgres"), timeout=900)


def local_torch_wheel() -> None:
    """Put pip's local CPU torch wheel (if any) where the students image build prefers it."""
    dest = REPO / "docker" / "wheels"
    for folder in filter(None, os.environ.get("PIP_FIND_LINKS", "/opt/wheels").split()):
        for wheel in Path(folder).glob("torch-*+cpu-*.whl"):
            if not (dest / wheel.name).exists():
                shutil.copy(wheel, dest / wheel.name)


class Stack:
    """The compose project, with the environment a user's .env would give."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.token = secrets.token_hex(8)
        self.env = {
            **os.environ,
            "AUTOCURRICULUM_TOKEN": self.token,
            "RAY_AUTH_TOKEN": secrets.token_hex(16),
            "AUTOCURRICULUM_PORT": str(port),
            "EXPERIMENT": EXPERIMENT,
            "TEACHER": "plr",
            "SPACE": SMALL_LEVELS,
            "STEPS": "20000",
            "WORKERS": "2",
            "EVAL_INTERVAL": "0",
            "RAY_WORKER_CPUS": "3",
        }
        files = ["-f", str(REPO / "docker-compose.yml"), "-f", str(HERE / "compose.standins.yml")]
        self.base = [*compose_command(), *files, "-p", PROJECT]

    def __call__(self, *args: str, timeout: float = 900, check: bool = True):
        return run(*self.base, *args, timeout=timeout, check=check, env=self.env, cwd=REPO)

    def container(self, service: str, index: int = 1) -> str:
        ids = self("ps", "-q", service).stdout.split()
        assert len(ids) >= index, f"{service}: {ids}"
        return ids[index - 1]

    def wait_healthy(self, services: list[str], timeout: float = 180) -> None:
        deadline = time.monotonic() + timeout
        while True:
            ids = [i for s in services for i in self("ps", "-q", s).stdout.split()]
            states = [
                run("docker", "inspect", "-f", "{{.State.Health.Status}}", i).stdout.strip()
                for i in ids
            ]
            if ids and all(s == "healthy" for s in states):
                return
            health = dict(zip(ids, states, strict=True))
            assert time.monotonic() < deadline, f"not healthy: {health}"
            time.sleep(2)

    def trainer_result(self, timeout: float = 600) -> tuple[int, dict]:
        """Wait for the one-shot trainer; its exit code and its summary (printed JSON)."""
        trainer = self.container("trainer")
        code = int(run("docker", "wait", trainer, timeout=timeout).stdout.strip())
        logs = run("docker", "logs", trainer)
        # stdout is the summary (JSON); progress goes to stderr
        try:
            return code, json.loads(logs.stdout)
        except json.JSONDecodeError:
            why = f"exit {code}\n{logs.stdout[-2000:]}\n{logs.stderr[-3000:]}"
            raise AssertionError(why) from None

    def api(self) -> httpx.Client:
        return httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}",
            headers={"Authorization": f"Bearer {self.token}"},
            timeout=30,
        )

    def reports_in_postgres(self) -> int:
        sql = (
            "select coalesce(sum(json_array_length(convert_from(payload, 'UTF8')::json"
            "->'reports')), 0) from events where kind = 'reports'"
        )
        out = self("exec", "-T", "postgres", "psql", "-U", "autocurriculum", "-d",
                   "autocurriculum", "-tAc", sql).stdout  # fmt: skip
        return int(out.strip())


@pytest.fixture(scope="module")
def stack() -> Stack:
    why = docker_available()
    if why is not None:
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {why}")
        pytest.skip(why)
    ensure_standins()
    local_torch_wheel()
    s = Stack(free_port())
    s("down", "-v", "--remove-orphans", check=False)
    s("build", timeout=1800)
    yield s
    s("down", "-v", "--remove-orphans", check=False)


def test_the_stack_trains_persists_and_survives_a_lost_worker(stack: Stack) -> None:
    # Everything comes up healthy; the trainer trains over the compose network and exits 0.
    stack("up", "-d", "--scale", "ray-worker=2")
    stack.wait_healthy(["postgres", "teacher", "ray-head", "ray-worker"])
    assert httpx.get(f"http://127.0.0.1:{stack.port}/", timeout=30).status_code == 200
    code, summary = stack.trainer_result()
    assert code == 0, summary
    assert summary["env_steps"] >= 20000 and summary["episodes"] > 0
    with stack.api() as c:
        counters = c.get(f"/v1/experiments/{EXPERIMENT}").json()["counters"]
    # Every episode the trainer counted is a report the teacher stored in PostgreSQL.
    assert counters["reports_accepted"] == summary["episodes"] == stack.reports_in_postgres()

    # down then up keeps the experiment and its history (the named volume).
    stack("down")
    stack("up", "-d", "--scale", "ray-worker=2", "postgres", "teacher")
    stack.wait_healthy(["postgres", "teacher"])
    with stack.api() as c:
        again = c.get(f"/v1/experiments/{EXPERIMENT}").json()["counters"]
    assert again["reports_accepted"] == counters["reports_accepted"]
    assert stack.reports_in_postgres() == summary["episodes"]

    # A second run continues the experiment (--exist-ok); killing one Ray worker node mid-run
    # does not stop it.
    stack.env["STEPS"] = "40000"
    stack("up", "-d", "--scale", "ray-worker=2")
    stack.wait_healthy(["ray-head", "ray-worker"])
    deadline = time.monotonic() + 300
    with stack.api() as c:
        while (
            c.get(f"/v1/experiments/{EXPERIMENT}").json()["counters"]["reports_accepted"]
            < counters["reports_accepted"] + 50
        ):
            assert time.monotonic() < deadline, stack("logs", "--tail=50", "trainer").stdout
            time.sleep(2)
    run("docker", "kill", stack.container("ray-worker", 2))
    code, summary2 = stack.trainer_result()
    assert code == 0, summary2
    assert summary2["env_steps"] >= 40000 and summary2["worker_failures"] >= 1
    with stack.api() as c:
        final = c.get(f"/v1/experiments/{EXPERIMENT}").json()["counters"]["reports_accepted"]
    # the killed node's unsent reports are lost (their tasks expire), nothing else
    assert (
        counters["reports_accepted"] < final <= counters["reports_accepted"] + summary2["episodes"]
    )
    assert stack.reports_in_postgres() == final

    # down -v wipes it.
    stack("down", "-v")
    stack("up", "-d", "postgres", "teacher")
    stack.wait_healthy(["postgres", "teacher"])
    with stack.api() as c:
        assert c.get(f"/v1/experiments/{EXPERIMENT}").status_code == 404


def test_the_service_image_has_neither_torch_nor_ray(stack: Stack) -> None:
    code = (
        "import importlib.util as u, os; "
        "found = [m for m in ('torch', 'ray', 'gymnasium', 'minigrid') if u.find_spec(m)]; "
        "assert not found, found; assert os.getuid() != 0; "
        "import teacher_service.app, psycopg"
    )
    run(
        "docker",
        "run",
        "--rm",
        "--entrypoint",
        "python3",
        "autocurriculum-service:latest",
        "-c",
        code,
    )
    size = int(
        run("docker", "image", "inspect", "-f", "{{.Size}}", "autocurriculum-service:latest").stdout
    )
    print(f"service image: {size / 1e6:.0f} MB")
