"""Gymnasium wrapper that trains an agent on the tasks of a teacher service
(docs/architecture.md#students).

:class:`CurriculumWrapper` turns any trainer that speaks gymnasium (Stable-Baselines3,
CleanRL-style loops, gymnasium vector envs) into a student of the teacher service:

- at every ``reset()`` it takes the next task from a :class:`~teacher_service.client.
  CurriculumSession` prefetch buffer and reconfigures the env for it: a level task through
  ``env.unwrapped.set_level`` (:class:`env_generators.minigrid_env.LevelEnv`), a box or
  discrete task through a user-supplied ``apply_task(env, task)`` or ``make_env(task)``;
- when an episode ends (terminated *or* truncated) it queues one report (return, success,
  length); the session sends reports in batches from a background thread and retries them
  until the server acknowledges them, so ``step()`` never waits on the network;
- observation and action spaces never change.

Process model. The client and its session are created lazily, at the first ``reset()``, in
the process that steps the env, and are dropped when the wrapper is pickled or found in a
forked child. Pass ``base_url``/``experiment``/``token`` (or a picklable ``session_factory``)
rather than a client object: each ``SubprocVecEnv`` or ``AsyncVectorEnv`` worker then owns its
own connection and threads.

Outages. The session's threads retry forever. If the buffer is empty at a ``reset()`` and no
task arrives within ``task_timeout`` seconds, the wrapper replays the last task it had (or
``default_task``), logs one warning for the whole outage and goes on; later resets of the same
outage do not wait. Episodes of replayed tasks are *not* reported: the teacher already has
(or will get) the report of that task id, and a second one would only count as a duplicate.
Only when there is nothing to replay (the very first reset) does the wrapper keep waiting,
warning every ``task_timeout`` seconds; a 4xx from the server at that point (unknown
experiment, bad token) is a configuration error and is raised.

Unfinished episodes. A ``reset()`` in the middle of an episode (SB3 resets all envs at the
start of ``learn()``; a user may reset by hand) abandons the current task: nothing is reported
for it and the server lets its lease expire. Reporting a partial return would teach the
teacher that the task is harder than it is. Abandoned episodes are counted in
:attr:`CurriculumWrapper.curriculum_stats`.

Where to put other wrappers. The reported return is the sum of the rewards the wrapper sees,
so keep reward-shaping wrappers *outside* it. Observation wrappers such as minigrid's
``ImgObsWrapper`` may go inside or outside (the level is set on ``env.unwrapped``); the
examples put them outside, so the curriculum wrapper sits right on the ``LevelEnv``.

Example (SB3)::

    def make() -> gym.Env:
        env = CurriculumWrapper(minigrid_level_env(), "my-exp", base_url="http://127.0.0.1:8000")
        return ImgObsWrapper(env)

    vec = SubprocVecEnv([make] * 4)
    PPO("MlpPolicy", vec).learn(100_000)
    vec.close()  # flushes every worker's reports
"""

from __future__ import annotations

import logging
import math
import os
import socket
import time
from collections.abc import Callable, Mapping
from typing import Any, SupportsFloat

import gymnasium as gym
from pydantic import ValidationError

from api_schemas.tasks import Task
from teacher_service.client import ApiError, CurriculumSession, TeacherClient, TeacherClientError

__all__ = ["CurriculumWrapper", "minigrid_level_env"]

log = logging.getLogger(__name__)

#: A valid 5 x 3 level used only to build a LevelEnv before the first task arrives (the
#: observation and action spaces do not depend on the level).
PLACEHOLDER_LEVEL = "#####\n#>.G#\n#####"

#: Info keys a final step may carry to say whether the episode succeeded (SB3 uses the second).
_SUCCESS_KEYS = ("success", "is_success")


