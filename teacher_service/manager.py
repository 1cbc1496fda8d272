"""The set of experiments a server hosts: creation, lookup by id or name, start-up replay."""

from __future__ import annotations

import logging
import threading
import time
import uuid
from concurrent.futures import Future
from typing import Any

from api_schemas.experiments import ExperimentCreate, ExperimentPublic
from teacher_service.errors import (
    ExperimentNotFoundError,
    InvalidExperimentError,
    NameTakenError,
    UnavailableError,
)
from teacher_service.fit_pool import FitPool
from teacher_service.interestingness import Judges
from teacher_service.runtime import ExperimentRuntime
from teacher_service.storage import ExperimentRecord, Store
from teacher_service.storage.store import DuplicateNameError

log = logging.getLogger(__name__)


class ExperimentManager:
    """Owns one :class:`ExperimentRuntime` per experiment.

    Args:
        store: the durable store.
        judges: the models teachers may ask for judgements (None: requests wait).
        runtime_options: keyword arguments for every runtime (snapshot interval, limits).
    """

    def __init__(
        self,
        store: Store,
        judges: Judges | None = None,
        fit_pool: FitPool | None = None,
        **runtime_options: Any,
    ) -> None:
        self.store = store
        self.judges = judges
        self.fit_pool = fit_pool
        self.runtime_options = {**runtime_options, "judges": judges, "background": fit_pool}
        self._lock = threading.Lock()
        self._by_id: dict[str, ExperimentRuntime] = {}
        self._by_name: dict[str, str] = {}
        self._pending_names: set[str] = set()
        # Experiments being deleted, name -> id: both stay reserved until the deletion is
        # committed (or failed and the experiment is back).
        self._deleting: dict[str, str] = {}

    def load_all(self) -> None:
        """Rebuild every stored experiment from its snapshot and log (at start-up)."""
        for rec in self.store.list_experiments():
            t0 = time.perf_counter()
            rt = ExperimentRuntime.load(rec, self.store, **self.runtime_options)
            with self._lock:
                self._by_id[rec.id] = rt
                self._by_name[rec.name] = rec.id
            log.info("loaded experiment %s in %.2fs", rec.name, time.perf_counter() - t0)
            rt.start_judging()  # what the log does not answer yet

    def begin_create(self, body: ExperimentCreate) -> tuple[ExperimentRecord, Future]:
        """Reserve the name and queue the durable record. Finish with :meth:`finish_create`."""
        with self._lock:
            # A name equal to another experiment's id would make ``{id}`` ambiguous.
            if (
                body.name in self._by_name
                or body.name in self._pending_names
                or body.name in self._by_id
            ):
                raise NameTakenError(f"an experiment named {body.name!r} already exists")
            if body.name in self._deleting or body.name in self._deleting.values():
                raise NameTakenError(
                    f"an experiment named {body.name!r} is being deleted; retry in a moment"
                )
            self._pending_names.add(body.name)
            new_id = uuid.uuid4().hex[:16]
            while new_id in self._by_name or new_id in self._by_id or new_id in self._deleting:
                new_id = uuid.uuid4().hex[:16]
        rec = ExperimentRecord(
            id=new_id,
            name=body.name,
            spec=body.model_dump(mode="json"),
            created_at=time.time(),
        )
        try:
            # Build the teacher once before storing, so a config the teacher rejects
            # never reaches the database.
            try:
                if self.judges is not None:
                    self.judges.check(body.teacher)
                ExperimentRuntime(rec, self.store, **self.runtime_options).close()
            except ValueError as exc:  # the teacher refuses this space or config
                raise InvalidExperimentError(str(exc)) from exc
            fut = self.store.create_experiment(rec)
        except Exception:
            with self._lock:
                self._pending_names.discard(body.name)
            raise
        return rec, fut

    def finish_create(
        self, rec: ExperimentRecord, error: BaseException | None
    ) -> ExperimentRuntime:
        """Register the runtime once the record is durable (or release the name)."""
        with self._lock:
            self._pending_names.discard(rec.name)
            if error is not None:
                if isinstance(error, DuplicateNameError):
                    raise NameTakenError(
                        f"an experiment named {rec.name!r} already exists"
                    ) from error
                raise error
            rt = ExperimentRuntime(rec, self.store, **self.runtime_options)
            self._by_id[rec.id] = rt
            self._by_name[rec.name] = rec.id
        rt.start_judging()
        return rt

    def begin_delete(self, key: str) -> tuple[ExperimentRuntime, Future]:
        """Unregister an experiment (new requests get 404), refuse the calls that already
        hold its runtime, and queue the deletion of everything stored for it. Its name stays
        reserved until :meth:`finish_delete`. Blocks until a call in progress on the runtime
        is done: run it off the event loop.

        Returns:
            The runtime and a future resolving once the deletion is committed.

        Raises:
            ExperimentNotFoundError: no experiment has that id or name (or it is already
                being deleted).
        """
        with self._lock:
            rt = self._lookup(key)
            del self._by_id[rt.id]
            del self._by_name[rt.name]
            self._deleting[rt.name] = rt.id
        # After this, no call on the runtime queues a write: the delete below comes after
        # every write of the log, and the store refuses whatever else arrives later.
        rt.mark_deleted()
        try:
            fut = self.store.delete_experiment(rt.id)
        except Exception as exc:
            self._restore(rt)
            raise UnavailableError(f"storage failed, nothing was deleted (retry): {exc}") from exc
        return rt, fut

    def finish_delete(self, rt: ExperimentRuntime, error: BaseException | None) -> None:
        """Release the name once the deletion is committed; if it failed, bring the
        experiment back from the store and raise :class:`UnavailableError`. Blocks (a
        failed deletion replays the experiment): run it off the event loop."""
        if error is None:
            with self._lock:
                self._deleting.pop(rt.name, None)
            log.info("deleted experiment %s (%s)", rt.name, rt.id)
            return
        log.error("delete of experiment %s failed: %s", rt.name, error)
        self._restore(rt)
        raise UnavailableError(
            f"storage failed, experiment {rt.name!r} was not deleted (retry): {error}"
        ) from error

    def _restore(self, rt: ExperimentRuntime) -> None:
        """Register a fresh runtime of an experiment whose deletion failed, rebuilt from
        what the store holds (every write queued before the delete has settled by now)."""
        self.store.reset_failure(rt.id)
        try:
            new = ExperimentRuntime.load(rt.record, self.store, **self.runtime_options)
        except Exception as exc:
            # Storage is still failing: rebuild from the log on the first call instead.
            log.error("experiment %s: reload failed (%s); rebuilding on first use", rt.name, exc)
            new = ExperimentRuntime(rt.record, self.store, **self.runtime_options)
            new.broken = True
        with self._lock:
            self._deleting.pop(rt.name, None)
            self._by_id[rt.id] = new
            self._by_name[rt.name] = rt.id
        new.start_judging()

    def get(self, key: str) -> ExperimentRuntime:
        """Runtime by id or by unique name."""
        with self._lock:
            return self._lookup(key)

    def _lookup(self, key: str) -> ExperimentRuntime:
        """Runtime by id or by unique name (call under the lock)."""
        rt = self._by_id.get(key)
        if rt is None and key in self._by_name:
            rt = self._by_id[self._by_name[key]]
        if rt is None:
            raise ExperimentNotFoundError(f"no experiment with id or name {key!r}")
        return rt

    def all(self) -> list[ExperimentRuntime]:
        """Every runtime, in creation order."""
        with self._lock:
            return sorted(self._by_id.values(), key=lambda r: (r.record.created_at, r.id))

    @staticmethod
    def public(rt: ExperimentRuntime) -> ExperimentPublic:
        """The API view of an experiment."""
        return ExperimentPublic(
            id=rt.id,
            name=rt.name,
            space=rt.space,
            teacher=rt.spec.teacher,
            seed=rt.spec.seed,
            lease_seconds=rt.spec.lease_seconds,
            created_at=rt.record.created_at,
            counters=rt.public_counters(),
        )

    def close(self) -> None:
        """Stop every runtime's background work, the judges and the fit processes."""
        for rt in self.all():
            rt.close()
        if self.judges is not None:
            self.judges.close()
        if self.fit_pool is not None:
            self.fit_pool.close()
