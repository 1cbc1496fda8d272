"""OMNI's models of interestingness: the similarity pairs and the walk by hand, judgements
taken by the teacher (once, checked, in its snapshot), the chat judge against a mock
endpoint, and the local sentence-embedding model on real text."""

from __future__ import annotations

import json
from typing import Any

import httpx
import numpy as np
import pytest
from scipy import sparse

from api_schemas.spaces import DiscreteSpace, DiscreteTaskSpec
from api_schemas.teachers import OMNIConfig
from teacher_service import interestingness
from teacher_service.interestingness import (
    ChatJudge,
    EmbeddingModel,
    Judges,
    JudgeUnavailableError,
    parse_answer,
)
from teacher_service.settings import Settings
from teacher_service.teachers import omni
from teacher_service.teachers.omni import BORING, INTERESTING, OMNITeacher, moi_walk, similar_pairs

SPACE = DiscreteSpace(
    tasks=[
        DiscreteTaskSpec(name="wood", description="collect wood"),
        DiscreteTaskSpec(name="wood2", description="collect wood again, variant 2"),
        DiscreteTaskSpec(name="stone", description="collect stone with a pickaxe"),
    ]
)


def teacher(**cfg: Any) -> OMNITeacher:
    config = OMNIConfig(eval_episodes=1, eval_interval=1, random_success={}, **cfg)
    return OMNITeacher(SPACE, config, np.random.default_rng(0))


# --------------------------------------------------------------------- pure rules
def test_similar_pairs_by_hand_dense_sparse_and_in_blocks(monkeypatch) -> None:
    v = np.array([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0]])
    # 0.1 = 0.8, 0.2 = 0.0, 1.2 = 0.6
    assert similar_pairs(v, [0], 0.7) == [(0, 1, 0.8), (1, 0, 0.8)]
    both = [(0, 1, 0.8), (1, 0, 0.8), (1, 2, 0.6), (2, 1, 0.6)]
    assert similar_pairs(v, [1], 0.5) == both
    assert similar_pairs(sparse.csr_matrix(v), [1], 0.5) == both
    monkeypatch.setattr(omni, "_BLOCK_ENTRIES", 1)  # one new row at a time
    assert similar_pairs(v, [0, 1, 2], 0.5) == both  # a pair of two new tasks, once


def test_the_walk_reads_sparse_one_way_judgements() -> None:
    success = np.array([0.5, 0.1, 0.9, 0.4])
    # b boring given c; d boring given a (one way: a is not boring given d)
    given = sparse.coo_matrix((np.ones(2), ([1, 3], [2, 0])), shape=(4, 4))
    label, against = moi_walk(success, given)
    assert label.tolist() == [INTERESTING, BORING, INTERESTING, BORING]
    assert against.tolist() == [0, 2, 2, 0]


# ------------------------------------------------------------- the teacher's side
def test_an_embedding_teacher_asks_once_and_takes_logged_judgements() -> None:
    t = teacher()  # model "embedding": judged outside the teacher
    req = t.judgement_request()
    assert req is not None and req.model == "embedding" and req.tasks == (0, 1, 2)
    assert req.texts[1] == "collect wood again, variant 2" and req.similarity == 0.8
    assert all(v["interesting"] and not v["judged"] for v in t.view()["tasks"])
    t.judge({"model": "embedding", "tasks": [0, 1, 2], "pairs": [[1, 0, 0.93], [0, 1, 0.93]]})
    assert t.judgement_request() is None and t.view()["unjudged"] == 0
    # before any success, ties walk in task order: wood interesting, wood2 boring given it
    view = {v["task"]: v for v in t.view()["tasks"]}
    assert not view["wood2"]["interesting"] and view["wood2"]["judged_against"] == "wood"
    assert view["wood2"]["similarity"] == 0.93 and view["stone"]["interesting"]
    # a repeat changes nothing; a wrong model or index is refused
    before = t.state_dict()
    t.judge({"model": "embedding", "tasks": [1], "pairs": [[1, 2, 0.99]]})
    assert np.array_equal(t.state_dict()["edges"], before["edges"])
    with pytest.raises(ValueError, match="model 'llm'"):
        t.judge({"model": "llm", "tasks": [0]})
    with pytest.raises(ValueError, match="outside the space"):
        t.judge({"model": "embedding", "tasks": [7]})


def test_judgements_survive_a_snapshot_and_new_tasks_are_asked_about() -> None:
    t = teacher(model="llm")
    t.judge(
        {
            "model": "llm",
            "tasks": [1],
            "pairs": [[1, 0, None]],
            "answers": [[1, '{"interesting": false, "similar_to": "wood"}']],
        }
    )
    twin = teacher(model="llm")
    twin.load_state_dict(t.state_dict())
    assert twin.view() == t.view()
    wood2 = twin.view()["tasks"][1]
    assert wood2["answer"].startswith('{"interesting": false') and wood2["similarity"] is None
    assert twin.judgement_request().tasks == (0, 2)
    grown = DiscreteSpace(tasks=[*SPACE.tasks, DiscreteTaskSpec(name="iron")])
    twin.add_tasks(grown, grown.tasks[3:])
    assert twin.judgement_request().tasks == (0, 2, 3)


def test_tfidf_judges_inside_the_teacher_and_asks_for_nothing() -> None:
    t = teacher(model="tfidf", similarity=0.4)
    assert t.judgement_request() is None and t.view()["unjudged"] == 0
    assert t.view()["tasks"][1]["judged_against"] == "wood"


