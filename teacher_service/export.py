"""An experiment's full history as rows, for analysis in pandas (``GET .../export``).

The export is built from the durable event log (docs/architecture.md#runtime-and-storage)
and the stored evaluations, read in chunks and streamed as ``bytes`` chunks, so memory stays
bounded whatever the length of the history. Two formats:

- **JSON lines** (``jsonl``, always available): one JSON object per line.
- **Parquet** (``parquet``, needs ``pip install 'autocurriculum[export]'``, i.e. pyarrow):
  one fixed schema for all rows, nullable columns, written in row groups of
  ``row_group_rows`` rows (10 000 by default).

Rows
----
The first JSONL line is a header ``{"type": "experiment", ...}`` with the keys ``version``
(of this format, 1), ``id``, ``name``, ``spec`` (the creation body: space, teacher, seed,
lease), ``created_at``, ``exported_at``, ``last_seq`` (the last event included),
``evaluations`` (how many evaluation rows follow the log) and ``counters`` (the experiment's
counters as of ``last_seq``). In Parquet the same header is the JSON value of the file's
schema metadata key ``autocurriculum.export``; :func:`~teacher_service.client.read_export`
returns it as the first row in both cases.

Then the rows: one per task issued, report accepted, task expired, addition of tasks to the
space and evaluation stored.

======================  ==================================================================
``type``                keys (every row also has ``type``, ``seq``, ``time``)
======================  ==================================================================
``task`` (per issued)   ``task_id``, ``index``, ``worker``, ``deadline`` (lease end, unix
                        time), ``mode``, ``params``, ``level``, ``agent_id``, ``role``,
                        ``init_from``
``report`` (accepted)   ``task_id``, ``index``, ``episode_return``, ``success``, ``length``,
                        ``episodes`` (1 unless sent), ``scores`` (``{}`` unless sent)
``expire`` (per task)   ``task_id``, ``index``
``evaluation``          ``env``, ``episodes``, ``solve_rate``, ``mean_return``,
                        ``env_steps``, ``checkpoint``, ``worker``
``space`` (per call)    ``tasks``: the specs of the tasks that joined a discrete space
======================  ==================================================================

``seq`` is the sequence number of the log event that produced the row (several rows share
one: a batch of tasks or reports is one event); ``time`` is that event's server time (unix
seconds). ``index`` is the task's index in the experiment and ``task_id`` its wire id
(``<experiment id>-<index>``): join reports to their tasks on ``index``. Rows follow log
order; evaluations (not part of the teacher's log) come after it in arrival order, with
``seq`` null and ``time`` the time they were received.

In JSON lines ``params`` and ``scores`` stay nested objects. In Parquet, for a box space,
``params`` becomes one float64 column ``param.<dim>`` per dimension of the experiment's
space; for other spaces it is a JSON text column ``params``. ``scores`` is a JSON text column
(score names are open-ended, and Parquet needs its schema before the first row). Columns a
row type does not use are null. :func:`~teacher_service.client.read_export` (client side)
undoes all of this, so both formats re-import to the same list of dicts.

Consistency: :func:`plan_export` fixes ``last_seq`` and the counters together under the
experiment's lock, and the evaluations included are those stored when the stream starts;
events logged while the export streams are left out, whole.

Events are read through :mod:`teacher_service.event_log`, and the columns above (names,
order, types; :data:`COLUMNS`) are defined once, typed as its events are, in
:mod:`teacher_service.export_format` (no server code, so the client's reader shares it):
JSON lines keys and the Parquet schema are both derived from them. A log holding an event
of a kind this version cannot read fails the export with
:class:`~teacher_service.event_log.UnknownEventError` before its first byte.
"""

from __future__ import annotations

import io
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, assert_never

import orjson

