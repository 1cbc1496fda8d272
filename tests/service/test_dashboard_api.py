"""The dashboard's data: downsampled series (rules against hand-computed cases), frames and
the live server-sent-event stream on a real server (token, errors, restarts, shutdown)."""

from __future__ import annotations

import math
import re
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from teacher_service.client import TeacherClient
from teacher_service.dashboard.history import ExperimentHistory
from teacher_service.dashboard.series import EvaluationTrack, RateWindow, ReportSeries
from teacher_service.storage import Store
from tests.conftest import BOX2
from tests.dashboard_feed import FAST_POET, POET_LEVEL_SPACE, feed_poet

TOKEN = "dash-t0k"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


# ------------------------------------------------------------------ series rules
def test_report_series_halves_and_keeps_every_report() -> None:
    s = ReportSeries(capacity=4)
    returns = [float(i) for i in range(10)]
    for i, r in enumerate(returns):
        s.add_tasks(1)
        s.add_reports(t=float(i), returns=[r], successes=[i % 2 == 0])
    # 10 single reports into 4 slots: halved at the 5th (bucket 2) and at the 9th (bucket 4).
    assert s.bucket == 4
    assert len(s.points) <= 4
    assert sum(p.n for p in s.points) == 10
    assert [p.n for p in s.points] == [4, 4, 2]
    out = s.export(max_points=100)
    assert out.reports == [4, 8, 10] and out.tasks == [4, 8, 10] and out.t == [3.0, 7.0, 9.0]
    assert out.mean_return == [1.5, 5.5, 8.5]
    assert out.success_rate == [0.5, 0.5, 0.5]
    # Asking for fewer points merges neighbours; the weighted mean is exact.
    two = s.export(max_points=2)
    assert two.reports == [8, 10] and two.mean_return == [3.5, 8.5] and two.bucket == 8
    one = s.export(max_points=1)
    assert one.mean_return == [4.5] and one.reports == [10]


def test_report_series_batches_and_unknown_success() -> None:
    s = ReportSeries(capacity=8)
    s.add_reports(1.0, [1.0, 0.0, 0.5], [None, None, None])
    s.add_reports(2.0, [], [])  # nothing to fold
    s.add_reports(3.0, [0.25], [True])
    out = s.export(50)
    # bucket 1: the batch of three is one point (batches are never split).
    assert out.reports == [3, 4] and out.mean_return == [0.5, 0.25]
    assert out.success_rate == [None, 1.0]
    with pytest.raises(ValueError, match="even number"):
        ReportSeries(capacity=3)


def test_rate_window_counts_the_last_seconds_only() -> None:
    w = RateWindow(window_s=10.0)
    w.add(100.0, 50, 0)
    w.add(105.0, 0, 20)
    w.add(109.0, 10, 10)
    assert w.rates(now=109.5) == (6.0, 3.0)
    assert w.rates(now=112.0) == (1.0, 3.0)  # the entry at 100 left the window
    assert w.rates(now=200.0) == (0.0, 0.0)


def test_evaluation_track_thins_and_keeps_the_newest() -> None:
    tr = EvaluationTrack("Labyrinth", capacity=4)
    for i in range(9):
        tr.add(float(i), i * 100, i / 10, 0.0)
    assert len(tr.rows) <= 4 and tr.rows[-1][0] == 8.0
    out = tr.export(max_points=2)
    assert len(out.t) == 2 and out.t[-1] == 8.0 and out.solve_rate[-1] == 0.8


