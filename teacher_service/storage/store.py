"""The store: SQLAlchemy 2 over SQLite (default, WAL) or PostgreSQL, one code path.

All writes go through one writer thread that drains a queue and commits whatever has
accumulated in a single transaction (group commit), in queue order. Callers get a
``concurrent.futures.Future`` that resolves once their write is durable: the HTTP layer
acknowledges only then (write-ahead). Because the queue is ordered and each experiment
enqueues under its own lock, the log on disk is always a prefix of what was enqueued.
Snapshots are packed to bytes on a thread of their own before they join the queue, so that
encoding a large state never holds up the commits of events.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import queue
import threading
import time
from collections.abc import Callable, Collection, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from sqlalchemy import create_engine, delete, event, func, insert, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from teacher_service.storage.codec import pack_state, unpack_state
from teacher_service.storage.tables import (
    agents,
    evaluations,
    events,
    experiments,
    metadata,
    snapshots,
)

log = logging.getLogger(__name__)


class StorageError(RuntimeError):
    """The database could not durably write or read something."""


class DuplicateNameError(StorageError):
    """An experiment with that name already exists in the database."""


class ExperimentGoneError(StorageError):
    """A write of an experiment that was deleted (refused: it would leave orphan rows)."""


@dataclass(frozen=True, slots=True)
class ExperimentRecord:
    """An experiment as stored: its id, unique name, creation spec (JSON) and time."""

    id: str
    name: str
    spec: dict[str, Any]
    created_at: float


@dataclass(frozen=True, slots=True)
class EventRow:
    """One entry of an experiment's log."""

    seq: int
    kind: str
    payload: bytes
    created_at: float


@dataclass(frozen=True, slots=True)
class AgentRecord:
    """An agent checkpoint's metadata as stored (the bytes are read separately)."""

    agent_id: str
    version: int  # 1 for the first upload, +1 for each later one
    size: int  # bytes
    sha256: str  # lowercase hex
    updated_at: float


@dataclass(slots=True)
class _Op:
    # "event" | "snapshot" | "experiment" | "evaluations" | "agent" | "delete" | "barrier"
    kind: str
    experiment_id: str
    seq: int
    data: Any
    future: Future
    created_at: float
    result: Any = None  # what the future resolves to (a snapshot's size, an AgentRecord)


_STOP = object()
#: The columns of an agent checkpoint's metadata, in AgentRecord's field order.
_AGENT_META = (
    agents.c.agent_id,
    agents.c.version,
    agents.c.size,
    agents.c.sha256,
    agents.c.updated_at,
)
#: Writes that make up an experiment's log: after one fails, later ones are refused.
_LOGGED = frozenset({"event", "snapshot"})
#: Writes refused once their experiment is deleted (they would leave orphan rows).
_OF_EXPERIMENT = frozenset({"event", "snapshot", "evaluations", "agent"})
#: Every table holding rows of an experiment (what a delete removes).
_EXPERIMENT_TABLES = (
    (events, events.c.experiment_id),
    (snapshots, snapshots.c.experiment_id),
    (evaluations, evaluations.c.experiment_id),
    (agents, agents.c.experiment_id),
    (experiments, experiments.c.id),
)


def _is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def _copy_outcome(src: Future, dst: Future) -> None:
    """Give ``dst`` the result or exception of the finished ``src``."""
    exc = src.exception()
    if exc is not None:
        dst.set_exception(exc)
    else:
        dst.set_result(src.result())


#: Columns of a log entry, in the order :meth:`Store._insert_events` takes them.
_EVENT_COLUMNS = ("experiment_id", "seq", "kind", "payload", "created_at")
#: Rows per multi-row INSERT (5 parameters each: far below SQLite's and PostgreSQL's limits).
_EVENT_CHUNK = 100
#: The positional placeholder of each driver parameter style taken by the fast insert.
_PLACEHOLDER = {"qmark": "?", "format": "%s", "pyformat": "%s"}