from api_schemas.spaces import BoxSpace
from teacher_service.event_log import (
    ExpireEvent,
    JudgementEvent,
    LoggedEvent,
    ReportEvent,
    SpaceEvent,
    TaskEvent,
    read_events,
    require_known_kinds,
)
from teacher_service.export_format import (
    COLUMNS,
    COMMON_COLUMNS,
    FIELDS,
    FORMAT_VERSION,
    JSON_COLUMNS,
    MEDIA_TYPES,
    PARAM_PREFIX,
    PARQUET_COLUMNS,
    PARQUET_HEADER_KEY,
    PARQUET_HINT,
    Column,
    ExportFormat,
    ExportFormatError,
    parquet_available,
    require_pyarrow,
)

# Private helpers of the format, still reachable here for the tests of how the columns are
# built (tests/unit/test_event_log.py).
from teacher_service.export_format import _columns_of as _columns_of
from teacher_service.export_format import _distinct as _distinct
from teacher_service.runtime import wire_task_id

if TYPE_CHECKING:
    from teacher_service.runtime import ExperimentRuntime
    from teacher_service.storage import Store

# The format's names (defined in teacher_service.export_format) stay importable from here.
__all__ = [
    "COLUMNS",
    "FIELDS",
    "FORMAT_VERSION",
    "MEDIA_TYPES",
    "PARQUET_HEADER_KEY",
    "PARQUET_HINT",
    "Column",
    "ExportFormat",
    "ExportFormatError",
    "ExportPlan",
    "export_filename",
    "iter_export",
    "iter_jsonl",
    "iter_parquet",
    "iter_rows",
    "parquet_available",
    "parquet_schema",
    "plan_export",
]

# The names these had before they moved (and became public), for the tests that use them.
_PARQUET_COLUMNS = PARQUET_COLUMNS
_JSON_COLUMNS = JSON_COLUMNS

log = logging.getLogger(__name__)


# --------------------------------------------------------------------------- plan
@dataclass(frozen=True, slots=True)
class ExportPlan:
    """What one export covers, fixed when it is requested.

    Attributes:
        experiment_id: the experiment's id (its events are keyed by it).
        name: the experiment's unique name.
        spec: its creation body (``ExperimentCreate`` as JSON).
        created_at: its creation time.
        counters: its counters as of ``last_seq``.
        last_seq: the last log event included.
        exported_at: when the export was planned (unix time).
    """

    experiment_id: str
    name: str
    spec: dict[str, Any]
    created_at: float
    counters: dict[str, Any]
    last_seq: int
    exported_at: float = field(default_factory=time.time)

    def box_dims(self) -> list[str] | None:
        """Dimension names when the space is a box (Parquet flattens params), else None."""
        space = self.spec.get("space") or {}
        if space.get("kind") != "box":
            return None
        return [d.name for d in BoxSpace.model_validate(space).dims]

    def header(self, evaluations: int) -> dict[str, Any]:
        """The header row (first JSON line / Parquet metadata)."""
        return {
            "type": "experiment",
            "version": FORMAT_VERSION,
            "id": self.experiment_id,
            "name": self.name,
            "spec": self.spec,
            "created_at": self.created_at,
            "exported_at": self.exported_at,
            "last_seq": self.last_seq,
            "evaluations": evaluations,
            "counters": self.counters,
        }


def plan_export(rt: ExperimentRuntime) -> ExportPlan:
    """Fix what an export of ``rt`` covers: its last event and the counters at that point.

    Both are read under the runtime's lock, so they describe the same prefix of the log.
    Takes the lock: call it off the event loop. Events up to ``last_seq`` may still be in
    the store's write queue; wait on ``store.barrier()`` before streaming.
    """
    last_seq, counters = rt.log_position()
    return ExportPlan(
        experiment_id=rt.id,
        name=rt.name,
        spec=dict(rt.record.spec),
        created_at=rt.record.created_at,
        counters=counters,
        last_seq=last_seq,
    )


