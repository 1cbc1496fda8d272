"""``accel``: ACCEL (Parker-Holder et al. 2022), PLR⊥ plus an editor (docs/algorithms.md#accel).

New levels are empty rooms (agent and goal only); complexity comes from edits. After every
``edit_batch`` reports of replayed levels, the ``edit_parents`` of them with the lowest
``return - |L1 value loss|`` are copied to fill a batch of ``edit_batch`` children, each made
by ``num_edits`` random edits (the generator's ``mutate``). Children are issued next,
with ``mode = explore`` (scored without gradient updates), and enter the buffer under PLR's
replacement rule. Each level keeps its lineage: parent level id, edits since its empty-room
ancestor, and depth.

With ``replay_share = 'steps'`` an edit round also waits until the round's replays have taken
as many env steps as its children are expected to (``edit_batch`` x the mean reported child
episode length): the reference code evaluates the children for one rollout as long as the
replay rollout that made them, so children and replays get equal env steps. Per episode, short
replays of solved levels would otherwise be outweighed by long child episodes.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Mapping
from dataclasses import astuple
from typing import Any, ClassVar

import numpy as np

from api_schemas.teachers import ACCELConfig, ReplayConfigBase
from teacher_service.teachers.base import TaskProposal, TaskResult
from teacher_service.teachers.level_buffer import Lineage
from teacher_service.teachers.plr import PLRTeacher


class ACCELTeacher(PLRTeacher):
    """ACCEL on a level space whose generator can edit levels. See the module docstring."""

    config_model: ClassVar[type[ReplayConfigBase]] = ACCELConfig

    def __init__(self, space: Any, config: ACCELConfig, rng: np.random.Generator) -> None:
        super().__init__(space, config, rng)
        if not self._generator.supports_editing:
            raise ValueError(
                f"accel needs a level generator that edits levels, not {space.generator!r}"
            )
        # replayed levels of the current edit round: (level, lineage, return - |value loss|)
        self.candidates_: list[tuple[str, Lineage, float]] = []
        self.round_steps_ = 0  # env steps of the current round's replays
        self.children_: deque[TaskProposal] = deque()  # edited levels waiting to be issued
        self.edit_rounds_ = 0

    def _next_proposal(self) -> TaskProposal:
        if self.children_:  # children are evaluated right after the replay that made them
            return self.children_.popleft()
        return super()._next_proposal()

    def _new_level(self) -> str:
        """ACCEL's new levels are empty rooms: complexity comes from the editor."""
        return self._generator.empty(self.rng, self._generator_config)

    def _replayed(self, result: TaskResult, lineage: Lineage, score: float) -> None:
        value_loss = abs(float(result.scores.get("l1_value_loss", score)))
        key = float(result.episode_return) - value_loss
        self.candidates_.append((result.task.level or "", lineage, key))
        # a report without a length counts as a replay of mean length
        self.round_steps_ += (
            int(result.length) if result.length is not None else round(self._mean_length("replay"))
        )
        if len(self.candidates_) >= self.config.edit_batch and (
            self.round_steps_ >= self.round_steps_needed()
        ):
            self._edit_round()

    def round_steps_needed(self) -> int:
        """Replay env steps an edit round waits for: 0 with ``replay_share='episodes'`` (or
        before replay and child lengths were reported), else the children's expected steps
        (see the module docstring)."""
        if self.config.replay_share == "episodes" or not (
            self.reported_["edit"] and self.reported_["replay"]
        ):
            return 0
        return int(np.ceil(self.config.edit_batch * self._mean_length("edit")))

    def _edit_round(self) -> None:
        cfg = self.config
        keys = np.array([c[2] for c in self.candidates_])
        # the edit_parents levels with the lowest return - |value loss|, copied to fill a batch
        parents = [self.candidates_[int(i)] for i in np.argsort(keys, kind="stable")]
        parents = parents[: cfg.edit_parents]
        for k in range(cfg.edit_batch):
            level, lineage, _ = parents[k % len(parents)]
            child = self._generator.mutate(level, self.rng, cfg.num_edits)
            child_lineage = Lineage(
                level_id=self._new_id(),
                parent=lineage.level_id,
                edits=lineage.edits + cfg.num_edits,
                depth=lineage.depth + 1,
            )
            self.children_.append(self._proposal(child, child_lineage, "edit", self.new_mode))
        self.candidates_ = []
        self.round_steps_ = 0
        self.edit_rounds_ += 1

    def view(self) -> dict[str, Any]:
        """PLR's view plus the editor's state."""
        out = super().view()
        out["editor"] = {
            "rounds": self.edit_rounds_,
            "children_waiting": len(self.children_),
            "round_progress": len(self.candidates_),
            "round_steps": self.round_steps_,
            "round_steps_needed": self.round_steps_needed(),
            "num_edits": self.config.num_edits,
        }
        return out

    def _extra_state(self) -> dict[str, Any]:
        return {
            **super()._extra_state(),
            "candidates": [[lv, list(astuple(ln)), k] for lv, ln, k in self.candidates_],
            "round_steps": self.round_steps_,
            "children": [p.to_dict() for p in self.children_],
            "edit_rounds": self.edit_rounds_,
        }

    def _load_extra_state(self, state: Mapping[str, Any]) -> None:
        super()._load_extra_state(state)
        self.candidates_ = [(lv, Lineage(*ln), float(k)) for lv, ln, k in state["candidates"]]
        self.children_ = deque(TaskProposal.from_dict(d) for d in state["children"])
        self.edit_rounds_ = int(state["edit_rounds"])
        self.round_steps_ = int(state.get("round_steps", 0))  # older snapshots: no counter
