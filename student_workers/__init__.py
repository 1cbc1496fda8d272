"""Students: PPO (``ppo``), rollout workers (``rollout_worker`` over ``collector``), the
evaluator (``evaluator`` over ``eval_episodes``), checkpoints (``checkpoints``), their Ray actors
(``actors``), the training driver (``driver``) and its ``autocurriculum train`` entry point
(``train``), the CLI (``cli``) and the gymnasium ``CurriculumWrapper`` (``wrappers``).

``CurriculumWrapper`` is exported lazily so that importing another submodule does not import
gymnasium.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from student_workers.wrappers import CurriculumWrapper, minigrid_level_env

__all__ = ["CurriculumWrapper", "minigrid_level_env"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from student_workers import wrappers

        return getattr(wrappers, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
