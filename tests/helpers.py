"""Test helpers: the servers of :mod:`teacher_service.testing`, one in this process, and the
fit workers of a server process."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

from teacher_service.testing import ServerProcess, free_port

__all__ = [
    "HeldExecutor",
    "ServerProcess",
    "children",
    "fit_workers",
    "free_port",
    "in_process",
    "serve",
]


@contextlib.contextmanager
def in_process(db_url: str, **settings: Any) -> Iterator[httpx.Client]:
    """The app served by uvicorn in a thread of this process (so that tests can patch it),
    and a client of it."""
    from teacher_service.app import create_app
    from teacher_service.settings import Settings

    port = free_port()
    with serve(create_app(Settings(db=db_url, port=port, **settings)), port) as client:
        yield client


@contextlib.contextmanager
def serve(app: Any, port: int | None = None) -> Iterator[httpx.Client]:
    """``app`` served by uvicorn on a free loopback port in a thread, and a client of it."""
    import uvicorn

    port = port or free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 60
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as c:
            yield c
    finally:
        server.should_exit = True
        thread.join(timeout=30)


class HeldExecutor(ThreadPoolExecutor):
    """A one-thread executor whose work starts only once ``gate`` is set (a fit that is
    still running when it falls due)."""

    def __init__(self) -> None:
        super().__init__(max_workers=1)
        self.gate = threading.Event()

    def submit(self, fn, /, *args, **kwargs):
        def held():
            assert self.gate.wait(timeout=60)
            return fn(*args, **kwargs)

        return super().submit(held)


def children(pid: int) -> set[int]:
    """The child processes of ``pid`` (Linux)."""
    out: set[int] = set()
    for task in Path(f"/proc/{pid}/task").iterdir():
        out |= {int(c) for c in (task / "children").read_text().split()}
    return out


def fit_workers(pid: int) -> list[int]:
    """The server's spawned pool workers (not multiprocessing's resource tracker)."""
    found = []
    for child in children(pid):
        try:
            cmd = Path(f"/proc/{child}/cmdline").read_bytes().replace(b"\0", b" ")
        except FileNotFoundError:
            continue
        if b"spawn_main" in cmd:
            found.append(child)
    return found