class Store:
    """Durable event log, snapshots and experiment records.

    Args:
        url: SQLAlchemy URL, e.g. ``sqlite:///runs/ac.db`` or
            ``postgresql+psycopg://user@127.0.0.1:5432/db``.
        sqlite_synchronous: SQLite ``synchronous`` pragma. ``NORMAL`` (default) in WAL mode
            survives a killed process (SIGKILL) without losing committed data; ``FULL``
            also survives power loss at some cost in latency.
        keep_snapshots: snapshots kept per experiment (older ones are deleted); more than
            one lets a corrupted latest snapshot fall back to the one before.
        max_group: most queued writes committed in one transaction.
    """

    def __init__(
        self,
        url: str,
        *,
        sqlite_synchronous: str = "NORMAL",
        keep_snapshots: int = 2,
        max_group: int = 512,
    ) -> None:
        if sqlite_synchronous.upper() not in {"OFF", "NORMAL", "FULL", "EXTRA"}:
            raise ValueError(
                f"sqlite_synchronous must be OFF/NORMAL/FULL/EXTRA, got {sqlite_synchronous!r}"
            )
        self.url = url
        self.keep_snapshots = max(1, keep_snapshots)
        self.max_group = max_group
        self.engine = self._make_engine(url, sqlite_synchronous.upper())
        metadata.create_all(self.engine)
        self._queue: queue.Queue[Any] = queue.Queue()
        # The writer's own connection, kept across transactions (a pool checkout and return
        # per transaction cost as much as inserting a few events); only the writer uses it.
        self._conn: Connection | None = None
        self._insert_sql: dict[int, str] = {}
        self._thread = threading.Thread(target=self._writer, name="store-writer", daemon=True)
        # Snapshots are packed here, off the writer thread, so the commits of events queued
        # meanwhile do not wait behind the encoding of a large state (barriers pass through
        # it too, so that they still follow every snapshot queued before them).
        self._packer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="store-packer")
        self._closed = False
        # Experiments with a failed write: their later writes are refused until the runtime
        # has rebuilt from the log (reset_failure), so the log never gets a gap.
        self._failed: set[str] = set()
        # Deleted experiments: their later writes are refused (ids are never reused).
        self._deleted: set[str] = set()
        self._thread.start()

    @staticmethod
    def _make_engine(url: str, synchronous: str) -> Engine:
        if _is_sqlite(url):
            engine = create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=8,
                max_overflow=8,
            )

            @event.listens_for(engine, "connect")
            def _pragmas(dbapi_conn: Any, _record: Any) -> None:
                cur = dbapi_conn.cursor()
                cur.execute("PRAGMA journal_mode=WAL")
                cur.execute(f"PRAGMA synchronous={synchronous}")
                cur.execute("PRAGMA busy_timeout=30000")
                cur.close()

            return engine
        return create_engine(url, pool_pre_ping=True, pool_size=8, max_overflow=8)

    # ------------------------------------------------------------------ writes
    def _submit(self, op_kind: str, experiment_id: str, seq: int, data: Any) -> Future:
        if self._closed:
            raise StorageError("store is closed")
        fut: Future = Future()
        self._queue.put(_Op(op_kind, experiment_id, seq, data, fut, time.time()))
        return fut

    def append_event(self, experiment_id: str, seq: int, kind: str, payload: bytes) -> Future:
        """Queue one log entry; the future resolves when it is committed."""
        return self._submit("event", experiment_id, seq, (kind, payload))

    def put_snapshot(self, experiment_id: str, seq: int, state: Any) -> Future:
        """Queue a snapshot of the state after event ``seq``; the future resolves to its size
        in bytes once it is committed.

        The state is packed on a thread of its own and then queued for the writer, behind the
        events queued meanwhile (a snapshot after event ``seq`` may be written after later
        events; a restore replays whatever follows it). ``state`` must not change after the
        call.
        """
        return self._via_packer(
            lambda: self._submit("snapshot", experiment_id, seq, pack_state(state))
        )

    def _via_packer(self, make: Callable[[], Future]) -> Future:
        """A future for ``make()``'s future, ``make`` run on the packer thread in order.

        Raises:
            StorageError: the store is closed.
        """
        if self._closed:
            raise StorageError("store is closed")
        out: Future = Future()

        def run() -> None:
            try:
                inner = make()
            except Exception as exc:  # a state that cannot be packed, a store closed meanwhile
                out.set_exception(exc)
                return
            inner.add_done_callback(lambda f: _copy_outcome(f, out))

        self._packer.submit(run)
        return out

    def create_experiment(self, record: ExperimentRecord) -> Future:
        """Queue the insertion of an experiment record."""
        return self._submit("experiment", record.id, 0, record)

    def add_evaluations(self, experiment_id: str, payloads: list[str]) -> Future:
        """Queue evaluation results (JSON strings) of an experiment."""
        return self._submit("evaluations", experiment_id, 0, payloads)

    def put_agent(
        self, experiment_id: str, agent_id: str, data: bytes, sha256: str | None = None
    ) -> Future:
        """Queue an upload of an agent's checkpoint, replacing the stored one.

        Args:
            experiment_id: the experiment's id.
            agent_id: the agent's id (validated by the caller).
            data: the checkpoint's bytes.
            sha256: their SHA-256 (lowercase hex) when the caller already computed it.

        Returns:
            A future resolving to the stored :class:`AgentRecord` (its new ``version``)
            once the upload is committed.
        """
        digest = sha256 or hashlib.sha256(data).hexdigest()
        return self._submit("agent", experiment_id, 0, (agent_id, bytes(data), digest))

    def get_agent(self, experiment_id: str, agent_id: str) -> tuple[AgentRecord, bytes] | None:
        """The latest checkpoint of an agent (metadata, bytes), or ``None`` if none is stored."""
        t = agents.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(*_AGENT_META, t.data).where(
                    t.experiment_id == experiment_id, t.agent_id == agent_id
                )
            ).one_or_none()
        if row is None:
            return None
        return AgentRecord(*row[:-1]), bytes(row.data)

    def agent_info(self, experiment_id: str, agent_id: str) -> AgentRecord | None:
        """An agent's metadata without reading its bytes, or ``None`` if none is stored."""
        t = agents.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(*_AGENT_META).where(t.experiment_id == experiment_id, t.agent_id == agent_id)
            ).one_or_none()
        return None if row is None else AgentRecord(*row)

    def list_agents(self, experiment_id: str) -> list[AgentRecord]:
        """Metadata of every stored agent of the experiment, by agent id (no bytes read)."""
        t = agents.c
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(*_AGENT_META).where(t.experiment_id == experiment_id).order_by(t.agent_id)
            ).all()
        return [AgentRecord(*r) for r in rows]

    def list_evaluations(self, experiment_id: str, limit: int = 10_000) -> list[tuple[str, float]]:
        """The experiment's evaluation results (JSON, time), oldest first, at most ``limit``
        of the newest."""
        with self.engine.connect() as conn:
            rows = conn.execute(
                select(evaluations.c.payload, evaluations.c.created_at)
                .where(evaluations.c.experiment_id == experiment_id)
                .order_by(evaluations.c.id.desc())
                .limit(limit)
            ).all()
        return [(r.payload, r.created_at) for r in reversed(rows)]

    def evaluation_bounds(self, experiment_id: str) -> tuple[int, int]:
        """(count, highest row id) of the experiment's stored evaluations."""
        with self.engine.connect() as conn:
            count, top = conn.execute(
                select(func.count(evaluations.c.id), func.max(evaluations.c.id)).where(
                    evaluations.c.experiment_id == experiment_id
                )
            ).one()
        return int(count or 0), int(top or 0)

    def iter_evaluations(
        self, experiment_id: str, after_id: int = 0, chunk: int = 2000
    ) -> Iterator[tuple[int, str, float]]:
        """Yield ``(row id, payload JSON, time)`` of the experiment's evaluations with
        ``row id > after_id``, in arrival order, in chunks (for incremental readers)."""
        t = evaluations.c
        cols = (t.id, t.payload, t.created_at)
        for r in self._paged(cols, t.id, t.experiment_id == experiment_id, after_id, chunk):
            yield r.id, r.payload, r.created_at

    def _paged(
        self, columns: tuple[Any, ...], key: Any, where: Any, after: int, chunk: int
    ) -> Iterator[Any]:
        """Rows with ``key > after`` in key order, read ``chunk`` at a time (keyset
        pagination: each query is short, so readers never hold a long transaction)."""
        last = after
        while True:
            with self.engine.connect() as conn:
                res = conn.execute(
                    select(*columns).where(where, key > last).order_by(key).limit(chunk)
                ).all()
            if not res:
                return
            yield from res
            last = getattr(res[-1], key.name)

    def delete_experiment(self, experiment_id: str) -> Future:
        """Queue the deletion of an experiment and of every row stored for it (its record,
        log, snapshots, evaluations and agents), in one transaction, after every write
        queued before it. Once it is committed, later writes of the experiment are refused
        with :class:`ExperimentGoneError`, so none can leave orphan rows. The future resolves
        to ``None`` once the deletion is committed (or fails with :class:`StorageError`)."""
        return self._submit("delete", experiment_id, 0, None)

    def barrier(self) -> Future:
        """A future that resolves once everything queued before it is committed (snapshots
        being packed included)."""
        return self._via_packer(lambda: self._submit("barrier", "", 0, None))

    def _writer(self) -> None:
        try:
            self._write_until_stopped()
        finally:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()

    def _write_until_stopped(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            ops = [first]
            stop = False
            while len(ops) < self.max_group:
                try:
                    nxt = self._queue.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP:
                    stop = True
                    break
                ops.append(nxt)
            self._commit_group(ops)
            if stop:
                return

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[Connection]:
        """A transaction on the writer's connection, opened on first use and again after a
        failed transaction (which closes it: a dropped connection is not reused)."""
        if self._conn is None:
            self._conn = self.engine.connect()
        conn = self._conn
        try:
            with conn.begin():
                yield conn
        except BaseException:
            self._conn = None
            with contextlib.suppress(Exception):  # a dead connection may fail to close too
                conn.close()
            raise

    def reset_failure(self, experiment_id: str) -> None:
        """Accept writes of this experiment again (call after :meth:`barrier` and a rebuild)."""
        self._failed.discard(experiment_id)

    def _refused(self, op: _Op) -> bool:
        """Fail ``op`` if its experiment was deleted, or had a failed write (see
        :meth:`reset_failure`)."""
        if op.kind in _OF_EXPERIMENT and op.experiment_id in self._deleted:
            op.future.set_exception(
                ExperimentGoneError(f"experiment {op.experiment_id} was deleted")
            )
            return True
        if op.kind in _LOGGED and op.experiment_id in self._failed:
            op.future.set_exception(StorageError("an earlier write of this experiment failed"))
            return True
        return False

    def _commit_group(self, ops: list[_Op]) -> None:
        # A delete commits in a transaction of its own, between the writes queued before it
        # and those queued after it (which it may refuse).
        start = 0
        for i, op in enumerate(ops):
            if op.kind == "delete":
                self._commit_writes(ops[start:i])
                self._commit_delete(op)
                start = i + 1
        self._commit_writes(ops[start:])

    def _commit_delete(self, op: _Op) -> None:
        """Delete every row of an experiment in one transaction (transient failures are
        retried); after the commit, refuse the experiment's later writes."""
        for attempt in range(3):
            try:
                with self._transaction() as conn:
                    self._delete_rows(conn, op.experiment_id)
            except Exception as exc:  # the writer thread must survive anything
                log.warning(
                    "delete of %s failed (attempt %d): %s", op.experiment_id, attempt + 1, exc
                )
                if isinstance(exc, SQLAlchemyError) and attempt < 2:
                    time.sleep(0.1 * 5**attempt)
                    continue
                op.future.set_exception(StorageError(f"delete failed, nothing deleted: {exc}"))
                return
            self._deleted.add(op.experiment_id)
            self._failed.discard(op.experiment_id)
            op.future.set_result(None)
            return

    @staticmethod
    def _delete_rows(conn: Any, experiment_id: str) -> None:
        for table, column in _EXPERIMENT_TABLES:
            conn.execute(delete(table).where(column == experiment_id))

    def _commit_writes(self, ops: list[_Op]) -> None:
        ops = [op for op in ops if not self._refused(op)]
        if not ops:
            return
        # Transient failures (a dropped PostgreSQL connection) are retried as a group.
        for attempt in range(3):
            try:
                with self._transaction() as conn:
                    self._write_ops(conn, ops)
            except IntegrityError:
                break  # not transient: isolate the offending op below
            except SQLAlchemyError as exc:
                log.warning("group commit failed (attempt %d): %s", attempt + 1, exc)
                time.sleep(0.1 * 5**attempt)
                continue
            for op in ops:
                op.future.set_result(op.result)
            return
        self._commit_one_by_one(ops)

    def _commit_one_by_one(self, ops: list[_Op]) -> None:
        # Once an experiment's event fails, its later events must fail too: the log must
        # stay a gap-free prefix of what the runtime did (the runtime then reloads).
        failed = self._failed
        for op in ops:
            if self._refused(op):
                continue
            try:
                with self._transaction() as conn:
                    self._write_ops(conn, [op])
            except IntegrityError as exc:
                if op.kind == "experiment":
                    op.future.set_exception(DuplicateNameError(f"name {op.data.name!r} is taken"))
                else:
                    if op.kind in _LOGGED:
                        failed.add(op.experiment_id)
                    op.future.set_exception(StorageError(f"integrity error: {exc.orig}"))
            except Exception as exc:
                if op.kind in _LOGGED:  # evaluations are not part of the teacher's log
                    failed.add(op.experiment_id)
                log.error("write failed for %s %s: %s", op.kind, op.experiment_id, exc)
                op.future.set_exception(StorageError(str(exc)))
            else:
                op.future.set_result(op.result)

    def _write_ops(self, conn: Any, ops: list[_Op]) -> None:
        rows: list[tuple[str, int, str, bytes, float]] = []
        for op in ops:
            if op.kind == "event":
                kind, payload = op.data
                rows.append((op.experiment_id, op.seq, kind, payload, op.created_at))
                continue
            if rows:  # keep queue order: flush events before any other write
                self._insert_events(conn, rows)
                rows = []
            if op.kind == "snapshot":
                data = op.data
                op.result = len(data)
                conn.execute(
                    insert(snapshots).values(
                        experiment_id=op.experiment_id,
                        seq=op.seq,
                        data=data,
                        created_at=op.created_at,
                    )
                )
                keep = (
                    select(snapshots.c.seq)
                    .where(snapshots.c.experiment_id == op.experiment_id)
                    .order_by(snapshots.c.seq.desc())
                    .limit(self.keep_snapshots)
                )
                kept = [r[0] for r in conn.execute(keep)]
                conn.execute(
                    delete(snapshots).where(
                        snapshots.c.experiment_id == op.experiment_id, snapshots.c.seq < min(kept)
                    )
                )
            elif op.kind == "evaluations":
                conn.execute(
                    insert(evaluations),
                    [
                        {
                            "experiment_id": op.experiment_id,
                            "payload": payload,
                            "created_at": op.created_at,
                        }
                        for payload in op.data
                    ],
                )
            elif op.kind == "agent":
                op.result = self._write_agent(conn, op)
            elif op.kind == "experiment":
                rec: ExperimentRecord = op.data
                conn.execute(
                    insert(experiments).values(
                        id=rec.id,
                        name=rec.name,
                        spec=json.dumps(rec.spec),
                        created_at=rec.created_at,
                    )
                )
        if rows:
            self._insert_events(conn, rows)

    def _insert_events(
        self, conn: Connection, rows: list[tuple[str, int, str, bytes, float]]
    ) -> None:
        """Insert log entries, ``(experiment_id, seq, kind, payload, created_at)`` each.

        One multi-row ``INSERT`` per chunk, as the driver's own SQL: an ``executemany``
        through SQLAlchemy costs a statement step per row and Python per row, the largest
        part of the writer's work per request. Drivers with other parameter styles than
        SQLite's and psycopg's take the portable path.
        """
        mark = _PLACEHOLDER.get(conn.dialect.paramstyle)
        if mark is None:
            conn.execute(insert(events), [dict(zip(_EVENT_COLUMNS, r, strict=True)) for r in rows])
            return
        for start in range(0, len(rows), _EVENT_CHUNK):
            chunk = rows[start : start + _EVENT_CHUNK]
            sql = self._insert_sql.get(len(chunk))
            if sql is None:
                row = "(" + ", ".join([mark] * len(_EVENT_COLUMNS)) + ")"
                sql = (
                    f"INSERT INTO {events.name} ({', '.join(_EVENT_COLUMNS)}) VALUES "
                    + ", ".join([row] * len(chunk))
                )
                self._insert_sql[len(chunk)] = sql
            conn.exec_driver_sql(sql, tuple(v for r in chunk for v in r))

    @staticmethod
    def _write_agent(conn: Any, op: _Op) -> AgentRecord:
        """Replace an agent's checkpoint: read its version, delete the row, insert the next
        version (portable upsert; race-free because only the writer thread writes)."""
        agent_id, data, digest = op.data
        t = agents.c
        where = (t.experiment_id == op.experiment_id, t.agent_id == agent_id)
        current = conn.execute(select(*_AGENT_META).where(*where)).one_or_none()
        if current is not None and current.sha256 == digest:
            return AgentRecord(*current)  # the same bytes again (a retried PUT): unchanged
        version = (current.version if current is not None else 0) + 1
        if current is not None:
            conn.execute(delete(agents).where(*where))
        conn.execute(
            insert(agents).values(
                experiment_id=op.experiment_id,
                agent_id=agent_id,
                data=data,
                sha256=digest,
                size=len(data),
                version=version,
                updated_at=op.created_at,
            )
        )
        return AgentRecord(agent_id, version, len(data), digest, op.created_at)

    # ------------------------------------------------------------------- reads
    def list_experiments(self) -> list[ExperimentRecord]:
        """Every stored experiment, oldest first."""
        with self.engine.connect() as conn:
            res = conn.execute(
                select(experiments).order_by(experiments.c.created_at, experiments.c.id)
            )
            return [ExperimentRecord(r.id, r.name, json.loads(r.spec), r.created_at) for r in res]

    def snapshots_newest_first(self, experiment_id: str) -> Iterator[tuple[int, Callable[[], Any]]]:
        """Yield ``(seq, load)`` for each stored snapshot, newest first; ``load()`` decodes it."""
        with self.engine.connect() as conn:
            seqs = [
                r[0]
                for r in conn.execute(
                    select(snapshots.c.seq)
                    .where(snapshots.c.experiment_id == experiment_id)
                    .order_by(snapshots.c.seq.desc())
                )
            ]
        for seq in seqs:

            def load(seq: int = seq) -> Any:
                with self.engine.connect() as conn:
                    data = conn.execute(
                        select(snapshots.c.data).where(
                            snapshots.c.experiment_id == experiment_id, snapshots.c.seq == seq
                        )
                    ).scalar_one()
                return unpack_state(bytes(data))

            yield seq, load

    def iter_events(
        self, experiment_id: str, after_seq: int = 0, chunk: int = 2000
    ) -> Iterator[EventRow]:
        """Yield the experiment's events with ``seq > after_seq`` in order, in chunks."""
        t = events.c
        cols = (t.seq, t.kind, t.payload, t.created_at)
        for r in self._paged(cols, t.seq, t.experiment_id == experiment_id, after_seq, chunk):
            yield EventRow(r.seq, r.kind, bytes(r.payload), r.created_at)

    def first_event_not_in(
        self, experiment_id: str, kinds: Collection[str], *, up_to_seq: int
    ) -> tuple[int, str] | None:
        """``(seq, kind)`` of the experiment's first event with ``seq <= up_to_seq`` whose
        kind is not one of ``kinds``, or ``None``; one query that reads no payload."""
        t = events.c
        with self.engine.connect() as conn:
            row = conn.execute(
                select(t.seq, t.kind)
                .where(t.experiment_id == experiment_id, t.seq <= up_to_seq)
                .where(t.kind.not_in(sorted(kinds)))
                .order_by(t.seq)
                .limit(1)
            ).one_or_none()
        return None if row is None else (int(row.seq), str(row.kind))

    def close(self) -> None:
        """Commit what is queued, stop the writer and dispose of the engine."""
        if self._closed:
            return
        self._packer.shutdown(wait=True)  # its snapshots and barriers reach the queue first
        self._closed = True
        self._queue.put(_STOP)
        self._thread.join(timeout=60)
        self.engine.dispose()
