"""A MiniGrid environment built from a :class:`~env_generators.levels.Level` (DESIGN.md §7).

The student sees the standard MiniGrid partial observation (``image`` of the agent's view,
``direction``, ``mission``), so a policy trained here can be evaluated on any MiniGrid env id
built with the same view size. Success gives ``1 - 0.9 * t / T`` (ALGORITHMS.md §8), lava
ends the episode with 0, and ``T`` is reached with 0.

The level can be changed between episodes (:meth:`LevelEnv.set_level`) without changing the
observation or action spaces, which is what the curriculum wrapper relies on.
"""

from __future__ import annotations

from typing import Any, Literal

import gymnasium as gym
import numpy as np
from minigrid.core.grid import Grid
from minigrid.core.mission import MissionSpace
from minigrid.core.world_object import Door, Goal, Key, Lava, Wall
from minigrid.minigrid_env import MiniGridEnv

from env_generators.held_out import held_out_maze, is_held_out
from env_generators.levels import DOOR, GOAL, KEY, LAVA, WALL, Level

#: View size of the reference results (ALGORITHMS.md §8).
DEFAULT_VIEW = 5
#: Episode cap of the reference results for 15 x 15 levels.
REFERENCE_STEPS = 250


def default_max_steps(level: Level) -> int:
    """250 steps for levels up to 15 x 15 (the reference), scaled with the area above."""
    return max(REFERENCE_STEPS, round(REFERENCE_STEPS * level.width * level.height / 225))


def as_level(level: Level | str) -> Level:
    """A :class:`Level` from a level, its encoding, or the name of a held-out maze."""
    if isinstance(level, Level):
        return level
    if is_held_out(level):
        return held_out_maze(level)
    return Level.parse(level)


class LevelEnv(MiniGridEnv):
    """MiniGrid on a given level.

    Args:
        level: the level (a :class:`Level`, its encoding, or a held-out maze name).
        agent_view_size: side of the agent's square view (odd, >= 3).
        max_steps: episode cap ``T``; default :func:`default_max_steps` of each level.
        actions: ``"navigation"`` (left, right, forward: the reference setting) or
            ``"full"`` (all 7 MiniGrid actions, needed for keys and doors).
        render_mode: as in gymnasium.
    """

    def __init__(
        self,
        level: Level | str,
        *,
        agent_view_size: int = DEFAULT_VIEW,
        max_steps: int | None = None,
        actions: Literal["navigation", "full"] = "navigation",
        render_mode: str | None = None,
    ) -> None:
        self.level = as_level(level)
        self._fixed_max_steps = max_steps
        super().__init__(
            mission_space=MissionSpace(mission_func=lambda: "get to the green goal square"),
            width=self.level.width,
            height=self.level.height,
            max_steps=max_steps or default_max_steps(self.level),
            see_through_walls=False,
            agent_view_size=agent_view_size,
            render_mode=render_mode,
        )
        if actions == "navigation":
            self.action_space = gym.spaces.Discrete(3)  # left, right, forward
        elif actions != "full":
            raise ValueError(f"actions must be 'navigation' or 'full', got {actions!r}")

    def set_level(self, level: Level | str) -> None:
        """Use another level from the next ``reset()`` on (spaces do not change)."""
        self.level = as_level(level)
        self.width, self.height = self.level.width, self.level.height
        self.max_steps = self._fixed_max_steps or default_max_steps(self.level)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        """Reset; ``options={"level": ...}`` switches level first."""
        if options and "level" in options:
            self.set_level(options["level"])
        return super().reset(seed=seed, options=options)

    def _gen_grid(self, width: int, height: int) -> None:
        level = self.level
        self.grid = Grid(level.width, level.height)
        for (y, x), t in np.ndenumerate(level.tiles):
            if t == WALL:
                self.grid.set(x, y, Wall())
            elif t == GOAL:
                self.grid.set(x, y, Goal())
            elif t == LAVA:
                self.grid.set(x, y, Lava())
            elif t == KEY:
                self.grid.set(x, y, Key("yellow"))
            elif t == DOOR:
                self.grid.set(x, y, Door("yellow", is_locked=True))
        self.agent_pos = level.agent
        self.agent_dir = level.agent_dir
        self.mission = "get to the green goal square"


#: Gymnasium id namespace of the held-out mazes: ``gym.make("autocurriculum/Labyrinth-v0")``.
ENV_NAMESPACE = "autocurriculum"


def register_envs() -> list[str]:
    """Register every held-out maze with gymnasium (idempotent, as minigrid does on import);
    return their ids."""
    from env_generators.held_out import held_out_names

    ids = []
    for name in held_out_names():
        env_id = f"{ENV_NAMESPACE}/{name}-v0"
        if env_id not in gym.registry:
            gym.register(env_id, entry_point=LevelEnv, kwargs={"level": name})
        ids.append(env_id)
    return ids


register_envs()
