"""``/v1/experiments/{id}/evaluations``: evaluators' held-out results, stored durably beside
the teacher's log (they never change what the teacher proposes)."""

from __future__ import annotations

import httpx
import pytest
from pydantic import ValidationError

from teacher_service.client import NotFoundError, TeacherClient
from tests.conftest import BOX2

RESULT = {"env": "Labyrinth", "episodes": 10, "solve_rate": 0.3, "mean_return": 0.21}


def test_post_list_and_survive_a_restart(server_factory, sqlite_url: str) -> None:
    srv = server_factory(sqlite_url, token="t0k")
    with TeacherClient(srv.url, token="t0k") as client:
        exp = client.create_experiment("ev", BOX2, {"kind": "random"}, seed=1)
        before = client.sample("ev", 3)
        assert client.post_evaluations("ev", [RESULT]) == 1
        more = [
            {**RESULT, "env": "MiniGrid-FourRooms-v0", "env_steps": 5000, "checkpoint": "c.pt"},
            {**RESULT, "env": "Corridor", "solve_rate": 1.0, "worker": "evaluator-0"},
        ]
        assert client.post_evaluations(exp.id, more) == 2
        got = client.evaluations("ev")
        assert [e.env for e in got] == ["Labyrinth", "MiniGrid-FourRooms-v0", "Corridor"]
        assert got[1].env_steps == 5000 and got[2].worker == "evaluator-0"
        assert got[0].received_at <= got[2].received_at
        # The teacher's stream is untouched by evaluations.
        assert client.state("ev").counters.tasks_issued == len(before)
        assert httpx.get(f"{srv.url}/v1/experiments/ev/evaluations").status_code == 401
    srv.kill()
    srv.start()
    with TeacherClient(srv.url, token="t0k") as client:
        assert len(client.evaluations("ev")) == 3
        assert client.state("ev").counters.tasks_issued == 3


@pytest.mark.parametrize(
    ("item", "field"),
    [
        ({**RESULT, "solve_rate": 1.5}, "solve_rate"),
        ({**RESULT, "episodes": 0}, "episodes"),
        ({**RESULT, "env": "bad name with spaces"}, "env"),
        ({**RESULT, "extra": 1}, "extra"),
        ({k: v for k, v in RESULT.items() if k != "mean_return"}, "mean_return"),
    ],
)
def test_invalid_results_are_refused_and_nothing_is_stored(server, item: dict, field: str) -> None:
    with httpx.Client(base_url=server.url, timeout=30) as c:
        c.post("/v1/experiments", json={"name": "ev", "space": BOX2, "teacher": {"kind": "random"}})
        r = c.post("/v1/experiments/ev/evaluations", json={"evaluations": [RESULT, item]})
        assert r.status_code == 422 and field in r.text
        # NaN cannot even be sent as JSON by well-behaved clients; a raw one is refused too.
        raw = (
            b'{"evaluations": [{"env": "x", "episodes": 1, "solve_rate": 0.5, "mean_return": NaN}]}'
        )
        r = c.post(
            "/v1/experiments/ev/evaluations",
            content=raw,
            headers={"content-type": "application/json"},
        )
        assert r.status_code == 422
        assert c.post("/v1/experiments/ev/evaluations", json={"evaluations": []}).status_code == 422
        assert c.get("/v1/experiments/ev/evaluations").json() == {"data": [], "count": 0}
        r = c.post("/v1/experiments/nope/evaluations", json={"evaluations": [RESULT]})
        assert r.status_code == 404


def test_client_validates_before_sending(server) -> None:
    with TeacherClient(server.url) as client:
        client.create_experiment("ev", BOX2, {"kind": "random"})
        with pytest.raises(ValidationError):
            client.post_evaluations("ev", [{**RESULT, "solve_rate": -1}])
        with pytest.raises(NotFoundError):
            client.evaluations("missing")
        assert client.evaluations("ev") == []
