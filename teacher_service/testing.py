"""Run a real teacher service in a subprocess on 127.0.0.1 with a free port (tests, benchmarks)."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx


def free_port() -> int:
    """A TCP port that was free a moment ago on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``autocurriculum serve`` in a subprocess; ``kill()`` sends SIGKILL, ``start()`` restarts.

    Args:
        db: SQLite path or SQLAlchemy URL.
        port: fixed port (restarts reuse it so clients keep their URL); free one by default.
        token: optional bearer token.
        extra: more CLI arguments.
        log_path: where the server's output goes (discarded by default).
        env: more environment variables (e.g. ``AUTOCURRICULUM_LLM_URL``).
    """

    def __init__(
        self,
        db: str,
        port: int | None = None,
        token: str | None = None,
        extra: list[str] | None = None,
        log_path: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        self.db = db
        self.env = env or {}
        self.port = port or free_port()
        self.token = token
        self.extra = extra or []
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 60.0) -> ServerProcess:
        """Start (or restart) the server and wait until ``/healthz`` answers."""
        cmd = [
            sys.executable,
            "-m",
            "teacher_service",
            "serve",
            "--port",
            str(self.port),
            "--db",
            self.db,
            "--log-level",
            "warning",
            *self.extra,
        ]
        if self.token:
            cmd += ["--token", self.token]
        out = open(self.log_path, "ab") if self.log_path else subprocess.DEVNULL
        env = {**os.environ, "PYTHONUNBUFFERED": "1"}
        env.pop("AUTOCURRICULUM_TOKEN", None)
        env.update(self.env)
        self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env)
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.proc.returncode}; see {self.log_path}"
                )
            try:
                if httpx.get(self.url + "/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.05)
        self.kill()
        raise RuntimeError("server did not become healthy in time")

    def kill(self) -> None:
        """SIGKILL: no shutdown hooks run, as in a crash."""
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        """Graceful stop (SIGTERM)."""
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@contextlib.contextmanager
def service_at(url: str | None = None, prefix: str = "autocurriculum-") -> Iterator[str]:
    """Yield ``url`` when given; otherwise start a service on a temporary SQLite file, yield its
    URL, and stop it (and delete the file) afterwards. For examples and quick scripts."""
    if url:
        yield url
        return
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        srv = ServerProcess(f"sqlite:///{Path(tmp) / 'service.db'}", log_path=Path(tmp) / "log")
        srv.start()
        logging.getLogger(__name__).info("started a local teacher service at %s", srv.url)
        try:
            yield srv.url
        finally:
            srv.stop()