def minigrid_level_env(
    *,
    agent_view_size: int = 5,
    max_steps: int | None = None,
    actions: str = "navigation",
    render_mode: str | None = None,
) -> gym.Env:
    """A :class:`~env_generators.minigrid_env.LevelEnv` on a placeholder level, to be wrapped
    by :class:`CurriculumWrapper` (which sets each task's level before the episode starts).

    Args:
        agent_view_size: side of the agent's square view.
        max_steps: episode cap; default scales with each level's size (250 up to 15 x 15).
        actions: ``"navigation"`` (3 actions) or ``"full"`` (7).
        render_mode: as in gymnasium.
    """
    # Imported here so that importing this module does not import minigrid.
    from env_generators.minigrid_env import LevelEnv

    return LevelEnv(
        PLACEHOLDER_LEVEL,
        agent_view_size=agent_view_size,
        max_steps=max_steps,
        actions=actions,  # type: ignore[arg-type]
        render_mode=render_mode,
    )


class CurriculumWrapper(gym.Wrapper):
    """Train on the teacher's tasks: one task per episode, one report per finished episode.

    Args:
        env: the env to wrap. With ``make_env`` it only fixes the spaces and is replaced (and
            closed) at the first ``reset()``.
        experiment: experiment name or id on the teacher service.
        base_url: the teacher service, e.g. ``http://127.0.0.1:8000``. Required unless
            ``session_factory`` is given.
        token: bearer token, if the server requires one.
        session_factory: called (in the stepping process) to make the session instead of
            ``TeacherClient(base_url, token=token, **client_kwargs).session(...)``; it must be
            picklable to be used in subprocess vector envs. The wrapper closes what it returns.
        apply_task: ``apply_task(env, task)`` configures ``env`` for ``task`` before its
            reset (box/discrete spaces, or custom level handling).
        make_env: ``make_env(task)`` builds a fresh env for each task (the previous one is
            closed); its spaces must equal the wrapped env's.
        default_task: played when the server is unreachable and no task was ever received.
        success_fn: ``success_fn(episode_return, final_info)`` decides success; by default an
            info ``"success"``/``"is_success"`` key of the final step, else ``return > 0``.
        prefetch: tasks buffered by the session (more survives longer outages and costs fewer
            requests; fewer keeps an adaptive teacher's proposals fresher). The buffer is
            refilled when half empty, so a request fetches about ``prefetch / 2`` tasks.
        report_batch: reports per request.
        flush_interval: seconds a report may wait before a partial batch is sent. The
            defaults keep the session's HTTP work (about 1 ms of CPU per request, under the
            trainer's GIL) to a few requests per second per env.
        task_timeout: seconds a ``reset()`` waits for a task before replaying the last one.
        close_timeout: seconds ``close()`` waits for queued reports to be acknowledged.
        worker: worker label sent with task requests; default ``host:pid``.
        client_kwargs: more :class:`~teacher_service.client.TeacherClient` arguments
            (``timeout``, ``backoff``, ``max_backoff``...).

    Raises:
        ValueError: neither ``base_url`` nor ``session_factory``, or both ``apply_task`` and
            ``make_env``.
    """

    def __init__(
        self,
        env: gym.Env,
        experiment: str,
        *,
        base_url: str | None = None,
        token: str | None = None,
        session_factory: Callable[[], CurriculumSession] | None = None,
        apply_task: Callable[[gym.Env, Task], None] | None = None,
        make_env: Callable[[Task], gym.Env] | None = None,
        default_task: Task | None = None,
        success_fn: Callable[[float, Mapping[str, Any]], bool] | None = None,
        prefetch: int = 64,
        report_batch: int = 256,
        flush_interval: float = 1.0,
        task_timeout: float = 5.0,
        close_timeout: float = 10.0,
        worker: str | None = None,
        client_kwargs: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(env)
        if base_url is None and session_factory is None:
            raise ValueError("give base_url (or a session_factory)")
        if apply_task is not None and make_env is not None:
            raise ValueError("give apply_task or make_env, not both")
        if task_timeout < 0 or close_timeout < 0:
            raise ValueError("task_timeout and close_timeout must be >= 0")
        self.experiment = experiment
        self.base_url = base_url
        self.token = token
        self.session_factory = session_factory
        self.apply_task = apply_task
        self.make_env = make_env
        self.default_task = default_task
        self.success_fn = success_fn
        self.prefetch = prefetch
        self.report_batch = report_batch
        self.flush_interval = flush_interval
        self.task_timeout = task_timeout
        self.close_timeout = close_timeout
        self.worker = worker
        self.client_kwargs = dict(client_kwargs or {})

        self._client: TeacherClient | None = None
        self._session: CurriculumSession | None = None
        self._owner_pid: int | None = None  # process whose threads serve _session
        self._closed = False
        # The current episode. _report_to is the task id to report at its end, None when
        # it must not be reported (replayed task, or no episode running).
        self._task: Task | None = None
        self._report_to: str | None = None
        self._return = 0.0
        self._length = 0
        self._in_episode = False
        self._outage_since: float | None = None
        self._stats = {
            "episodes_finished": 0,
            "episodes_reported": 0,
            # Finished on a replayed/default task, or on a task owned by another process.
            "episodes_unreported": 0,
            "episodes_abandoned": 0,  # reset before they ended: not reported
            "reports_failed": 0,  # could not be queued (session closed, invalid value)
            "fallback_resets": 0,
            "outages": 0,
        }

    # ------------------------------------------------------------------ gymnasium API
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[Any, dict[str, Any]]:
        """Take the next task, configure the env for it, and reset.

        The returned info carries ``task_id`` and ``task_mode`` (``train``, ``explore`` or
        ``evaluate``; the wrapper plays every mode the same way, a trainer may skip
        gradient updates for ``explore`` tasks).
        """
        if self._closed:
            raise gym.error.ResetNeeded("the CurriculumWrapper is closed")
        if self._in_episode:
            self._stats["episodes_abandoned"] += 1
            log.debug("episode of task %s abandoned by reset()", self._report_to)
        task, fresh = self._next_task()
        self._configure(task)
        self._task = task
        self._report_to = task.id if fresh else None
        self._return = 0.0
        self._length = 0
        self._in_episode = True
        obs, info = self.env.reset(seed=seed, options=options)
        info["task_id"] = task.id
        info["task_mode"] = str(task.mode)
        return obs, info

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Step the env; at the end of an episode, queue its report (never blocks)."""
        # The hot path of every trainer: index the result instead of unpacking and repacking.
        result = self.env.step(action)
        self._return += result[1]
        self._length += 1
        if (result[2] or result[3]) and self._in_episode:
            self._in_episode = False
            self._end_episode(result[4])
        return result

    def close(self) -> None:
        """Flush queued reports (up to ``close_timeout`` seconds), stop the session, close the
        env. Idempotent; never raises because of the server."""
        if self._closed:
            return
        self._closed = True
        session, client = self._session, self._client
        self._session = self._client = None
        if session is not None and self._owner_pid == os.getpid():
            try:
                session.close(timeout=self.close_timeout)
            except (TimeoutError, TeacherClientError) as exc:
                # close() already logged what was lost; a trainer must still shut down.
                log.warning("curriculum session of %r closed with errors: %s", self.experiment, exc)
            if client is not None:
                client.close()
        super().close()

    # ------------------------------------------------------------------ introspection
    @property
    def task(self) -> Task | None:
        """The task of the current (or last) episode."""
        return self._task

    @property
    def curriculum_stats(self) -> dict[str, Any]:
        """Episode counters, plus the session's counters under ``"session"``.

        ``episodes_finished = episodes_reported + episodes_unreported + reports_failed``.
        """
        out: dict[str, Any] = dict(self._stats)
        session = self._session if self._owner_pid == os.getpid() else None
        out["session"] = session.stats if session is not None else None
        return out

    # ------------------------------------------------------------------ pickling
    def __getstate__(self) -> dict[str, Any]:
        # Threads, sockets and the task buffer belong to this process: a copy made for a
        # subprocess starts its own session at its first reset() and reports nothing of ours.
        state = self.__dict__.copy()
        state.update(_client=None, _session=None, _owner_pid=None, _report_to=None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)

    # ------------------------------------------------------------------ internals
    def _ensure_session(self) -> CurriculumSession:
        pid = os.getpid()
        if self._session is not None and self._owner_pid == pid:
            return self._session
        if self._session is not None:
            # A forked copy: the parent's threads do not exist here and its buffered tasks
            # and queued reports are the parent's to use; start afresh without touching them.
            self._session = self._client = None
            self._report_to = None
        if self.session_factory is not None:
            self._session = self.session_factory()
        else:
            assert self.base_url is not None
            self._client = TeacherClient(self.base_url, token=self.token, **self.client_kwargs)
            self._session = self._client.session(
                self.experiment,
                prefetch=self.prefetch,
                report_batch=self.report_batch,
                flush_interval=self.flush_interval,
                worker=self.worker or f"{socket.gethostname()}:{pid}",
            )
        self._owner_pid = pid
        return self._session

    def _fallback(self) -> Task | None:
        return self._task if self._task is not None else self.default_task

    def _next_task(self) -> tuple[Task, bool]:
        """The next task and whether it is fresh from the teacher (``False``: a replay)."""
        session = self._ensure_session()
        # During an outage, do not wait at every reset: check the buffer and move on.
        timeout = 0.0 if self._outage_since is not None else self.task_timeout
        while True:
            try:
                task = session.next_task(timeout=timeout)
            except (TimeoutError, TeacherClientError) as exc:
                fallback = self._fallback()
                if fallback is None:
                    if isinstance(exc, ApiError):
                        raise  # misconfiguration (unknown experiment, bad token): say so
                    # Nothing to replay yet: wait for the first task, saying why.
                    log.warning("no task from %r yet (%s); still waiting", self.experiment, exc)
                    timeout = max(self.task_timeout, 0.1)
                    continue
                self._stats["fallback_resets"] += 1
                if self._outage_since is None:
                    self._outage_since = time.monotonic()
                    self._stats["outages"] += 1
                    log.warning(
                        "no task from teacher %r within %.1fs (%s); replaying task %s until "
                        "the server is back (episodes on replayed tasks are not reported)",
                        self.experiment,
                        timeout,
                        exc,
                        fallback.id,
                    )
                return fallback, False
            if self._outage_since is not None:
                log.info(
                    "teacher %r is serving tasks again after %.1fs",
                    self.experiment,
                    time.monotonic() - self._outage_since,
                )
                self._outage_since = None
            return task, True

    def _configure(self, task: Task) -> None:
        if self.make_env is not None:
            new = self.make_env(task)
            if (
                new.observation_space != self.observation_space
                or new.action_space != self.action_space
            ):
                new.close()
                raise ValueError(
                    "make_env(task) built an env whose spaces differ from the wrapped env's: "
                    f"{new.observation_space} / {new.action_space} vs "
                    f"{self.observation_space} / {self.action_space}"
                )
            old, self.env = self.env, new
            old.close()
        elif self.apply_task is not None:
            self.apply_task(self.env, task)
        elif task.level is not None:
            set_level = getattr(self.env.unwrapped, "set_level", None)
            if set_level is None:
                raise TypeError(
                    f"{type(self.env.unwrapped).__name__} has no set_level(); wrap a "
                    "LevelEnv (see minigrid_level_env) or pass apply_task/make_env"
                )
            set_level(task.level)
        else:
            raise TypeError(
                "the task has params but no level: pass apply_task(env, task) or "
                "make_env(task) to configure the env for box/discrete task spaces"
            )

    def _end_episode(self, info: Mapping[str, Any]) -> None:
        self._stats["episodes_finished"] += 1
        task_id, self._report_to = self._report_to, None
        if task_id is None:
            self._stats["episodes_unreported"] += 1
            return
        if self._owner_pid != os.getpid():
            # Forked mid-episode: the parent owns this task and reports it.
            self._stats["episodes_unreported"] += 1
            return
        session = self._session
        try:
            ret = float(self._return)  # rewards may be numpy scalars; the wire wants a float
            if session is None or not math.isfinite(ret):
                raise ValueError(f"cannot report return {ret!r}")
            success = self._success(ret, info)
            session.report(
                {
                    "task_id": task_id,
                    "episode_return": ret,
                    "success": success,
                    "length": self._length,
                }
            )
        except (TypeError, ValueError, ValidationError, TeacherClientError) as exc:
            # Losing one report must not stop training; the task's lease expires instead.
            self._stats["reports_failed"] += 1
            log.warning("report of task %s not queued: %s", task_id, exc)
            return
        self._stats["episodes_reported"] += 1

    def _success(self, ret: float, info: Mapping[str, Any]) -> bool:
        if self.success_fn is not None:
            return bool(self.success_fn(ret, info))
        for key in _SUCCESS_KEYS:
            if key in info:
                return bool(info[key])
        return ret > 0
