"""``teacher_service.client`` against real servers (plus a few retry checks on a mock transport).

The key test kills the server with SIGKILL twice while a ``CurriculumSession`` drives an
experiment, and checks that every report reached the server exactly once.
"""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from api_schemas.spaces import BoxSpace
from api_schemas.teachers import RandomConfig
from teacher_service.client import (
    ApiError,
    ConflictError,
    CurriculumSession,
    InvalidRequestError,
    NotFoundError,
    PayloadTooLargeError,
    ServerUnavailableError,
    TeacherClient,
    TeacherClientError,
    UnauthorizedError,
)
from tests.conftest import BOX2
from tests.helpers import ServerProcess, free_port

REPO = Path(__file__).resolve().parents[2]
RANDOM = {"kind": "random"}


@pytest.fixture
def client(shared_server: ServerProcess) -> Iterator[TeacherClient]:
    with TeacherClient(shared_server.url, retries=3, backoff=0.01) as c:
        yield c


def _fill(session: CurriculumSession, n: int, ret: float = 0.5) -> list[str]:
    """Pull ``n`` tasks from the session and report each; returns the task ids."""
    ids = []
    for _ in range(n):
        t = session.next_task(timeout=30)
        session.report({"task_id": t.id, "episode_return": ret})
        ids.append(t.id)
    return ids