# ----------------------------------------------------------- history from the log
def test_history_folds_the_log_incrementally(tmp_path: Path) -> None:
    store = Store(f"sqlite:///{tmp_path / 'h.db'}")
    try:
        exp = "e1"
        tasks = {"n": 3, "worker": None, "first": 0, "deadline": 9.0, "tasks": [{}, {}, {}]}
        store.append_event(exp, 1, "tasks", orjson.dumps(tasks))
        store.append_event(
            exp,
            2,
            "reports",
            orjson.dumps(
                {
                    "reports": [
                        {"i": 0, "episode_return": 1.0, "success": True},
                        {"i": 1, "episode_return": 0.0},
                    ]
                }
            ),
        )
        store.add_evaluations(exp, ['{"env":"A","episodes":1,"solve_rate":0.5,"mean_return":0.4}'])
        store.barrier().result(timeout=10)
        h = ExperimentHistory(store, exp)
        assert h.refresh() is True
        assert (h.seq, h.series.reports, h.series.tasks, h.evaluations) == (2, 2, 3, 1)
        assert h.refresh() is False  # nothing new: nothing re-read
        store.append_event(exp, 3, "expire", orjson.dumps({"indices": [2]}))
        store.barrier().result(timeout=10)
        assert h.refresh() is True and h.expired == 1 and h.seq == 3
        pts = h.series.export(10)
        assert pts.mean_return == [0.5] and pts.success_rate == [1.0]
        assert h.tracks["A"].export(10).solve_rate == [0.5]
    finally:
        store.close()


# ------------------------------------------------------------------ over HTTP
@pytest.fixture
def srv(server_factory, sqlite_url: str):
    return server_factory(sqlite_url, token=TOKEN)


def _client(srv) -> httpx.Client:
    return httpx.Client(base_url=srv.url, headers=AUTH, timeout=30)


def _create(c: httpx.Client, name: str, teacher: dict | None = None) -> str:
    r = c.post(
        "/v1/experiments",
        json={"name": name, "space": BOX2, "teacher": teacher or {"kind": "random"}, "seed": 3},
    )
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _issue_and_report(c: httpx.Client, exp: str, returns: list[float]) -> None:
    tasks = c.post(f"/v1/experiments/{exp}/tasks", json={"n": len(returns)}).json()["tasks"]
    body = {
        "reports": [
            {"task_id": t["id"], "episode_return": r, "success": r > 0.5}
            for t, r in zip(tasks, returns, strict=True)
        ]
    }
    assert c.post(f"/v1/experiments/{exp}/reports", json=body).status_code == 200


def test_frame_matches_what_was_sent(srv) -> None:
    with _client(srv) as c:
        exp = _create(c, "frame")
        batches = [[0.1, 0.2, 0.9], [1.0, 0.0], [0.75]]
        for b in batches:
            _issue_and_report(c, exp, b)
        evals = [
            {
                "env": "SixteenRooms",
                "episodes": 10,
                "solve_rate": 0.1,
                "mean_return": 0.05,
                "env_steps": 1000,
            },
            {
                "env": "Labyrinth",
                "episodes": 10,
                "solve_rate": 0.0,
                "mean_return": 0.0,
                "env_steps": 1000,
            },
            {
                "env": "SixteenRooms",
                "episodes": 10,
                "solve_rate": 0.4,
                "mean_return": 0.3,
                "env_steps": 2000,
            },
        ]
        assert (
            c.post(f"/v1/experiments/{exp}/evaluations", json={"evaluations": evals}).status_code
            == 201
        )
        f = c.get("/v1/experiments/frame/dashboard", params={"max_points": 50}).json()
        assert f["id"] == exp and f["name"] == "frame" and f["teacher_kind"] == "random"
        assert f["counters"]["tasks_issued"] == 6 and f["counters"]["reports_accepted"] == 6
        assert f["seq"] == 6 == f["counters"]["events"]  # 3 task events + 3 report events
        p = f["progress"]
        assert p["reports"] == [3, 5, 6] and p["tasks"] == [3, 5, 6]
        assert p["mean_return"] == pytest.approx([0.4, 0.5, 0.75])
        assert p["success_rate"] == pytest.approx([1 / 3, 0.5, 1.0])
        assert f["throughput"]["reports_per_s"] == pytest.approx(6 / f["throughput"]["window_s"])
        assert [e["env"] for e in f["evaluations"]] == ["Labyrinth", "SixteenRooms"]
        six = f["evaluations"][1]
        assert six["solve_rate"] == [0.1, 0.4] and six["env_steps"] == [1000, 2000]
        assert (
            f["hyperparameters"]["kind"] == "random"
            and f["space"] == c.get(f"/v1/experiments/{exp}").json()["space"]
        )
        assert f["teacher"] == c.get(f"/v1/experiments/{exp}/state").json()["teacher"]


