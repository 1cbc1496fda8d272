"""docs/adding-a-teacher.md: its example teacher runs and keeps the teacher contract."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from pydantic import ValidationError

from api_schemas.spaces import DiscreteSpace, DiscreteTaskSpec
from teacher_service.storage import pack_state, unpack_state
from teacher_service.teachers import TaskProposal, TaskResult

DOC = Path(__file__).resolve().parents[2] / "docs" / "adding-a-teacher.md"
SPACE = DiscreteSpace(tasks=[DiscreteTaskSpec(name=f"t{i}") for i in range(4)])


@pytest.fixture(scope="module")
def example() -> dict[str, Any]:
    """The namespace the page's Python blocks define, executed in order."""
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) == 2, "the page shows the config and the implementation"
    namespace: dict[str, Any] = {"__name__": "adding_a_teacher_example"}
    for block in blocks:
        exec(compile(block, str(DOC), "exec", dont_inherit=True), namespace)
    return namespace


def result(name: str, success: bool) -> TaskResult:
    return TaskResult(TaskProposal(params={"task": name}), float(success), success=success)


def play(teacher: Any, rounds: int) -> list[dict]:
    made = []
    for r in range(rounds):
        proposals = teacher.propose(4)
        made += [p.to_dict() for p in proposals]
        # t1 is being learned (success 1 from round 5 on); the others never succeed
        teacher.observe(
            [result(p.params["task"], p.params["task"] == "t1" and r >= 5) for p in proposals]
        )
    return made


def test_the_config_declares_kind_and_validates(example: dict[str, Any]) -> None:
    cfg = example["EpsLPConfig"]
    assert cfg.kind_name() == "eps_lp" and cfg.SPACES == ("discrete",)
    assert example["EpsLPTeacher"].kind == "eps_lp"  # taken from config_model
    with pytest.raises(ValidationError, match="epsilon"):
        cfg(epsilon=1.5)
    with pytest.raises(ValidationError, match="not_a_field"):
        cfg(not_a_field=1)


def test_the_example_keeps_the_teacher_contract(example: dict[str, Any]) -> None:
    cls, cfg = example["EpsLPTeacher"], example["EpsLPConfig"]
    a, b = (cls(SPACE, cfg(), np.random.default_rng(4)) for _ in range(2))
    first = play(a, 10)
    assert first == play(b, 10)
    assert all(p["params"]["task"] in SPACE.names for p in first)
    restored = cls(SPACE, cfg(), np.random.default_rng(99))
    restored.load_state_dict(unpack_state(pack_state(a.state_dict())))
    assert play(restored, 10) == play(a, 10)
    assert pack_state(restored.state_dict()) == pack_state(a.state_dict())


def test_the_example_follows_learning_progress(example: dict[str, Any]) -> None:
    cls, cfg = example["EpsLPTeacher"], example["EpsLPConfig"]
    teacher = cls(SPACE, cfg(epsilon=0.0, fast=0.5, slow=0.25), np.random.default_rng(0))
    teacher.observe([result("t1", True), result("t1", True)])
    # fast: 0.5 then 0.75; slow: 0.25 then 0.4375 -> LP 0.3125 on t1 only
    assert teacher.view()["lp"] == pytest.approx([0.0, 0.3125, 0.0, 0.0])
    assert {p.params["task"] for p in teacher.propose(20)} == {"t1"}
