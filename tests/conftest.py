"""Shared fixtures: real servers on free loopback ports, SQLite files, PostgreSQL clusters.

The suite is in layers, one folder each, and every test carries its layer's marker:
``unit`` (plain objects, SQLite files), ``service`` (a real server over HTTP, PostgreSQL),
``students`` (torch, gymnasium, Ray), ``browser`` (headless Chromium), ``bench`` (short runs
of the benchmark scripts) and ``stack`` (the docker compose stack, built and run).
``make test-fast`` runs unit and service without ``slow``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.helpers import ServerProcess

BOX2 = {
    "kind": "box",
    "dims": [{"name": "x", "low": 0.0, "high": 1.0}, {"name": "y", "low": 0.0, "high": 1.0}],
}


LAYERS = ("unit", "service", "students", "browser", "bench", "stack")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark each test with the layer its folder is."""
    for item in items:
        layer = Path(str(item.path)).parent.name
        if layer not in LAYERS:
            raise pytest.UsageError(f"{item.nodeid}: tests live in tests/<layer>/, {LAYERS}")
        item.add_marker(layer)


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    """A fresh SQLite database file."""
    return f"sqlite:///{tmp_path / 'ac.db'}"


@pytest.fixture
def server(sqlite_url: str, tmp_path: Path) -> Iterator[ServerProcess]:
    """A running teacher service on SQLite."""
    srv = ServerProcess(sqlite_url, log_path=tmp_path / "server.log").start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServerProcess]:
    """One running teacher service (SQLite) for a module's tests that only add experiments,
    each under names of its own."""
    d = tmp_path_factory.mktemp("shared")
    srv = ServerProcess(f"sqlite:///{d / 'ac.db'}", log_path=d / "server.log").start()
    yield srv
    srv.stop()


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator:
    """Start extra servers; all are stopped at teardown."""
    started: list[ServerProcess] = []

    def make(db: str, **kw) -> ServerProcess:
        srv = ServerProcess(db, log_path=tmp_path / f"server{len(started)}.log", **kw)
        started.append(srv)
        return srv.start()

    yield make
    for s in started:
        s.stop()


@pytest.fixture(scope="session")
def pg_cluster():
    """A throwaway PostgreSQL cluster for the session. Without its binaries the tests that
    need it are skipped, saying why, except under ``CI=true`` (.ci/run installs them), where
    that is a failure."""
    from tests.pg import PgCluster, find_pg_bin

    bin_dir = find_pg_bin()
    if bin_dir is None:
        reason = "PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql"
        if os.environ.get("CI") == "true":
            pytest.fail(f"CI=true but {reason}")
        pytest.skip(reason)
    cluster = PgCluster(bin_dir).start()
    yield cluster
    cluster.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request, tmp_path: Path) -> str:
    """Each storage backend in turn: a fresh SQLite file, then a fresh PostgreSQL database."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'ac.db'}"
    return request.getfixturevalue("pg_cluster").url()
