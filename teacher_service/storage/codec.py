"""Binary encoding of teacher/runtime state: a JSON tree plus raw numpy buffers.

JSON keeps the structure readable and handles the 128-bit integers of numpy's PCG64
state; arrays are stored raw after it so that a 10^6-row history costs a memcpy, not a
float-to-text conversion.
"""

from __future__ import annotations

import json
import struct
from typing import Any

import numpy as np

_MAGIC = b"ACS1"
_ARRAY_KEY = "__ndarray__"


def pack_state(state: Any) -> bytes:
    """Encode a tree of dicts/lists/scalars/numpy arrays to bytes."""
    buffers: list[bytes] = []

    def enc(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            arr = np.ascontiguousarray(obj)
            buffers.append(arr.tobytes())
            return {_ARRAY_KEY: len(buffers) - 1, "dtype": arr.dtype.str, "shape": list(arr.shape)}
        if isinstance(obj, dict):
            return {str(k): enc(v) for k, v in obj.items()}
        if isinstance(obj, list | tuple):
            return [enc(v) for v in obj]
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return float(obj)
        if isinstance(obj, np.bool_):
            return bool(obj)
        return obj

    head = json.dumps(enc(state), separators=(",", ":")).encode()
    sizes = [len(b) for b in buffers]
    prefix = (
        _MAGIC + struct.pack("<QI", len(head), len(sizes)) + struct.pack(f"<{len(sizes)}Q", *sizes)
    )
    return b"".join([prefix, head, *buffers])


def unpack_state(data: bytes) -> Any:
    """Inverse of :func:`pack_state` (arrays come back writable)."""
    if data[:4] != _MAGIC:
        raise ValueError("not a packed state (bad magic)")
    head_len, n_buf = struct.unpack_from("<QI", data, 4)
    off = 4 + 12
    sizes = struct.unpack_from(f"<{n_buf}Q", data, off)
    off += 8 * n_buf
    tree = json.loads(data[off : off + head_len])
    off += head_len
    starts = []
    for s in sizes:
        starts.append(off)
        off += s
    if off != len(data):
        raise ValueError("packed state is truncated or has trailing bytes")

    def dec(obj: Any) -> Any:
        if isinstance(obj, dict):
            if _ARRAY_KEY in obj:
                i = obj[_ARRAY_KEY]
                raw = data[starts[i] : starts[i] + sizes[i]]
                return np.frombuffer(raw, dtype=np.dtype(obj["dtype"])).reshape(obj["shape"]).copy()
            return {k: dec(v) for k, v in obj.items()}
        if isinstance(obj, list):
            return [dec(v) for v in obj]
        return obj

    return dec(tree)
