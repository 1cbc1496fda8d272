"""Durable storage: the per-experiment append-only event log, snapshots and blobs."""

from teacher_service.storage.codec import pack_state, unpack_state
from teacher_service.storage.store import EventRow, ExperimentRecord, StorageError, Store

__all__ = [
    "EventRow",
    "ExperimentRecord",
    "StorageError",
    "Store",
    "pack_state",
    "unpack_state",
]
