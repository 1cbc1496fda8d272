"""The students' two calls skip FastAPI's request handler (its dependency solver) when a
request is valid, and answer every request exactly as the standard route does.

Each probe is sent to a server whose task and report routes are ``DirectRoute`` and to one
whose routes are built as plain ``APIRoute`` (same code otherwise), with and without a
token; the answers (status, content type, body) must be the same, and FastAPI's handler must
have run exactly for the probes the direct path hands to it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any

import fastapi.routing
import pytest
from fastapi import APIRouter, Depends, FastAPI
from pydantic import BaseModel

from teacher_service.api.deps import MetricsDep, RuntimeDep
from teacher_service.api.direct_route import DirectRoute
from tests.conftest import BOX2
from tests.helpers import in_process, serve

TOKEN = "s3cret"
JSON = "application/json"

#: (name, path under the experiment, headers, body bytes, whether the direct path takes it)
#: ``{task}`` in a body is replaced by a task id issued to the probe run.
PROBES: list[tuple[str, str, dict[str, str], bytes, bool]] = [
    ("tasks", "/tasks", {"content-type": JSON}, b'{"n": 2, "worker": "w0"}', True),
    ("charset", "/tasks", {"content-type": f"{JSON}; charset=utf-8"}, b'{"n": 1}', True),
    ("defaults", "/tasks", {"content-type": JSON}, b"{}", True),
    ("repeated key", "/tasks", {"content-type": JSON}, b'{"n": 1, "n": 3}', True),
    ("text/plain", "/tasks", {"content-type": "text/plain"}, b'{"n": 1}', False),
    ("no content type", "/tasks", {}, b'{"n": 1}', False),
    ("+json", "/tasks", {"content-type": "application/vnd.x+json"}, b'{"n": 1}', False),
    ("empty body", "/tasks", {"content-type": JSON}, b"", False),
    ("bad json", "/tasks", {"content-type": JSON}, b'{"n": ', False),
    ("not utf-8", "/tasks", {"content-type": JSON}, b'{"n": "\xff"}', False),
    ("n = 0", "/tasks", {"content-type": JSON}, b'{"n": 0}', False),
    ("n = true", "/tasks", {"content-type": JSON}, b'{"n": true}', False),
    ("n = NaN", "/tasks", {"content-type": JSON}, b'{"n": NaN}', False),
    ("array", "/tasks", {"content-type": JSON}, b"[]", False),
    ("extra field", "/tasks", {"content-type": JSON}, b'{"n": 1, "x": 1}', False),
    ("lone surrogate", "/tasks", {"content-type": JSON}, b'{"worker": "\\ud800"}', False),
    (
        "report",
        "/reports",
        {"content-type": JSON},
        b'{"reports": [{"task_id": "{task}", "episode_return": 0.25, "success": true}]}',
        True,
    ),
    (
        "repeat",
        "/reports",
        {"content-type": JSON},
        b'{"reports": [{"task_id": "{task}", "episode_return": 0.25}]}',
        True,
    ),
    (
        "unknown task",  # the endpoint's own 404: raised on the direct path
        "/reports",
        {"content-type": JSON},
        b'{"reports": [{"task_id": "nope-0", "episode_return": 0.25}]}',
        True,
    ),
    (
        "infinite return",
        "/reports",
        {"content-type": JSON},
        b'{"reports": [{"task_id": "{task}", "episode_return": Infinity}]}',
        False,
    ),
    ("no reports", "/reports", {"content-type": JSON}, b'{"reports": []}', False),
]


def _answers(db: str, token: str | None, standard_calls: list[int]) -> dict[str, Any]:
    """Each probe's answer from a fresh server, and how often FastAPI's handler ran for it."""
    out: dict[str, Any] = {}
    auth = {"Authorization": f"Bearer {token}"} if token else {}
    with in_process(db, token=token) as c:
        r = c.post(
            "/v1/experiments",
            json={"name": "direct", "space": BOX2, "teacher": {"kind": "random"}, "seed": 3},
            headers=auth,
        )
        assert r.status_code == 201, r.text
        task = c.post("/v1/experiments/direct/tasks", json={"n": 1}, headers=auth).json()
        task_id = task["tasks"][0]["id"]
        cases = [(name, "/v1/experiments/direct" + path, h, b, d) for name, path, h, b, d in PROBES]
        cases += [
            (
                "unknown experiment",
                "/v1/experiments/nope/tasks",
                {"content-type": JSON},
                b"{}",
                True,
            ),
            (
                "name too long",
                f"/v1/experiments/{'x' * 129}/tasks",
                {"content-type": JSON},
                b"{}",
                False,
            ),
        ]
        if token:
            cases += [
                ("no token", "/v1/experiments/direct/tasks", {"content-type": JSON}, b"{}", False),
                (
                    "wrong token",
                    "/v1/experiments/direct/tasks",
                    {"content-type": JSON},
                    b"{}",
                    False,
                ),
                (
                    "lowercase scheme",
                    "/v1/experiments/direct/tasks",
                    {"content-type": JSON},
                    b"{}",
                    True,
                ),
            ]
        for name, path, headers, body, direct in cases:
            headers = {**auth, **headers}
            if name == "no token":
                headers.pop("Authorization")
            elif name == "wrong token":
                headers["Authorization"] = "Bearer wrong"
            elif name == "lowercase scheme":
                headers["Authorization"] = f"bearer {token}"
            before = standard_calls[0]
            r = c.post(path, content=body.replace(b"{task}", task_id.encode()), headers=headers)
            out[name] = {
                "status": r.status_code,
                "type": r.headers.get("content-type"),
                "auth": r.headers.get("www-authenticate"),
                # Task ids and leases differ from server to server.
                "body": re.sub(r'"(id|lease_expires_at)":("[^"]*"|[0-9.e+]+)', r'"\1":_', r.text),
                "standard": standard_calls[0] - before,
                "direct": direct,
            }
    return out


@pytest.mark.parametrize("token", [None, TOKEN], ids=["open", "token"])
def test_every_answer_is_the_standard_route_s_and_valid_requests_take_the_direct_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, token: str | None
) -> None:
    calls = [0]
    build = fastapi.routing.get_request_handler

    def counted(*args: Any, **kwargs: Any) -> Any:
        handler = build(*args, **kwargs)

        async def standard(request: Any) -> Any:
            calls[0] += 1
            return await handler(request)

        return standard

    monkeypatch.setattr(fastapi.routing, "get_request_handler", counted)
    with monkeypatch.context() as m:
        # FastAPI builds an included route's handler when it is first matched: the patch
        # holds for the standard server's whole life.
        m.setattr(DirectRoute, "get_route_handler", fastapi.routing.APIRoute.get_route_handler)
        standard = _answers(f"sqlite:///{tmp_path / 'standard.db'}", token, calls)
    direct = _answers(f"sqlite:///{tmp_path / 'direct.db'}", token, calls)

    for name, answer in direct.items():
        expected = standard[name]
        assert {k: answer[k] for k in ("status", "type", "auth", "body")} == {
            k: expected[k] for k in ("status", "type", "auth", "body")
        }, name
        assert expected["standard"] == 1, name
        if answer["direct"]:
            assert answer["standard"] == 0, f"{name}: the direct path was not taken"
        else:
            assert answer["standard"] == 1, f"{name}: should have gone to FastAPI's handler"
    statuses = {name: a["status"] for name, a in direct.items()}
    assert statuses["tasks"] == statuses["report"] == 200
    assert '"duplicates":1' in direct["repeat"]["body"]
    assert statuses["unknown task"] == statuses["unknown experiment"] == 404
    assert statuses["not utf-8"] == 400
    assert statuses["n = 0"] == statuses["name too long"] == statuses["bad json"] == 422
    if token:
        assert statuses["no token"] == statuses["wrong token"] == 401
        assert statuses["lowercase scheme"] == 200


class _Body(BaseModel):
    n: int = 1


async def _other() -> int:
    return 1


async def _with_query(body: _Body, rt: RuntimeDep, q: int = 0) -> _Body:
    return body


async def _with_unknown_dependency(body: _Body, o: Annotated[int, Depends(_other)]) -> _Body:
    return body


async def _without_body(rt: RuntimeDep) -> _Body:
    return _Body()


def _sync(body: _Body, rt: RuntimeDep) -> _Body:
    return body


async def _valid(body: _Body, rt: RuntimeDep) -> _Body:
    return body


#: Routes the direct path cannot answer as FastAPI would, and why they are refused.
UNSUPPORTED = {
    "query": (_with_query, {}, "only a body, path parameters and known dependencies"),
    "dependency": (_with_unknown_dependency, {}, "no direct resolver for the dependency"),
    "no body": (_without_body, {}, "exactly one JSON body"),
    "sync": (_sync, {}, "must be an async function"),
    "shaped": (_valid, {"response_model_exclude_none": True}, "serialised whole"),
}


@pytest.mark.parametrize("kind", UNSUPPORTED)
def test_a_route_the_direct_path_cannot_resolve_is_refused_when_built(kind: str) -> None:
    endpoint, options, message = UNSUPPORTED[kind]
    router = APIRouter(route_class=DirectRoute)
    with pytest.raises(TypeError, match=message):
        router.post("/{experiment_id}/x", **options)(endpoint)
    APIRouter(route_class=DirectRoute).post("/{experiment_id}/x")(_valid)  # this one is fine


def test_an_answer_that_fails_its_model_is_a_500_and_the_endpoint_runs_once() -> None:
    calls: list[int] = []

    async def broken(body: _Body, metrics: MetricsDep) -> Any:
        calls.append(body.n)
        return {"n": "not a number"}

    router = APIRouter(route_class=DirectRoute)
    router.post("/{experiment_id}/x", response_model=_Body)(broken)
    app = FastAPI()
    app.state.metrics = object()
    app.include_router(router)
    with serve(app) as c:
        r = c.post("/e/x", json={"n": 7})
    assert r.status_code == 500
    assert calls == [7]
