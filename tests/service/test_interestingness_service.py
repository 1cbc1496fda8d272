"""OMNI's background models of interestingness over HTTP: the ``llm`` judge against a local
fake OpenAI-compatible endpoint (judgements made once, logged, never asked again after a
SIGKILL, the restarted server proposing like a twin), and the local ``embedding`` model."""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from teacher_service.client import TeacherClient, read_export

TASKS = [
    ("wood", "collect wood"),
    ("wood-again", "collect wood again, variant 2"),
    ("table", "place a crafting table"),
    ("table-again", "place a crafting table again, variant 2"),
    ("moon", "fly to the moon"),
]
SPACE = {"kind": "discrete", "tasks": [{"name": n, "description": d} for n, d in TASKS]}
LLM = {"kind": "omni", "model": "llm", "eval_episodes": 2, "eval_interval": 6, "neighbours": 3}


class FakeChat:
    """An OpenAI-compatible ``/chat/completions`` that counts the questions per path prefix
    and calls a task that says "again" not interesting given its original."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                fake.calls[self.path.split("/")[1]] += 1
                task = body["messages"][1]["content"].split("New task: ")[1]
                name = task.split(":")[0]
                again = name.endswith("-again")
                answer = {
                    "interesting": not again,
                    "similar_to": name.removesuffix("-again") if again else None,
                    "reason": "a variant of a listed task" if again else "new",
                }
                out = json.dumps({"choices": [{"message": {"content": json.dumps(answer)}}]})
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(out.encode())

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def url(self, prefix: str) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/{prefix}/v1"


@pytest.fixture
def fake_chat() -> Iterator[FakeChat]:
    fake = FakeChat()
    yield fake
    fake.server.shutdown()


def judged(c: TeacherClient, exp: str, timeout: float = 60.0) -> dict:
    """The teacher view once every task is judged."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        view = c.state(exp).teacher
        if view["unjudged"] == 0:
            return view
        time.sleep(0.1)
    raise AssertionError(f"tasks still unjudged after {timeout}s: {view}")


def drive(c: TeacherClient, exp: str, rounds: int) -> list[dict]:
    issued = []
    for _ in range(rounds):
        tasks = c.sample(exp, 5)
        issued += [t.model_dump(mode="json", exclude={"id", "lease_expires_at"}) for t in tasks]
        c.report(
            exp,
            [
                {"task_id": t.id, "episode_return": 1.0, "success": "wood" in t.params["task"]}
                for t in tasks
            ],
        )
    return issued


def test_llm_judgements_are_made_once_logged_and_survive_sigkill(
    server_factory, fake_chat: FakeChat, tmp_path: Path
) -> None:
    servers = {
        who: server_factory(
            f"sqlite:///{tmp_path / f'{who}.db'}",
            env={"AUTOCURRICULUM_LLM_URL": fake_chat.url(who), "AUTOCURRICULUM_LLM_MODEL": "m"},
        )
        for who in ("victim", "twin")
    }
    views = {}
    for who, srv in servers.items():
        with TeacherClient(srv.url) as c:
            c.create_experiment("judged", SPACE, LLM, seed=3)
            views[who] = judged(c, "judged")
            drive(c, "judged", 4)
    assert fake_chat.calls == {"victim": 5, "twin": 5}  # one question per task
    by_task = {t["task"]: t for t in views["victim"]["tasks"]}
    assert by_task["wood-again"]["judged_against"] == "wood"
    assert by_task["table-again"]["judged_against"] == "table"
    assert '"interesting": false' in by_task["wood-again"]["answer"]
    assert by_task["moon"]["interesting"] and by_task["moon"]["answer"]

    victim, twin = servers["victim"], servers["twin"]
    with TeacherClient(victim.url) as c:
        before = c.state("judged").teacher
    victim.kill()
    victim.start()
    time.sleep(1.0)  # a restart that asked again would do it now
    with TeacherClient(victim.url) as a, TeacherClient(twin.url) as b:
        assert a.state("judged").teacher == before
        assert drive(a, "judged", 3) == drive(b, "judged", 3)
        rows = read_export(a.export("judged", tmp_path / "judged.jsonl"))
    assert fake_chat.calls == {"victim": 5, "twin": 5}
    logged = [r["judgement"] for r in rows if r["type"] == "judgement"]
    assert sorted(t for j in logged for t in j["tasks"]) == [0, 1, 2, 3, 4]
    assert all(j["model"] == "llm" for j in logged)


def test_an_unreachable_endpoint_leaves_tasks_unjudged_and_the_experiment_serving(
    server_factory, tmp_path: Path
) -> None:
    srv = server_factory(
        f"sqlite:///{tmp_path / 'down.db'}",
        env={"AUTOCURRICULUM_LLM_URL": "http://127.0.0.1:9/v1"},  # discard port: refused
    )
    with TeacherClient(srv.url) as c:
        c.create_experiment("down", SPACE, LLM)
        assert len(drive(c, "down", 2)) == 10  # proposals do not wait for the model
        view = c.state("down").teacher
    assert view["unjudged"] == 5 and all(t["interesting"] for t in view["tasks"])


def test_a_model_the_server_cannot_run_is_refused_with_what_to_do(shared_server) -> None:
    with httpx.Client(base_url=shared_server.url, timeout=30) as c:
        body = {"name": "no-llm", "space": SPACE, "teacher": LLM}
        r = c.post("/v1/experiments", json=body)
        assert r.status_code == 422 and "AUTOCURRICULUM_LLM_URL" in r.text
        assert c.get("/v1/experiments/no-llm").status_code == 404


def test_the_embedding_model_judges_in_the_background_and_replays(server_factory, tmp_path):
    srv = server_factory(f"sqlite:///{tmp_path / 'emb.db'}")
    with TeacherClient(srv.url) as c:
        c.create_experiment("emb", SPACE, {"kind": "omni", "eval_episodes": 2})
        view = judged(c, "emb", timeout=120)
        drive(c, "emb", 3)
        # a task that joins later is judged when it arrives, against every task
        c.add_tasks("emb", [{"name": "wood-3", "description": "collect wood again, variant 3"}])
        grown = judged(c, "emb")
        drive(c, "emb", 2)
        before = c.state("emb").teacher
    by_task = {t["task"]: t for t in view["tasks"]}
    assert by_task["wood-again"]["judged_against"] == "wood"
    assert by_task["wood-again"]["similarity"] >= 0.8
    assert by_task["table"]["interesting"] and by_task["moon"]["interesting"]
    assert {t["task"]: t for t in grown["tasks"]}["wood-3"]["judged_against"] == "wood"
    srv.kill()
    srv.start()
    with TeacherClient(srv.url) as c:
        assert c.state("emb").teacher == before