# --------------------------------------------------------------------------- rows
def _event_rows(experiment_id: str, logged: LoggedEvent) -> list[dict[str, Any]]:
    """The rows of one log event (see the module docstring), keys in :data:`FIELDS` order."""
    seq, at, ev = logged.seq, logged.time, logged.event
    match ev:
        case TaskEvent():
            return [
                {
                    "type": "task",
                    "seq": seq,
                    "time": at,
                    "task_id": wire_task_id(experiment_id, i),
                    "index": i,
                    "worker": ev.worker,
                    "deadline": ev.deadline,
                    "mode": p.mode.value,
                    "params": p.params,
                    "level": p.level,
                    "agent_id": p.agent_id,
                    "role": p.role,
                    "init_from": p.init_from,
                }
                for i, p in enumerate(ev.tasks, start=ev.first)
            ]
        case ReportEvent():
            return [
                {
                    "type": "report",
                    "seq": seq,
                    "time": at,
                    "task_id": wire_task_id(experiment_id, r.index),
                    "index": r.index,
                    "episode_return": r.episode_return,
                    "success": r.success,
                    "length": r.length,
                    "episodes": r.episodes,
                    "scores": r.scores,
                }
                for r in ev.reports
            ]
        case ExpireEvent():
            return [
                {
                    "type": "expire",
                    "seq": seq,
                    "time": at,
                    "task_id": wire_task_id(experiment_id, i),
                    "index": i,
                }
                for i in ev.indices
            ]
        case SpaceEvent():
            return [{"type": "space", "seq": seq, "time": at, "tasks": list(ev.tasks)}]
        case JudgementEvent():
            return [{"type": "judgement", "seq": seq, "time": at, "judgement": ev.judgement}]
        case _:
            assert_never(ev)


_EVALUATION_KEYS = FIELDS["evaluation"][len(COMMON_COLUMNS) :]


def _evaluation_row(payload: str, received_at: float) -> dict[str, Any]:
    e = json.loads(payload)
    return {
        "type": "evaluation",
        "seq": None,
        "time": received_at,
        **{k: e.get(k) for k in _EVALUATION_KEYS},
    }


def _iter_evaluations(
    store: Store, experiment_id: str, max_id: int, chunk: int
) -> Iterator[dict[str, Any]]:
    """Evaluation rows with id <= ``max_id`` (stored when the export began), oldest first."""
    for row_id, payload, created_at in store.iter_evaluations(experiment_id, chunk=chunk):
        if row_id > max_id:
            return
        yield _evaluation_row(payload, created_at)


def iter_rows(store: Store, plan: ExportPlan, *, chunk: int = 2000) -> Iterator[dict[str, Any]]:
    """The header, then every row of the export in order (reads the database in chunks).

    Args:
        store: the store holding the experiment.
        plan: what to export (from :func:`plan_export`).
        chunk: events (and evaluations) read per query.

    Raises:
        UnknownEventError: the log holds an event this version cannot read (raised before
            the header, so a stream fails before it starts).
    """
    n_evals, max_eval_id = store.evaluation_bounds(plan.experiment_id)
    require_known_kinds(store, plan.experiment_id, up_to_seq=plan.last_seq)
    yield plan.header(n_evals)
    last = 0
    for ev in read_events(store, plan.experiment_id, up_to_seq=plan.last_seq, chunk=chunk):
        last = ev.seq
        yield from _event_rows(plan.experiment_id, ev)
    if last != plan.last_seq:
        # A write that failed after the plan was made (the runtime rebuilds from the log).
        log.warning(
            "export of %s: the log ends at event %d, not %d", plan.name, last, plan.last_seq
        )
    yield from _iter_evaluations(store, plan.experiment_id, max_eval_id, chunk)


# ------------------------------------------------------------------- JSON lines
def iter_jsonl(
    store: Store, plan: ExportPlan, *, chunk_bytes: int = 256 * 1024, chunk: int = 2000
) -> Iterator[bytes]:
    """The export as JSON lines, in chunks of about ``chunk_bytes`` (the header alone first,
    so a caller can pull it to surface storage errors before answering)."""
    rows = iter_rows(store, plan, chunk=chunk)
    yield orjson.dumps(next(rows)) + b"\n"
    buf = bytearray()
    for row in rows:
        buf += orjson.dumps(row)
        buf += b"\n"
        if len(buf) >= chunk_bytes:
            yield bytes(buf)
            buf.clear()
    if buf:
        yield bytes(buf)


