"""Reading an export back (``GET .../export``, :meth:`TeacherClient.export`) as rows or a
pandas DataFrame; both formats give the same rows (the format is described in
:mod:`teacher_service.export`).

The format's definitions (row keys, Parquet column names, the header key, the error class)
come from :mod:`teacher_service.export_format`, the module the server's writer uses too. It
imports no server code (runtime, storage, FastAPI, SQLAlchemy), so it is imported here at
module level and ``import teacher_service.client`` stays light.
"""

from __future__ import annotations

import io
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from teacher_service.export_format import (
    FIELDS,
    JSON_COLUMNS,
    PARAM_PREFIX,
    PARQUET_HEADER_KEY,
    ExportFormat,
    ExportFormatError,
    require_pyarrow,
)

#: Where an export is read from: a file path, or the export's bytes.
Source = str | os.PathLike[str] | bytes | bytearray | memoryview


def _open(source: Source) -> io.BufferedIOBase:
    if isinstance(source, bytes | bytearray | memoryview):
        return io.BytesIO(bytes(source))
    return open(Path(source), "rb")


def _detect(source: Source) -> ExportFormat:
    with _open(source) as f:
        return "parquet" if f.read(4) == b"PAR1" else "jsonl"


def _typed(row: Mapping[str, Any], dims: list[str] | None) -> dict[str, Any]:
    """A Parquet row back in the JSON lines shape of its type."""
    keys = FIELDS.get(row["type"])
    if keys is None:
        return dict(row)
    out: dict[str, Any] = {}
    for k in keys:
        if k == "params" and dims is not None:
            vals = {d: row.get(PARAM_PREFIX + d) for d in dims}
            out[k] = None if all(v is None for v in vals.values()) else vals
        elif k in JSON_COLUMNS:
            v = row.get(k)
            out[k] = None if v is None else json.loads(v)
        else:
            out[k] = row.get(k)
    return out


def iter_export_rows(
    source: Source, format: ExportFormat | None = None, *, batch_rows: int = 10_000
) -> Iterator[dict[str, Any]]:
    """Rows of an export (the header first) one at a time; see :func:`read_export`."""
    fmt = format or _detect(source)
    if fmt == "jsonl":
        with _open(source) as f:
            for line in f:
                if line.strip():
                    yield json.loads(line)
        return
    if fmt != "parquet":
        raise ExportFormatError(f"unknown export format {fmt!r}; use jsonl or parquet")
    require_pyarrow()
    import pyarrow.parquet as pq

    with _open(source) as f:
        pf = pq.ParquetFile(f)
        meta = pf.schema_arrow.metadata or {}
        if PARQUET_HEADER_KEY not in meta:
            raise ExportFormatError("not an autocurriculum export (no header in the metadata)")
        yield json.loads(meta[PARQUET_HEADER_KEY])
        names = pf.schema_arrow.names
        dims = (
            [n[len(PARAM_PREFIX) :] for n in names if n.startswith(PARAM_PREFIX)]
            if "params" not in names
            else None
        )
        for batch in pf.iter_batches(batch_size=batch_rows):
            for row in batch.to_pylist():
                yield _typed(row, dims)


def read_export(source: Source, format: ExportFormat | None = None) -> list[dict[str, Any]]:
    """Re-import an export: the header row first, then every row as a dict.

    Both formats give the same rows (the JSON lines shape: nested ``params`` and
    ``scores``, exactly the keys of each row type, see :mod:`teacher_service.export`).

    Args:
        source: a file path, or the export's bytes.
        format: ``"jsonl"`` or ``"parquet"``; detected from the content when omitted.

    Raises:
        ExportFormatError: Parquet without pyarrow, or not an export.
    """
    return list(iter_export_rows(source, format))


def flatten_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A row with ``params`` and ``scores`` spread into ``param.<key>`` and ``score.<key>``
    columns (non-dict params, e.g. None, are dropped); other keys are unchanged."""
    out: dict[str, Any] = {}
    for k, v in row.items():
        if k == "params" and isinstance(v, Mapping):
            out.update({PARAM_PREFIX + str(pk): pv for pk, pv in v.items()})
        elif k == "scores" and isinstance(v, Mapping):
            out.update({f"score.{sk}": sv for sk, sv in v.items()})
        elif k not in ("params", "scores"):
            out[k] = v
    return out


def export_dataframe(source: Source, format: ExportFormat | None = None) -> Any:
    """An export as a ``pandas.DataFrame``: one row per export row (the header is in
    ``df.attrs["experiment"]``), params and scores flattened (:func:`flatten_row`).

    Raises:
        ImportError: pandas is not installed (it is not a dependency of this package).
    """
    try:
        import pandas as pd
    except ImportError as exc:
        raise ImportError("export_dataframe needs pandas: pip install pandas") from exc
    rows = iter_export_rows(source, format)
    header = next(rows, None)
    df = pd.DataFrame.from_records([flatten_row(r) for r in rows])
    df.attrs["experiment"] = header
    return df
