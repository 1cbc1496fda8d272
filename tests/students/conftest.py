"""Fixtures of the student tests: a real server per test, and no ``train`` left running."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from teacher_service.testing import ServerProcess
from tests.students.helpers import stop_started


@pytest.fixture(autouse=True)
def stop_leftover_cli() -> Iterator[None]:
    """A test that fails mid-run must not leave its ``train`` (and its Ray cluster) running."""
    yield
    stop_started()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[ServerProcess]:
    """A teacher service on a SQLite file of the test's own."""
    srv = ServerProcess(f"sqlite:///{tmp_path / 'svc.db'}", log_path=tmp_path / "svc.log")
    srv.start()
    yield srv
    srv.stop()