# ----------------------------------------------------------------------------- packaging
def test_client_imports_nothing_heavy() -> None:
    code = (
        "import sys; import teacher_service.client; "
        "heavy = [m for m in ('fastapi', 'starlette', 'uvicorn', 'torch', 'ray') "
        "if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    res = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert res.returncode == 0, res.stderr


# ----------------------------------------------------------------------------- endpoints
def test_health_and_teachers(client: TeacherClient) -> None:
    assert client.health() is True
    kinds = {t.kind: t for t in client.teachers()}
    assert {"random", "alp_gmm"} <= set(kinds)
    assert "box" in kinds["alp_gmm"].spaces
    assert kinds["alp_gmm"].hyperparameters["properties"]["fit_rate"]["default"] == 250
    with TeacherClient(f"http://127.0.0.1:{free_port()}", retries=0) as dead:
        assert dead.health() is False


def test_create_get_list(client: TeacherClient) -> None:
    exp = client.create_experiment("cgl", BOX2, RANDOM, seed=7, lease_seconds=120.0)
    assert exp.name == "cgl" and exp.seed == 7 and exp.lease_seconds == 120.0
    assert exp.teacher.kind == "random" and [d.name for d in exp.space.dims] == ["x", "y"]
    assert exp.counters.tasks_issued == 0
    by_name = client.get_experiment("cgl")
    by_id = client.get_experiment(exp.id)
    assert by_name.id == by_id.id == exp.id
    listed = {e.name: e.id for e in client.list_experiments()}
    assert listed["cgl"] == exp.id
    st = client.state("cgl")
    assert st.id == exp.id and st.teacher_kind == "random" and st.counters.reports_accepted == 0


def test_exist_ok_returns_matching_and_rejects_different(client: TeacherClient) -> None:
    first = client.create_experiment("eo", BOX2, RANDOM, seed=3)
    # The same setup spelled differently: models instead of dicts, integer bounds.
    box_ints = {"kind": "box", "dims": [{"name": n, "low": 0, "high": 1} for n in ("x", "y")]}
    again = client.create_experiment(
        "eo", BoxSpace.model_validate(box_ints), RandomConfig(), seed=3, exist_ok=True
    )
    assert again.id == first.id
    with pytest.raises(ConflictError, match="already exists") as plain:
        client.create_experiment("eo", BOX2, RANDOM, seed=3)
    assert plain.value.status_code == 409
    with pytest.raises(ConflictError, match="different space, teacher or seed"):
        client.create_experiment("eo", BOX2, RANDOM, seed=4, exist_ok=True)
    with pytest.raises(ConflictError, match="different"):
        client.create_experiment("eo", BOX2, {"kind": "alp_gmm"}, seed=3, exist_ok=True)
    one_dim = {"kind": "box", "dims": [{"name": "x", "low": 0.0, "high": 1.0}]}
    with pytest.raises(ConflictError, match="different"):
        client.create_experiment("eo", one_dim, RANDOM, seed=3, exist_ok=True)
    assert [e.id for e in client.list_experiments() if e.name == "eo"] == [first.id]
    # A level space is stored with its generator's defaults filled in: the same config asked
    # for again (with or without those defaults) is the same experiment; another is not.
    level = {"kind": "level", "generator": "minigrid", "config": {"size": 7, "max_walls": 4}}
    made = client.create_experiment("eo-level", level, RANDOM)
    assert made.space.config["min_walls"] == 0
    again = client.create_experiment("eo-level", made.space, RANDOM, exist_ok=True)
    assert again.id == made.id
    assert client.create_experiment("eo-level", level, RANDOM, exist_ok=True).id == made.id
    other = {**level, "config": {"size": 7, "max_walls": 5}}
    with pytest.raises(ConflictError, match="different"):
        client.create_experiment("eo-level", other, RANDOM, exist_ok=True)


# -------------------------------------------------------------------------------- errors
def test_not_found_errors(client: TeacherClient) -> None:
    for call in (
        lambda: client.get_experiment("no-such-exp"),
        lambda: client.state("no-such-exp"),
        lambda: client.sample("no-such-exp", 1),
    ):
        with pytest.raises(NotFoundError, match="no-such-exp") as ei:
            call()
        assert ei.value.status_code == 404 and isinstance(ei.value, ApiError)
        assert "no-such-exp" in ei.value.detail
    client.create_experiment("nf", BOX2, RANDOM)
    with pytest.raises(NotFoundError, match="was not issued"):
        client.report("nf", [{"task_id": "bogus-1", "episode_return": 1.0}])


def test_batch_above_the_documented_limit(client: TeacherClient) -> None:
    client.create_experiment("big", BOX2, RANDOM)
    with pytest.raises(InvalidRequestError, match="4096") as ei:
        client.sample("big", 5000)
    assert ei.value.status_code == 422 and ei.value.attempts == 1
    assert client.state("big").counters.tasks_issued == 0


def test_body_above_the_size_limit(client: TeacherClient) -> None:
    # Schema-valid (4096 reports of 64 long score names) but ~40 MB: above the 16 MiB body
    # limit, which is the one limit JSON Schema cannot state.
    client.create_experiment("huge", BOX2, RANDOM)
    tasks = client.sample("huge", 4096)
    scores = {f"{k:03d}" + "s" * 125: 0.5 for k in range(64)}
    reports = [{"task_id": t.id, "episode_return": 1.0, "scores": scores} for t in tasks]
    with pytest.raises(PayloadTooLargeError, match="exceeds") as ei:
        client.report("huge", reports)
    assert ei.value.status_code == 413 and ei.value.attempts == 1
    assert client.state("huge").counters.reports_accepted == 0


def test_invalid_request(client: TeacherClient) -> None:
    with pytest.raises(InvalidRequestError, match=r"no_such_teacher|kind") as ei:
        client.create_experiment("bad", BOX2, {"kind": "no_such_teacher"})
    assert ei.value.status_code == 422
    with pytest.raises(InvalidRequestError, match="low"):
        client.create_experiment(
            "bad", {"kind": "box", "dims": [{"name": "x", "low": 1, "high": 0}]}, RANDOM
        )
    client.create_experiment("inv", BOX2, RANDOM)
    with pytest.raises(InvalidRequestError, match="greater than or equal to 1"):
        client.sample("inv", 0)
    assert "bad" not in {e.name for e in client.list_experiments()}


def test_unauthorized(server_factory: Callable[..., ServerProcess], sqlite_url: str) -> None:
    srv = server_factory(sqlite_url, token="s3cret")
    with TeacherClient(srv.url, retries=0) as anon:
        assert anon.health() is True  # liveness needs no token
        with pytest.raises(UnauthorizedError, match="bearer token") as ei:
            anon.list_experiments()
        assert ei.value.status_code == 401
    with TeacherClient(srv.url, token="wrong", retries=0) as wrong:
        with pytest.raises(UnauthorizedError):
            wrong.create_experiment("t", BOX2, RANDOM)
    with TeacherClient(srv.url, token="s3cret") as ok:
        assert ok.create_experiment("t", BOX2, RANDOM).name == "t"
        assert [e.name for e in ok.list_experiments()] == ["t"]


def test_unreachable_server_raises_after_retries() -> None:
    state = random.getstate()
    with TeacherClient(f"http://127.0.0.1:{free_port()}", retries=2, backoff=0.01) as c:
        t0 = time.monotonic()
        with pytest.raises(ServerUnavailableError, match="3 attempts") as ei:
            c.list_experiments()
        assert time.monotonic() - t0 < 5
    assert ei.value.attempts == 3 and ei.value.last_status is None
    assert not isinstance(ei.value, ApiError) and isinstance(ei.value, TeacherClientError)
    assert random.getstate() == state  # jitter comes from the client's own RNG


# ------------------------------------------------------------------ retry rules (mocked)
def _scripted(statuses: list[int], body: dict) -> tuple[httpx.MockTransport, list[str]]:
    """A transport answering with ``statuses`` in turn (then 200 + body); records methods."""
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        k = len(calls) - 1
        if k < len(statuses):
            return httpx.Response(statuses[k], json={"detail": f"scripted {statuses[k]}"})
        return httpx.Response(200, json=body)

    return httpx.MockTransport(handler), calls


def test_retry_rules_by_status() -> None:
    empty = {"data": [], "count": 0}
    transport, calls = _scripted([503, 502, 504, 500], empty)
    with TeacherClient("http://teacher", transport=transport, backoff=0.001) as c:
        assert c.list_experiments() == []
    assert len(calls) == 5  # 5xx on an idempotent GET: retried

    transport, calls = _scripted([500], {"tasks": []})
    with TeacherClient("http://teacher", transport=transport, backoff=0.001) as c:
        with pytest.raises(ApiError, match="scripted 500") as ei:
            c.sample("e", 1)
    assert ei.value.status_code == 500 and calls == ["POST"]  # 500 on a POST of tasks: not

    transport, calls = _scripted([503], {"tasks": []})
    with TeacherClient("http://teacher", transport=transport, backoff=0.001) as c:
        assert c.sample("e", 1) == []
    assert calls == ["POST", "POST"]  # 503 means nothing happened: retried

    transport, calls = _scripted([404], empty)
    with TeacherClient("http://teacher", transport=transport, backoff=0.001) as c:
        with pytest.raises(NotFoundError, match="scripted 404"):
            c.list_experiments()
    assert len(calls) == 1  # 4xx: never retried

    transport, calls = _scripted([503] * 10, empty)
    with TeacherClient("http://teacher", transport=transport, retries=3, backoff=0.001) as c:
        with pytest.raises(ServerUnavailableError, match="scripted 503") as ue:
            c.list_experiments()
    assert len(calls) == 4 and ue.value.last_status == 503


# ------------------------------------------------------------------ sample / report
def test_sample_report_roundtrip_and_duplicates(client: TeacherClient) -> None:
    client.create_experiment("rt", BOX2, RANDOM, seed=1)
    tasks = client.sample("rt", 10, worker="w0")
    assert len({t.id for t in tasks}) == 10
    assert all(0.0 <= t.params[d] <= 1.0 for t in tasks for d in ("x", "y"))
    assert all(t.lease_expires_at > time.time() for t in tasks)
    reports = [{"task_id": t.id, "episode_return": 0.25, "success": False} for t in tasks]
    ack = client.report("rt", reports[:6])
    assert (ack.accepted, ack.duplicates, ack.expired) == (6, 0, 0)
    ack = client.report("rt", reports)  # a retry of everything: only the new four count
    assert (ack.accepted, ack.duplicates) == (4, 6)
    # All-or-nothing: one unknown id rejects the whole batch.
    more = client.sample("rt", 2)
    with pytest.raises(NotFoundError):
        client.report(
            "rt",
            [
                {"task_id": more[0].id, "episode_return": 1.0},
                {"task_id": "rt-nope", "episode_return": 1.0},
            ],
        )
    st = client.state("rt")
    assert st.counters.reports_accepted == 10 and st.counters.tasks_issued == 12
    assert st.teacher["episodes"] == 10 and st.teacher["mean_return"] == pytest.approx(0.25)


def test_report_validates_locally(client: TeacherClient) -> None:
    client.create_experiment("val", BOX2, RANDOM)
    (task,) = client.sample("val", 1)
    with pytest.raises(ValueError, match="finite"):
        client.report("val", [{"task_id": task.id, "episode_return": float("nan")}])
    assert client.state("val").counters.reports_accepted == 0


# ---------------------------------------------------------------------------- session
def test_session_prefetch_and_batched_reports_exactly_once(client: TeacherClient) -> None:
    client.create_experiment("sess", BOX2, RANDOM)
    n = 500
    with client.session("sess", prefetch=32, report_batch=16, flush_interval=0.05) as s:
        ids = _fill(s, n)
        s.flush(timeout=30)
        stats = s.stats
        time.sleep(0.1)  # the prefetcher tops the buffer up to at most `prefetch`
        assert s.stats["buffered"] <= 32
    assert len(set(ids)) == n
    assert stats["reports_queued"] == stats["reports_acked"] == stats["accepted"] == n
    assert stats["duplicates"] == stats["dropped"] == stats["reports_pending"] == 0
    assert stats["tasks_delivered"] == n <= stats["tasks_received"] <= n + 32
    st = client.state("sess")
    assert st.counters.reports_accepted == n
    assert st.counters.tasks_issued == s.stats["tasks_received"]
    # Batching: far fewer report events than reports.
    assert st.counters.events < n // 4
    s.close()  # idempotent
    with pytest.raises(TeacherClientError, match="closed"):
        s.report({"task_id": ids[0], "episode_return": 0.0})
    with pytest.raises(TeacherClientError, match="closed"):
        s.next_task(timeout=1)


def test_session_flush_interval_sends_a_partial_batch(client: TeacherClient) -> None:
    client.create_experiment("part", BOX2, RANDOM)
    with client.session("part", prefetch=4, report_batch=1000, flush_interval=0.05) as s:
        _fill(s, 3)
        deadline = time.monotonic() + 10
        while s.stats["reports_acked"] < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert s.stats["reports_acked"] == 3  # sent without flush(): the interval passed
    assert client.state("part").counters.reports_accepted == 3


def test_session_many_threads(client: TeacherClient) -> None:
    client.create_experiment("mt", BOX2, RANDOM)
    seen: list[list[str]] = [[] for _ in range(4)]
    with client.session("mt", prefetch=16, report_batch=8) as s:
        threads = [
            threading.Thread(target=lambda k=k: seen[k].extend(_fill(s, 100))) for k in range(4)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=60)
        s.flush(timeout=30)
    all_ids = [i for part in seen for i in part]
    assert len(all_ids) == len(set(all_ids)) == 400
    assert client.state("mt").counters.reports_accepted == 400


def test_session_drops_only_the_unknown_report(client: TeacherClient) -> None:
    client.create_experiment("drop", BOX2, RANDOM)
    with client.session("drop", prefetch=8, report_batch=50, flush_interval=5.0) as s:
        good = _fill(s, 20)
        s.report({"task_id": "drop-bogus-999", "episode_return": 1.0})
        good += _fill(s, 20)
        s.flush(timeout=30)
        stats = s.stats
    assert stats["dropped"] == 1 and "drop-bogus-999" in stats["last_error"]
    assert stats["accepted"] == len(good) == 40
    assert client.state("drop").counters.reports_accepted == 40


def test_session_unknown_experiment_raises(client: TeacherClient) -> None:
    s = client.session("no-such-session-exp", prefetch=4, flush_interval=0.01)
    with pytest.raises(NotFoundError, match="no-such-session-exp"):
        s.next_task(timeout=10)
    assert "no-such-session-exp" in s.stats["last_error"]
    # Reports to an unknown experiment are kept (not dropped), and flush says why.
    s.report({"task_id": "x-1", "episode_return": 0.0})
    with pytest.raises(NotFoundError, match="no-such-session-exp"):
        s.flush(timeout=10)
    assert s.stats["dropped"] == 0 and s.stats["reports_pending"] == 1
    with pytest.raises(NotFoundError):
        s.close(timeout=2)
    assert s.closed
    s.close()  # a second close is a no-op


def test_session_next_task_times_out_without_server() -> None:
    with TeacherClient(f"http://127.0.0.1:{free_port()}", backoff=0.01, max_backoff=0.05) as c:
        s = c.session("anything", prefetch=4)
        t0 = time.monotonic()
        with pytest.raises(TimeoutError, match="no task"):
            s.next_task(timeout=0.3)
        assert 0.25 < time.monotonic() - t0 < 5
        assert s.stats["retries"] > 0 and s.stats["tasks_received"] == 0
        s.close(timeout=1)
    assert s.closed


# --------------------------------------------------------------------- lost answers
class _LosingAnswers(httpx.HTTPTransport):
    """Sends every request to the real server, but drops the answer to chosen POSTs.

    This is the window a crash can hit: the server has committed the write, the client
    never hears about it and retries.

    Args:
        lose: given the 1-based ordinal of a POST, whether to drop its answer.
    """

    def __init__(self, lose: Callable[[int], bool]) -> None:
        super().__init__()
        self.lose = lose
        self.posts = 0
        self.lost = 0
        self.lost_reports = 0
        self._lock = threading.Lock()

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        resp = super().handle_request(request)
        if request.method != "POST":
            return resp
        with self._lock:
            self.posts += 1
            drop = self.lose(self.posts)
            self.lost += drop
            self.lost_reports += drop and request.url.path.endswith("/reports")
        if not drop:
            return resp
        resp.read()
        resp.close()
        raise httpx.ReadError("simulated: connection dropped before the answer", request=request)


def test_create_whose_answer_was_lost_still_succeeds(shared_server: ServerProcess) -> None:
    transport = _LosingAnswers(lambda k: k == 1)
    with TeacherClient(shared_server.url, transport=transport, backoff=0.001) as c:
        exp = c.create_experiment("lost-create", BOX2, RANDOM, seed=5)
        assert transport.lost == 1 and transport.posts == 2  # committed, retried, got 409
        assert exp.name == "lost-create" and exp.seed == 5
        assert [e.id for e in c.list_experiments() if e.name == "lost-create"] == [exp.id]


def test_session_lost_answers_are_retried_and_deduplicated(shared_server: ServerProcess) -> None:
    transport = _LosingAnswers(lambda k: k % 3 == 0)
    with TeacherClient(shared_server.url, transport=transport, backoff=0.001) as c:
        c.create_experiment("lossy", BOX2, RANDOM)
        with c.session("lossy", prefetch=16, report_batch=8, flush_interval=0.01) as s:
            ids = _fill(s, 300)
            s.flush(timeout=30)
            stats = s.stats
        st = c.state("lossy")
    assert transport.lost > 10
    assert len(set(ids)) == 300
    assert stats["duplicates"] > 0 and stats["accepted"] + stats["duplicates"] == 300
    # Every report batch whose answer was lost was retried before flush() returned (a task
    # request lost while the session closes is, rightly, not retried).
    assert transport.lost_reports > 0
    assert stats["reports_acked"] == 300 and stats["retries"] >= transport.lost_reports
    assert st.counters.reports_accepted == 300  # each report counted once
    # Task batches whose answer was lost were issued but never handed out: they just expire.
    assert st.counters.tasks_issued > stats["tasks_received"]


# -------------------------------------------------------------------------- the key test
def test_session_survives_two_sigkills_without_loss_or_double_count(
    server_factory: Callable[..., ServerProcess], sqlite_url: str
) -> None:
    srv = server_factory(sqlite_url)
    n_tasks, kill_at = 3000, (1000, 2000)
    client = TeacherClient(srv.url, timeout=10.0, backoff=0.02, max_backoff=0.25)
    client.create_experiment("chaos", BOX2, RANDOM, seed=11)

    reported: list[str] = []
    kills: list[float] = []
    chaos_error: list[BaseException] = []

    def chaos() -> None:
        try:
            for mark in kill_at:
                while len(reported) < mark:
                    time.sleep(0.002)
                srv.kill()  # SIGKILL: no shutdown hooks, requests in flight are cut
                kills.append(time.monotonic())
                time.sleep(0.2)
                srv.start()
        except BaseException as exc:  # surfaced by the main thread
            chaos_error.append(exc)

    killer = threading.Thread(target=chaos, daemon=True)
    with client.session("chaos", prefetch=64, report_batch=64, flush_interval=0.05) as s:
        killer.start()
        while len(reported) < n_tasks and not chaos_error:
            task = s.next_task(timeout=60)
            s.report({"task_id": task.id, "episode_return": 0.5})
            reported.append(task.id)
        killer.join(timeout=60)
        s.flush(timeout=60)
        stats = s.stats
    assert not chaos_error, chaos_error
    assert len(kills) == 2

    # No task handed out twice; every report acknowledged; none dropped.
    assert len(reported) == len(set(reported)) == n_tasks
    assert stats["reports_queued"] == stats["reports_acked"] == n_tasks
    assert stats["dropped"] == stats["expired"] == 0
    assert stats["accepted"] + stats["duplicates"] == n_tasks  # repeats of lost answers
    assert stats["retries"] > 0  # the outages were real

    # The server counted each distinct task exactly once, and the teacher saw each once.
    st = client.state("chaos")
    assert st.counters.reports_accepted == n_tasks
    assert st.teacher["episodes"] == n_tasks
    assert st.teacher["mean_return"] == pytest.approx(0.5)

    # Durable: a third crash after the flush changes nothing, and every report is known.
    srv.kill()
    srv.start()
    st = client.state("chaos")
    assert st.counters.reports_accepted == n_tasks and st.teacher["episodes"] == n_tasks
    ack = client.report("chaos", [{"task_id": i, "episode_return": 0.5} for i in reported])
    assert (ack.accepted, ack.duplicates) == (0, n_tasks)
    client.close()