# ---------------------------------------------------------------------- Parquet
class _ByteSink(io.RawIOBase):
    """A write-only file that keeps what was written until :meth:`drain` takes it."""

    def __init__(self) -> None:
        super().__init__()
        self._buf = bytearray()
        self._pos = 0

    def writable(self) -> bool:
        return True

    def write(self, b: Any) -> int:
        data = memoryview(b).cast("B")
        self._buf += data
        self._pos += len(data)
        return len(data)

    def tell(self) -> int:
        return self._pos

    def drain(self) -> bytes:
        out = bytes(self._buf)
        self._buf.clear()
        return out


def parquet_schema(plan: ExportPlan, evaluations: int = 0) -> Any:
    """The Parquet schema of an export of ``plan`` (header in its metadata)."""
    pa = require_pyarrow()
    dims = plan.box_dims()
    fields = []
    for name, typ in PARQUET_COLUMNS:
        if name == "params" and dims is not None:
            fields.extend(pa.field(PARAM_PREFIX + d, pa.float64()) for d in dims)
        else:
            fields.append(pa.field(name, pa.type_for_alias(typ)))
    header = orjson.dumps(plan.header(evaluations))
    return pa.schema(fields, metadata={PARQUET_HEADER_KEY: header})


def _columns(rows: list[dict[str, Any]], schema: Any) -> dict[str, list[Any]]:
    cols: dict[str, list[Any]] = {name: [] for name in schema.names}
    box = "params" not in cols  # box spaces have param.<dim> columns instead
    for row in rows:
        params = row.get("params")
        for name, values in cols.items():
            if name.startswith(PARAM_PREFIX) and box:
                values.append(params.get(name[len(PARAM_PREFIX) :]) if params else None)
            elif name in JSON_COLUMNS:
                v = row.get(name)
                values.append(None if v is None else orjson.dumps(v).decode())
            else:
                values.append(row.get(name))
    return cols


def iter_parquet(
    store: Store, plan: ExportPlan, *, row_group_rows: int = 10_000, chunk: int = 2000
) -> Iterator[bytes]:
    """The export as one Parquet file, in chunks: one per row group, then the footer.

    Raises:
        ExportFormatError: pyarrow is not installed.
    """
    pa = require_pyarrow()
    import pyarrow.parquet as pq

    rows = iter_rows(store, plan, chunk=chunk)
    header = next(rows)
    schema = parquet_schema(plan, header["evaluations"])
    sink = _ByteSink()
    writer = pq.ParquetWriter(sink, schema, compression="zstd")
    batch: list[dict[str, Any]] = []

    def flush() -> bytes:
        table = pa.Table.from_pydict(_columns(batch, schema), schema=schema)
        writer.write_table(table, row_group_size=max(len(batch), 1))
        batch.clear()
        return sink.drain()

    # The first chunk (the magic bytes) comes after the first queries, so a caller can pull
    # it to surface storage errors before answering.
    yield sink.drain()
    for row in rows:
        batch.append(row)
        if len(batch) >= row_group_rows:
            yield flush()
    if batch:
        yield flush()
    writer.close()
    yield sink.drain()


def iter_export(store: Store, plan: ExportPlan, fmt: ExportFormat, **kw: Any) -> Iterator[bytes]:
    """The export of ``plan`` in format ``fmt`` as bytes chunks (see :func:`iter_jsonl`,
    :func:`iter_parquet`)."""
    if fmt == "jsonl":
        return iter_jsonl(store, plan, **kw)
    if fmt == "parquet":
        require_pyarrow()
        return iter_parquet(store, plan, **kw)
    raise ExportFormatError(f"unknown export format {fmt!r}; use jsonl or parquet")


def export_filename(name: str, fmt: ExportFormat) -> str:
    """A safe file name for an export of experiment ``name``."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".") or "export"
    return f"{safe}.{fmt}"