# --------------------------------------------------------------------- the models
@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"interesting": false, "similar_to": "wood", "reason": "same"}', (False, "wood")),
        ('Sure.\n```json\n{"interesting": true, "similar_to": null}\n```', (True, None)),
        ("No. It is collect wood again.", (False, None)),
        ("Yes, it is new.", (True, None)),
        ("I cannot tell.", (True, None)),  # boring only on the model's word
    ],
)
def test_parse_answer(text: str, expected: tuple[bool, str | None]) -> None:
    assert parse_answer(text) == expected


def test_the_chat_judge_shows_similar_tasks_retries_and_names_the_pair() -> None:
    seen: list[dict] = []
    failures = [503]

    def endpoint(request: httpx.Request) -> httpx.Response:
        if failures:
            return httpx.Response(failures.pop())
        body = json.loads(request.content)
        seen.append(body)
        assert request.headers["authorization"] == "Bearer k"
        new_task = body["messages"][1]["content"].split("New task: ")[1]
        boring = "again" in new_task
        answer = {"interesting": not boring, "similar_to": "wood" if boring else None}
        return httpx.Response(200, json={"choices": [{"message": {"content": json.dumps(answer)}}]})

    judge = ChatJudge("http://llm/v1", "m", "k", transport=httpx.MockTransport(endpoint))
    req = teacher(model="llm", neighbours=1).judgement_request()
    got: list[dict] = []
    judge.judge(req, got.append)
    assert [g["tasks"] for g in got] == [[0], [1], [2]]  # one logged chunk per answer
    assert got[1]["pairs"] == [[1, 0, None]] and got[0]["pairs"] == got[2]["pairs"] == []
    assert seen[0]["model"] == "m" and seen[0]["temperature"] == 0
    # wood2's most similar task is shown to the model (neighbours=1), with its success
    assert "- wood: collect wood (not measured yet)" in seen[1]["messages"][1]["content"]
    refused = ChatJudge(
        "http://llm", "m", transport=httpx.MockTransport(lambda r: httpx.Response(401))
    )
    with pytest.raises(RuntimeError, match="HTTP 401"):
        refused.ask([{"role": "user", "content": "?"}])


def test_judges_refuse_a_model_that_cannot_run(monkeypatch) -> None:
    judges = Judges(Settings(llm_url=None))
    with pytest.raises(JudgeUnavailableError, match="AUTOCURRICULUM_LLM_URL"):
        judges.check(OMNIConfig(model="llm"))
    monkeypatch.setattr(interestingness, "EMBEDDING_PACKAGES", ("no_such_package_here",))
    with pytest.raises(JudgeUnavailableError, match=r"autocurriculum\[interestingness\]"):
        judges.check(OMNIConfig())
    judges.check(OMNIConfig(model="tfidf"))  # always available
    judges.close()


def test_the_local_embedding_model_separates_paraphrases_from_other_tasks() -> None:
    assert EmbeddingModel.missing() is None, "the dev install includes the interestingness extra"
    model = EmbeddingModel()
    texts = ["collect wood", "collect wood again, variant 2", "make a stone pickaxe"]
    v = model.encode(texts)
    assert v.shape == (3, 384)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 1.0, rtol=1e-5)
    sims = v @ v.T
    assert sims[0, 1] >= 0.8 > sims[0, 2]
    got: list[dict] = []
    model.judge(teacher().judgement_request(), got.append)
    assert got[0]["model"] == "embedding" and [1, 0] in [p[:2] for p in got[0]["pairs"]]


def test_a_run_that_fails_at_once_reports_on_the_judging_thread_not_the_callers() -> None:
    """The runtime submits while holding its lock and takes that lock in ``done``: ``done``
    must never run in the submitting thread, even when the model fails before any answer."""
    import threading

    judges = Judges(Settings(llm_url=None))  # 'llm' cannot run: fails at once
    lock = threading.Lock()
    finished = threading.Event()
    seen: list[tuple[str, BaseException | None]] = []

    def done(error: BaseException | None) -> None:
        with lock:  # would deadlock if called inline by submit below
            seen.append((threading.current_thread().name, error))
        finished.set()

    with lock:
        judges.submit(teacher(model="llm").judgement_request(), lambda j: None, done)
    assert finished.wait(10)
    name, error = seen[0]
    assert name.startswith("interestingness") and isinstance(error, JudgeUnavailableError)
    judges.close()
    with pytest.raises(JudgeUnavailableError, match="shutting down"):
        judges.submit(teacher(model="llm").judgement_request(), lambda j: None, done)


def test_the_embedding_model_computes_in_the_fit_processes_when_given_them() -> None:
    from teacher_service.fit_pool import FitPool

    texts = ["collect wood", "collect wood again, variant 2", "make a stone pickaxe"]
    local = EmbeddingModel().encode(texts)
    pool = FitPool(1)
    try:
        before = interestingness._sentence_model.cache_info()
        remote = EmbeddingModel(pool).encode(texts)
        # the worker loaded its own model and embedded: nothing ran in this process
        assert interestingness._sentence_model.cache_info() == before
        np.testing.assert_allclose(remote, local, atol=1e-5)
        pool.close()
        with pytest.raises(JudgeUnavailableError, match="shutting down"):
            EmbeddingModel(pool).encode(["a task never embedded before"])
    finally:
        pool.close()
