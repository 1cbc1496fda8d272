"""The store's writer thread on SQLite and PostgreSQL: a group of log entries larger than one
multi-row INSERT is stored whole and in order, and a connection the database dropped is
replaced by the next transaction, the write being retried."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from sqlalchemy import create_engine, text

from teacher_service.storage import Store
from teacher_service.storage.store import _EVENT_CHUNK

N = 2 * _EVENT_CHUNK + 50  # three INSERTs: two full chunks and a partial one


def entry(seq: int) -> tuple[str, bytes]:
    """The (kind, payload) of log entry ``seq``: payloads of varied length and every byte."""
    return ("report" if seq % 3 else "issue", bytes(range(seq % 256)) + seq.to_bytes(4, "big"))


def test_a_group_of_many_entries_is_stored_whole_and_in_order(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = Store(db_url)
    try:
        # Hold the writer inside its first group, so that the next N entries queue up and
        # are committed as one group.
        entered, release = threading.Event(), threading.Event()
        commit_group = store._commit_group
        inserted: list[int] = []

        def held(ops: list[Any]) -> None:
            if not entered.is_set():
                entered.set()
                assert release.wait(30)
            commit_group(ops)

        insert_events = store._insert_events

        def counted(conn: Any, rows: list[Any]) -> None:
            inserted.append(len(rows))
            insert_events(conn, rows)

        monkeypatch.setattr(store, "_commit_group", held)
        monkeypatch.setattr(store, "_insert_events", counted)
        first = store.append_event("e", 1, *entry(1))
        assert entered.wait(30)
        futures = [store.append_event("e", seq, *entry(seq)) for seq in range(2, N + 2)]
        release.set()
        for fut in [first, *futures]:
            assert fut.result(timeout=30) is None
        assert inserted == [1, N]  # the held entry, then the rest as one group
        rows = list(store.iter_events("e"))
        assert [r.seq for r in rows] == list(range(1, N + 2))
        assert [(r.kind, r.payload) for r in rows] == [entry(s) for s in range(1, N + 2)]
        assert all(isinstance(r.created_at, float) and r.created_at > 0 for r in rows)
    finally:
        store.close()


def test_an_entry_already_stored_fails_alone_and_the_rest_of_its_group_commits(
    db_url: str,
) -> None:
    store = Store(db_url)
    try:
        assert store.append_event("e", 1, *entry(1)).result(timeout=30) is None
        # Queued together: a new entry, a repeat of seq 1 (refused), another experiment's.
        ok = store.append_event("f", 1, *entry(1))
        dup = store.append_event("e", 1, *entry(2))
        other = store.append_event("g", 1, *entry(3))
        assert ok.result(timeout=30) is None and other.result(timeout=30) is None
        with pytest.raises(Exception, match="integrity"):
            dup.result(timeout=30)
        assert [(r.seq, r.payload) for r in store.iter_events("e")] == [(1, entry(1)[1])]
        assert len(list(store.iter_events("f"))) == len(list(store.iter_events("g"))) == 1
    finally:
        store.close()


@pytest.mark.postgres
def test_a_connection_the_database_dropped_is_replaced(pg_cluster) -> None:
    url = pg_cluster.url()
    store = Store(url)
    admin = create_engine(url)
    try:
        assert store.append_event("e", 1, *entry(1)).result(timeout=30) is None
        writer_pid = store._conn.connection.dbapi_connection.info.backend_pid  # type: ignore[union-attr]
        with admin.connect() as conn:
            assert conn.execute(text("SELECT pg_terminate_backend(:p)"), {"p": writer_pid}).scalar()
        # The first attempt fails on the dead connection; the retry opens a new one.
        assert store.append_event("e", 2, *entry(2)).result(timeout=30) is None
        assert store._conn is not None
        assert store._conn.connection.dbapi_connection.info.backend_pid != writer_pid  # type: ignore[union-attr]
        assert [r.seq for r in store.iter_events("e")] == [1, 2]
    finally:
        store.close()
        admin.dispose()
