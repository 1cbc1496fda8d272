"""ModuleFreezer (teacher_service/gc_freeze.py): objects alive at start-up, and those that later
imports create, leave the collector's generations; nothing else is frozen without a reason."""

from __future__ import annotations

import gc
import sys
import time
import types
from collections.abc import Iterator
from pathlib import Path

import pytest

from teacher_service.gc_freeze import ModuleFreezer
from tests.conftest import BOX2
from tests.helpers import in_process


@pytest.fixture(autouse=True)
def unfrozen() -> Iterator[None]:
    gc.unfreeze()  # the freeze is process-wide: start and leave this worker as it was
    yield
    gc.unfreeze()


def tracked(obj: object) -> bool:
    """Whether the collector's generations (not the frozen objects) hold ``obj``."""
    return any(o is obj for o in gc.get_objects())


def test_start_up_freezes_everything_alive_and_later_imports_freeze_again() -> None:
    freezer = ModuleFreezer()
    early = [[1]]
    assert tracked(early)
    freezer.after_startup()
    assert not tracked(early) and gc.get_freeze_count() > 0
    frozen = gc.get_freeze_count()

    late = [[2]]
    assert not freezer.after_imports()  # no import since: nothing more is frozen
    assert tracked(late) and gc.get_freeze_count() == frozen

    name = "autocurriculum_test_freezer_module"
    sys.modules[name] = types.ModuleType(name)  # what an import does to sys.modules
    try:
        assert freezer.after_imports()
        assert not tracked(late) and gc.get_freeze_count() > frozen
        assert not freezer.after_imports()
    finally:
        del sys.modules[name]


def test_the_server_freezes_after_start_up_and_after_later_imports(tmp_path: Path) -> None:
    with in_process(f"sqlite:///{tmp_path / 'gc.db'}", sweep_interval=0.05) as c:
        at_start = gc.get_freeze_count()
        assert at_start > 0
        body = {"name": "t", "space": BOX2, "teacher": {"kind": "lp_tree"}, "seed": 1}
        assert c.post("/v1/experiments", json=body).status_code == 201
        name = "autocurriculum_test_server_import"
        sys.modules[name] = types.ModuleType(name)  # as a teacher's first import does
        try:
            deadline = time.monotonic() + 10
            while gc.get_freeze_count() == at_start:  # the sweeper's next round
                assert time.monotonic() < deadline, "the new import was never frozen"
                time.sleep(0.05)
        finally:
            del sys.modules[name]