#: The poet teacher's view as docs/poet.md's protocol has it ("Teacher view"): key -> type.
_INT = (int,)
_OPT_NUM = (int, float, type(None))
POET_VIEW_KEYS = {
    "iteration": _INT,
    "annecs": _INT,
    "annecs_history": (list,),
    "pairs": (list,),
    "archived": (list,),
    "archived_count": _INT,
    "archive_size": _INT,
    "transfers": (list,),
    "transfer_count": _INT,
    "admitted": _INT,
    "children": (dict,),
    "agents": (dict,),
    "checks": (dict,),
    "mc": (list,),
}
POET_PAIR_KEYS = {
    "env_id": _INT,
    "agent_id": (str,),
    "init_from": (str, type(None)),
    "level": (str,),
    "params": (dict, type(None)),
    "score": _OPT_NUM,
    "evaluations": _INT,
    "born": _INT,
    "age": _INT,
    "parent": (int, type(None)),
    "agent_since": _INT,
}
POET_TRANSFER_KEYS = {
    "iteration": _INT,
    "env_id": _INT,
    "from_agent": (str,),
    "agent_id": (str,),
    "score": (int, float),
    "incumbent": (int, float),
}


def poet_view_deviations(view: dict) -> list[str]:
    """Every way ``view`` differs from the protocol's poet teacher view (empty: none)."""
    out: list[str] = []

    def keys(where: str, obj: object, spec: dict) -> None:
        if not isinstance(obj, dict):
            out.append(f"{where}: {type(obj).__name__}, not an object")
            return
        for k, types in spec.items():
            if k not in obj:
                out.append(f"{where}.{k}: missing")
            elif isinstance(obj[k], bool) or not isinstance(obj[k], types):
                out.append(f"{where}.{k}: {obj[k]!r} is not {'|'.join(t.__name__ for t in types)}")

    keys("view", view, POET_VIEW_KEYS)
    for name in ("pairs", "archived"):
        for i, p in enumerate(view.get(name) or []):
            keys(f"view.{name}[{i}]", p, POET_PAIR_KEYS)
    for i, t in enumerate(view.get("transfers") or []):
        keys(f"view.transfers[{i}]", t, POET_TRANSFER_KEYS)
    hist = view.get("annecs_history") or []
    if not all(isinstance(pt, list) and len(pt) == 2 for pt in hist) or hist[:1] != [[0, 0]]:
        out.append(f"view.annecs_history: {hist[:3]!r}... is not [[0, 0], [iteration, annecs]...]")
    children = ("made", "duplicates", "mc_passed", "mc_failed", "not_admitted")
    keys("view.children", view.get("children"), dict.fromkeys(children, _INT))
    keys(
        "view.agents",
        view.get("agents"),
        dict.fromkeys(("active", "candidates", "archived"), (list,)),
    )
    checks = view.get("checks") or {}
    if checks.get("transfer") not in ("idle", "direct", "fine_tune"):
        out.append(f"view.checks.transfer: {checks.get('transfer')!r}")
    if checks.get("reproduction") not in ("idle", "minimal_criterion", "scoring"):
        out.append(f"view.checks.reproduction: {checks.get('reproduction')!r}")
    if len(view.get("mc") or []) != 2:
        out.append(f"view.mc: {view.get('mc')!r} is not [low, high]")
    return out


