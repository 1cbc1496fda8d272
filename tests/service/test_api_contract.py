"""The HTTP contract (docs/api.md) against a real server: routes, errors, idempotency."""

from __future__ import annotations

import httpx
import pytest

from tests.conftest import BOX2


def _create(c: httpx.Client, name: str = "exp", teacher: dict | None = None, seed: int = 0) -> dict:
    r = c.post(
        "/v1/experiments",
        json={"name": name, "space": BOX2, "teacher": teacher or {"kind": "random"}, "seed": seed},
    )
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture
def client(server) -> httpx.Client:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        yield c


def test_health_teachers_and_metrics(client: httpx.Client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    body = client.get("/v1/teachers").json()
    kinds = {t["kind"]: t for t in body["data"]}
    assert body["count"] == len(body["data"])
    assert {"random", "alp_gmm", "covar_gmm", "riac", "lp_tree"} <= set(kinds)
    for kind in ("covar_gmm", "riac", "lp_tree"):
        assert kinds[kind]["spaces"] == ["box"] and kinds[kind]["description"]
    assert kinds["riac"]["hyperparameters"]["properties"]["max_region_size"]["default"] == 200
    assert kinds["lp_tree"]["hyperparameters"]["properties"]["lp_window"]["default"] == 8
    # defaults of docs/algorithms.md#robust-plr and #accel
    for kind, p in (("plr", 0.5), ("accel", 0.8)):
        props = kinds[kind]["hyperparameters"]["properties"]
        assert kinds[kind]["spaces"] == ["level"]
        assert props["replay_prob"]["default"] == p and props["buffer_size"]["default"] == 4000
        assert props["temperature"]["default"] == 0.3 and props["staleness_coef"]["default"] == 0.3
    alp = kinds["alp_gmm"]
    assert alp["spaces"] == ["box"]
    assert alp["hyperparameters"]["properties"]["fit_rate"]["default"] == 250
    assert alp["hyperparameters"]["properties"]["random_task_ratio"]["default"] == 0.2
    assert alp["description"]
    _create(client)
    client.post("/v1/experiments/exp/tasks", json={"n": 3})
    text = client.get("/metrics").text
    assert 'autocurriculum_tasks_issued_total{experiment="exp"} 3.0' in text
    assert 'autocurriculum_teacher_waits_total{experiment="exp"} 0.0' in text
    assert 'autocurriculum_teacher_wait_seconds_total{experiment="exp"} 0.0' in text
    assert "autocurriculum_request_seconds_bucket" in text


def test_experiment_crud_by_id_and_name(client: httpx.Client) -> None:
    e = _create(client, "first", {"kind": "alp_gmm", "fit_rate": 100}, seed=3)
    assert (
        e["teacher"]["fit_rate"] == 100 and e["teacher"]["bootstrap"] == 250
    )  # defaults filled in
    assert e["seed"] == 3
    _create(client, "second")
    assert client.get(f"/v1/experiments/{e['id']}").json()["name"] == "first"
    assert client.get("/v1/experiments/first").json()["id"] == e["id"]
    listing = client.get("/v1/experiments").json()
    assert listing["count"] == 2 and [x["name"] for x in listing["data"]] == ["first", "second"]


def test_tasks_reports_state_and_idempotency(client: httpx.Client) -> None:
    _create(client, "e", {"kind": "alp_gmm"})
    tasks = client.post("/v1/experiments/e/tasks", json={"n": 5, "worker": "w1"}).json()["tasks"]
    assert len(tasks) == 5 and len({t["id"] for t in tasks}) == 5
    for t in tasks:
        assert 0 <= t["params"]["x"] <= 1 and 0 <= t["params"]["y"] <= 1
        assert t["mode"] == "train"
    reps = [
        {"task_id": t["id"], "episode_return": 0.25, "success": False, "length": 10} for t in tasks
    ]
    assert client.post("/v1/experiments/e/reports", json={"reports": reps}).json() == {
        "accepted": 5,
        "duplicates": 0,
        "expired": 0,
    }
    # A retried batch, and a repeat inside one batch, count once.
    again = client.post("/v1/experiments/e/reports", json={"reports": reps + reps[:1]}).json()
    assert again == {"accepted": 0, "duplicates": 6, "expired": 0}
    state = client.get("/v1/experiments/e/state").json()
    assert state["counters"]["reports_accepted"] == 5
    assert state["counters"]["duplicates"] == 6
    assert state["counters"]["tasks_issued"] == 5 and state["counters"]["outstanding"] == 0
    assert state["teacher_kind"] == "alp_gmm"
    assert state["teacher"]


BAD_CASES = [
    # (name, method, path, kwargs, status, message fragment)
    (
        "malformed json",
        "post",
        "/v1/experiments/{e}/reports",
        {"content": b'{"reports": [', "headers": {"content-type": "application/json"}},
        422,
        "JSON",
    ),
    (
        "nan return",
        "post",
        "/v1/experiments/{e}/reports",
        {
            "content": b'{"reports":[{"task_id":"TASK","episode_return":NaN}]}',
            "headers": {"content-type": "application/json"},
        },
        422,
        "finite",
    ),
    (
        "inf return",
        "post",
        "/v1/experiments/{e}/reports",
        {
            "content": b'{"reports":[{"task_id":"TASK","episode_return":Infinity}]}',
            "headers": {"content-type": "application/json"},
        },
        422,
        "finite",
    ),
    (
        "unknown experiment tasks",
        "post",
        "/v1/experiments/nope/tasks",
        {"json": {"n": 1}},
        404,
        "nope",
    ),
    ("unknown experiment state", "get", "/v1/experiments/nope/state", {}, 404, "nope"),
    (
        "unknown task",
        "post",
        "/v1/experiments/{e}/reports",
        {
            "json": {
                "reports": [
                    {"task_id": "TASK", "episode_return": 1.0},
                    {"task_id": "e-999999", "episode_return": 1.0},
                ]
            }
        },
        404,
        "e-999999",
    ),
    (
        "oversize task batch",
        "post",
        "/v1/experiments/{e}/tasks",
        {"json": {"n": 100000}},
        422,
        "less than or equal to 4096",
    ),
    (
        "oversize report batch",
        "post",
        "/v1/experiments/{e}/reports",
        {"json": {"reports": [{"task_id": "TASK", "episode_return": 1.0}] * 5000}},
        422,
        "at most 4096",
    ),
    ("zero tasks", "post", "/v1/experiments/{e}/tasks", {"json": {"n": 0}}, 422, "n"),
    (
        "empty report batch",
        "post",
        "/v1/experiments/{e}/reports",
        {"json": {"reports": []}},
        422,
        "reports",
    ),
    (
        "unknown teacher kind",
        "post",
        "/v1/experiments",
        {"json": {"name": "x", "space": BOX2, "teacher": {"kind": "nope"}}},
        422,
        "nope",
    ),
    (
        "hyper-parameter out of range",
        "post",
        "/v1/experiments",
        {
            "json": {
                "name": "x",
                "space": BOX2,
                "teacher": {"kind": "alp_gmm", "random_task_ratio": 1.5},
            }
        },
        422,
        "random_task_ratio",
    ),
    (
        "unknown hyper-parameter",
        "post",
        "/v1/experiments",
        {"json": {"name": "x", "space": BOX2, "teacher": {"kind": "alp_gmm", "fitrate": 5}}},
        422,
        "fitrate",
    ),
    (
        "box bounds inverted",
        "post",
        "/v1/experiments",
        {
            "json": {
                "name": "x",
                "space": {"kind": "box", "dims": [{"name": "a", "low": 1, "high": 0}]},
                "teacher": {"kind": "random"},
            }
        },
        422,
        "low",
    ),
    (
        "teacher rejects space",
        "post",
        "/v1/experiments",
        {
            "json": {
                "name": "x",
                "space": {"kind": "discrete", "tasks": [{"name": "a"}]},
                "teacher": {"kind": "alp_gmm"},
            }
        },
        422,
        "does not accept",
    ),
    (
        "duplicate name",
        "post",
        "/v1/experiments",
        {"json": {"name": "{e}", "space": BOX2, "teacher": {"kind": "random"}}},
        409,
        "already exists",
    ),
    (
        "bad name",
        "post",
        "/v1/experiments",
        {"json": {"name": "has space", "space": BOX2, "teacher": {"kind": "random"}}},
        422,
        "name",
    ),
    (
        "negative length",
        "post",
        "/v1/experiments/{e}/reports",
        {"json": {"reports": [{"task_id": "TASK", "episode_return": 1.0, "length": -1}]}},
        422,
        "length",
    ),
    (
        "extra report field",
        "post",
        "/v1/experiments/{e}/reports",
        {"json": {"reports": [{"task_id": "TASK", "episode_return": 1.0, "bogus": 1}]}},
        422,
        "bogus",
    ),
    (
        "body too large",
        "post",
        "/v1/experiments/{e}/reports",
        {"content": b"x" * (17 * 1024 * 1024), "headers": {"content-type": "application/json"}},
        413,
        "exceeds",
    ),
]


@pytest.fixture(scope="module")
def shared_client(shared_server) -> httpx.Client:
    """One server for all bad-input cases (each case uses its own experiment)."""
    with httpx.Client(base_url=shared_server.url, timeout=30) as c:
        yield c


@pytest.mark.parametrize("case", BAD_CASES, ids=[c[0] for c in BAD_CASES])
def test_bad_input_gets_4xx_and_changes_nothing(shared_client: httpx.Client, case) -> None:
    name, method, path, kwargs, status, fragment = case
    client = shared_client
    e = "case-" + name.replace(" ", "-")
    _create(client, e, {"kind": "alp_gmm"})
    t = client.post(f"/v1/experiments/{e}/tasks", json={"n": 2}).json()["tasks"]
    client.post(
        f"/v1/experiments/{e}/reports",
        json={"reports": [{"task_id": t[0]["id"], "episode_return": 0.5}]},
    )
    before = client.get(f"/v1/experiments/{e}/state").json()
    listing = client.get("/v1/experiments").json()
    tid = t[1]["id"]
    if "json" in kwargs:
        kwargs = {**kwargs, "json": _subst(kwargs["json"], tid, e)}
    if "content" in kwargs and len(kwargs["content"]) < 10_000:
        kwargs = {**kwargs, "content": kwargs["content"].replace(b"TASK", tid.encode())}
    r = client.request(method, path.format(e=e), **kwargs)
    assert r.status_code == status, r.text
    assert fragment.lower() in r.json()["detail"].lower(), r.json()
    assert client.get(f"/v1/experiments/{e}/state").json() == before
    assert client.get("/v1/experiments").json() == listing
    # The outstanding task can still be reported normally afterwards.
    ok = client.post(
        f"/v1/experiments/{e}/reports",
        json={"reports": [{"task_id": tid, "episode_return": 0.1}]},
    )
    assert ok.json()["accepted"] == 1


def _subst(obj, tid: str, e: str):
    if isinstance(obj, dict):
        return {k: _subst(v, tid, e) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_subst(v, tid, e) for v in obj]
    return tid if obj == "TASK" else e if obj == "{e}" else obj


def test_token_required_on_v1_when_configured(server_factory, sqlite_url: str) -> None:
    srv = server_factory(sqlite_url, token="s3cret")
    with httpx.Client(base_url=srv.url) as c:
        assert c.get("/healthz").status_code == 200
        for path in ("/v1/experiments", "/v1/teachers", "/metrics"):
            r = c.get(path)
            assert r.status_code == 401 and "token" in r.json()["detail"]
            assert c.get(path, headers={"Authorization": "Bearer wrong"}).status_code == 401
        r = c.post(
            "/v1/experiments", json={"name": "a", "space": BOX2, "teacher": {"kind": "random"}}
        )
        assert r.status_code == 401
        auth = {"Authorization": "Bearer s3cret"}
        assert (
            c.post(
                "/v1/experiments",
                json={"name": "a", "space": BOX2, "teacher": {"kind": "random"}},
                headers=auth,
            ).status_code
            == 201
        )
        assert c.get("/v1/experiments", headers=auth).json()["count"] == 1


def test_discrete_space_random_teacher(client: httpx.Client) -> None:
    space = {
        "kind": "discrete",
        "tasks": [{"name": "easy", "description": "go right"}, {"name": "hard"}],
    }
    assert (
        client.post(
            "/v1/experiments", json={"name": "d", "space": space, "teacher": {"kind": "random"}}
        ).status_code
        == 201
    )
    tasks = client.post("/v1/experiments/d/tasks", json={"n": 50}).json()["tasks"]
    assert {t["params"]["task"] for t in tasks} == {"easy", "hard"}


def test_lease_expiry_tells_teacher_and_late_report_is_acknowledged(
    server_factory, sqlite_url: str
) -> None:
    srv = server_factory(sqlite_url)
    with httpx.Client(base_url=srv.url) as c:
        r = c.post(
            "/v1/experiments",
            json={"name": "l", "space": BOX2, "teacher": {"kind": "random"}, "lease_seconds": 0.5},
        )
        assert r.status_code == 201
        tasks = c.post("/v1/experiments/l/tasks", json={"n": 3}).json()["tasks"]
        c.post(
            "/v1/experiments/l/reports",
            json={"reports": [{"task_id": tasks[0]["id"], "episode_return": 1.0}]},
        )
        import time

        deadline = time.time() + 10
        while time.time() < deadline:  # the sweeper expires idle experiments' tasks
            counters = c.get("/v1/experiments/l/state").json()["counters"]
            if counters["expired"] == 2:
                break
            time.sleep(0.2)
        assert counters["expired"] == 2 and counters["outstanding"] == 0
        late = c.post(
            "/v1/experiments/l/reports",
            json={"reports": [{"task_id": tasks[1]["id"], "episode_return": 1.0}]},
        ).json()
        assert late == {"accepted": 0, "duplicates": 0, "expired": 1}
        assert c.get("/v1/experiments/l/state").json()["counters"]["reports_accepted"] == 1
