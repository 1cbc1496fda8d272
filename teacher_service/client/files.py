"""Writing a file so that readers see either the old content or the complete new one."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any


@contextmanager
def atomic_write(path: str | os.PathLike[str], mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``path``; on success it replaces ``path`` atomically.

    The temporary file lives in the destination's directory (``os.replace`` is atomic only
    within one file system) and is flushed and fsynced before the rename, so a crash at any
    moment leaves either the previous file or the complete new one. If the block raises, the
    temporary file is removed and ``path`` is untouched. The new file gets the permissions
    ``open()`` would give it (the umask applies).

    Args:
        path: the destination; its directory must exist.
        mode: ``"wb"`` (bytes) or ``"w"`` (text, UTF-8).

    Yields:
        The open temporary file.

    Raises:
        ValueError: ``mode`` is not a write mode.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', got {mode!r}")
    dest = Path(path)
    tmp = dest.with_name(f".{dest.name}.{secrets.token_hex(8)}.tmp")
    # O_EXCL: never write into someone else's file; 0o666 lets the umask decide, as open() does
    # (mkstemp would make every download owner-only).
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, mode, encoding=None if "b" in mode else "utf-8") as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, dest)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