def test_poet_frame_carries_the_protocol_view(srv) -> None:
    """A poet experiment driven until it has several pairs: its frame's teacher view is the
    one of /state, in the protocol's shape (what the dashboard's POET panel draws)."""
    with TeacherClient(srv.url, token=TOKEN, timeout=30.0) as client:
        exp = client.create_experiment("poet", space=POET_LEVEL_SPACE, teacher=FAST_POET, seed=4).id
        view = feed_poet(
            client, exp, lambda v: len(v.get("pairs") or []) > 1 and v.get("transfer_count", 0) > 0
        )
    with _client(srv) as c:
        f = c.get(f"/v1/experiments/{exp}/dashboard").json()
        assert f["teacher_kind"] == "poet"
        assert f["teacher"] == c.get(f"/v1/experiments/{exp}/state").json()["teacher"] == view
        # the recent levels say which agent played them
        recent = f["recent_levels"]
        assert recent and all(lv["agent_id"].startswith("agent-") for lv in recent)
    assert poet_view_deviations(view) == []
    pairs = view["pairs"]
    assert [p["agent_id"] for p in pairs] == view["agents"]["active"]
    assert view["archive_size"] >= len(pairs) + view["archived_count"]  # every admitted env
    assert view["transfer_count"] >= len(view["transfers"]) >= 1
    assert view["annecs_history"][-1][1] == view["annecs"]
    assert all(p["level"].count("\n") == 6 for p in pairs)  # 7 x 7 levels


def test_frame_downsamples_a_long_run(srv) -> None:
    with _client(srv) as c:
        exp = _create(c, "long")
        returns = []
        for k in range(60):
            batch = [((k * 7 + j) % 10) / 10 for j in range(5)]
            returns += batch
            _issue_and_report(c, exp, batch)
        f = c.get(f"/v1/experiments/{exp}/dashboard", params={"max_points": 10}).json()
        p = f["progress"]
        assert len(p["t"]) <= 10 and p["reports"][-1] == 300 and p["bucket"] >= 6
        # every report counts once: the point means weighted by their sizes give the total mean
        sizes = [b - a for a, b in zip([0, *p["reports"][:-1]], p["reports"], strict=True)]
        total = sum(m * n for m, n in zip(p["mean_return"], sizes, strict=True))
        assert total == pytest.approx(math.fsum(returns))


def test_token_and_errors(srv) -> None:
    with _client(srv) as c:
        exp = _create(c, "guarded")
    for path in (f"/v1/experiments/{exp}/dashboard", f"/v1/experiments/{exp}/events"):
        r = httpx.get(srv.url + path, timeout=10)
        assert r.status_code == 401 and "token" in r.json()["detail"]
        r = httpx.get(srv.url + path, headers={"Authorization": "Bearer wrong"}, timeout=10)
        assert r.status_code == 401
    with _client(srv) as c:
        r = c.get("/v1/experiments/nope/dashboard")
        assert r.status_code == 404 and "nope" in r.json()["detail"]
        assert c.get("/v1/experiments/nope/events").status_code == 404
        r = c.get(f"/v1/experiments/{exp}/dashboard", params={"max_points": 5})
        assert r.status_code == 422 and "max_points" in r.json()["detail"]
        r = c.get(f"/v1/experiments/{exp}/events", params={"interval": 0})
        assert r.status_code == 422 and "interval" in r.json()["detail"]
        r = c.get(f"/v1/experiments/{exp}/dashboard", params={"max_points": "lots"})
        assert r.status_code == 422
    # The page itself holds no data: public.
    page = httpx.get(srv.url + "/", timeout=10)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")


def test_page_assets_are_shipped_and_local(srv) -> None:
    html = httpx.get(srv.url + "/", timeout=10).text
    refs = re.findall(r'(?:src|href)="([^"#]+)"', html)
    assert refs, "the page references its scripts and styles"
    for ref in refs:
        assert not ref.startswith(("http:", "https:", "//")), f"external asset {ref}"
        r = httpx.get(srv.url + "/" + ref.lstrip("/"), timeout=10)
        assert r.status_code == 200, ref
    assert httpx.get(srv.url + "/dashboard/static/nope.js", timeout=10).status_code == 404


def _frames(url: str, n: int, on_frame=None, timeout: float = 30.0) -> Iterator[dict]:
    """Read ``n`` frames of the event stream; ``on_frame(k)`` runs after the k-th."""
    got = 0
    event: dict = {}
    with httpx.stream("GET", url, headers=AUTH, timeout=timeout) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        for line in r.iter_lines():
            if not line:
                if "data" in event:
                    assert event.get("event") == "frame"
                    yield event
                    got += 1
                    if on_frame:
                        on_frame(got)
                    if got == n:
                        return
                event = {}
                continue
            if line.startswith(":"):
                continue
            field, _, value = line.partition(":")
            event[field] = value.lstrip(" ")


def test_stream_sends_a_frame_at_once_then_live_updates(srv) -> None:
    with _client(srv) as c:
        exp = _create(c, "live")
        _issue_and_report(c, exp, [0.5])
        t0 = time.monotonic()

        def feed(k: int) -> None:
            if k < 3:
                _issue_and_report(c, exp, [0.25 * k, 1.0])

        frames = list(_frames(f"{srv.url}/v1/experiments/{exp}/events?interval=0.2", 3, feed))
    data = [orjson.loads(f["data"]) for f in frames]
    seqs = [int(f["id"]) for f in frames]
    assert seqs == [d["seq"] for d in data]
    assert seqs[0] == 2 and seqs[1] > seqs[0] and seqs[2] > seqs[1]
    assert [d["counters"]["reports_accepted"] for d in data] == [1, 3, 5]
    assert data[-1]["progress"]["reports"][-1] == 5
    assert time.monotonic() - t0 < 20  # frames came as things changed, not on a slow clock


def test_stream_ends_after_limit_frames(srv) -> None:
    with _client(srv) as c:
        exp = _create(c, "limited")
        _issue_and_report(c, exp, [0.5])

        def feed(k: int) -> None:
            _issue_and_report(c, exp, [0.1 * k])

        url = f"{srv.url}/v1/experiments/{exp}/events?interval=0.1&limit=2"
        frames = list(_frames(url, 10, feed))  # asks for more than the server sends
    assert len(frames) == 2
    assert int(frames[1]["id"]) > int(frames[0]["id"])


def test_stream_reports_repeats_and_survives_a_restart(srv) -> None:
    with _client(srv) as c:
        exp = _create(c, "restart")
        for _ in range(4):
            _issue_and_report(c, exp, [0.2, 0.4, 0.6])
        before = c.get(f"/v1/experiments/{exp}/dashboard").json()
    srv.kill()
    srv.start()
    with _client(srv) as c:
        after = c.get(f"/v1/experiments/{exp}/dashboard").json()
        # the history is read back from the durable log (times included), not lost
        for key in ("seq", "progress", "evaluations", "counters"):
            assert after[key] == before[key]

        tasks = c.post(f"/v1/experiments/{exp}/tasks", json={"n": 1}).json()["tasks"]
        rep = {"reports": [{"task_id": tasks[0]["id"], "episode_return": 0.3}]}

        def repeat(k: int) -> None:
            if k == 1:
                c.post(f"/v1/experiments/{exp}/reports", json=rep)
                c.post(f"/v1/experiments/{exp}/reports", json=rep)  # a repeat: no new event

        frames = list(_frames(f"{srv.url}/v1/experiments/{exp}/events?interval=0.2", 2, repeat))
        last = orjson.loads(frames[-1]["data"])
        assert last["counters"]["duplicates"] == 1 and last["counters"]["reports_accepted"] == 13


def test_server_stops_promptly_with_open_streams(srv) -> None:
    with _client(srv) as c:
        exp = _create(c, "open")
    opened = threading.Event()

    def hold() -> None:
        try:
            for _ in _frames(f"{srv.url}/v1/experiments/{exp}/events", 100, lambda k: opened.set()):
                pass
        except httpx.HTTPError:
            pass  # the server went away: expected

    readers = [threading.Thread(target=hold, daemon=True) for _ in range(3)]
    for t in readers:
        t.start()
    assert opened.wait(20)
    t0 = time.monotonic()
    srv.stop()
    assert time.monotonic() - t0 < 15
    assert srv.proc.returncode is not None
