"""The contract's limits and its one error model, against a real server.

Regression tests for what fuzzing the server against its own ``/openapi.json`` found: a huge
``length`` answered 500, a huge ``episodes`` made the history unexportable as Parquet, the
422 body did not match the documented schema. And the document itself: every limit the
server enforces on a request is stated in it (walked field by field below), and every
operation declares the one error body for every error status.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import jsonschema
import pytest
from referencing import Registry, Resource

from api_schemas.limits import (
    MAX_BATCH,
    MAX_EPISODE_LENGTH,
    MAX_EPISODES,
    MAX_REAL,
    MAX_SCORE_NAME,
    MAX_SCORES,
)
from teacher_service.client import read_export
from teacher_service.testing import ServerProcess
from tests.conftest import BOX2


@pytest.fixture(scope="module")
def client(shared_server: ServerProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=shared_server.url, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def doc(client: httpx.Client) -> dict[str, Any]:
    return client.get("/openapi.json").json()


def _experiment(c: httpx.Client, name: str, teacher: str = "alp_gmm") -> str:
    r = c.post("/v1/experiments", json={"name": name, "space": BOX2, "teacher": {"kind": teacher}})
    assert r.status_code == 201, r.text
    return r.json()["id"]


def _task(c: httpx.Client, name: str) -> str:
    return c.post(f"/v1/experiments/{name}/tasks", json={"n": 1}).json()["tasks"][0]["id"]


def _error_validator(doc: dict[str, Any], path: str, method: str, status: int) -> Any:
    """A validator for the error body ``doc`` declares for that operation and status."""
    declared = doc["paths"][path][method]["responses"][str(status)]
    schema = declared["content"]["application/json"]["schema"]
    assert schema == {"$ref": "#/components/schemas/ErrorResponse"}, (path, method, status)
    registry = Registry().with_resource("urn:doc", Resource.opaque(doc))
    return jsonschema.Draft202012Validator(
        {"$ref": "urn:doc#/components/schemas/ErrorResponse"}, registry=registry
    )


# ------------------------------------------------------------- the three defects found
@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("length", 1959224213346770953715981869907968),  # was a 500 (TypeError)
        ("length", 2**63 + 5),  # fit u64, broke the Parquet export
        ("length", MAX_EPISODE_LENGTH + 1),
        ("episodes", 315612772839),  # was accepted, then Parquet export died mid-stream
        ("episodes", MAX_EPISODES + 1),
        ("episode_return", MAX_REAL * 2),
        ("episode_return", 10**400),  # an integer no float can hold
    ],
)
def test_out_of_range_report_is_422_naming_the_field_and_changes_nothing(
    client: httpx.Client, doc: dict[str, Any], field: str, value: int | float
) -> None:
    name = f"range-{field}-{abs(hash(value)) % 10**8}"
    _experiment(client, name)
    task_id = _task(client, name)
    before = client.get(f"/v1/experiments/{name}/state").json()
    report = {"task_id": task_id, "episode_return": 0.5, field: value}
    r = client.post(
        f"/v1/experiments/{name}/reports",
        content=json.dumps({"reports": [report]}),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 422, r.text
    body = r.json()
    assert f"reports.0.{field}" in body["detail"]
    assert [e["loc"] for e in body["errors"]] == [["body", "reports", 0, field]]
    _error_validator(doc, "/v1/experiments/{experiment_id}/reports", "post", 422).validate(body)
    assert client.get(f"/v1/experiments/{name}/state").json() == before
    # The task is still outstanding and takes a valid report; both exports work.
    ok = client.post(
        f"/v1/experiments/{name}/reports",
        json={"reports": [{"task_id": task_id, "episode_return": 0.5}]},
    )
    assert ok.json()["accepted"] == 1
    for fmt in ("jsonl", "parquet"):
        rows = read_export(client.get(f"/v1/experiments/{name}/export?format={fmt}").content)
        assert [row["type"] for row in rows] == ["experiment", "task", "report"]


def test_the_largest_accepted_values_replay_and_export(
    client: httpx.Client, shared_server: ServerProcess
) -> None:
    name = "extremes"
    _experiment(client, name)
    tasks = client.post(f"/v1/experiments/{name}/tasks", json={"n": 3}).json()["tasks"]
    scores = {f"{k:02d}" + "é" * (MAX_SCORE_NAME - 2): -MAX_REAL for k in range(MAX_SCORES)}
    reports = [
        {
            "task_id": tasks[0]["id"],
            "episode_return": MAX_REAL,
            "length": MAX_EPISODE_LENGTH,
            "episodes": MAX_EPISODES,
            "scores": scores,
            "success": True,
        },
        {"task_id": tasks[1]["id"], "episode_return": -MAX_REAL, "length": 0, "scores": {}},
        {"task_id": tasks[2]["id"], "episode_return": 5e-324, "scores": {"\x00 ☃ 𝄞": -0.0}},
    ]
    ack = client.post(f"/v1/experiments/{name}/reports", json={"reports": reports}).json()
    assert ack["accepted"] == 3
    state = client.get(f"/v1/experiments/{name}/state").json()
    exports = {
        f: client.get(f"/v1/experiments/{name}/export?format={f}") for f in ("jsonl", "parquet")
    }
    rows = {f: read_export(r.content) for f, r in exports.items()}
    assert rows["jsonl"][1:] == rows["parquet"][1:]
    got = [r for r in rows["jsonl"] if r["type"] == "report"]
    for sent, row in zip(reports, got, strict=True):
        assert row["episode_return"] == sent["episode_return"]
        assert row["scores"] == sent["scores"]
        assert row["length"] == sent.get("length")
        assert row["episodes"] == sent.get("episodes", 1)
    shared_server.kill()
    shared_server.start()
    assert client.get(f"/v1/experiments/{name}/state").json() == state
    again = read_export(client.get(f"/v1/experiments/{name}/export?format=parquet").content)
    assert again[1:] == rows["parquet"][1:]


@pytest.mark.parametrize(
    ("where", "body"),
    [
        ("score name", {"scores": {"ok\ud800": 1.0}}),
        ("worker", None),
    ],
)
def test_lone_surrogates_are_refused_with_a_message(
    client: httpx.Client, where: str, body: dict[str, Any] | None
) -> None:
    """JSON can escape a lone surrogate; UTF-8 (the log, Parquet) cannot store one."""
    name = f"surrogate-{where.replace(' ', '-')}"
    _experiment(client, name, "random")
    if body is None:
        raw = '{"n": 1, "worker": "w\\udc80"}'
        r = client.post(
            f"/v1/experiments/{name}/tasks",
            content=raw,
            headers={"content-type": "application/json"},
        )
    else:
        report = {"task_id": _task(client, name), "episode_return": 1.0, **body}
        raw = json.dumps({"reports": [report]})  # json.dumps escapes it as \ud800
        r = client.post(
            f"/v1/experiments/{name}/reports",
            content=raw,
            headers={"content-type": "application/json"},
        )
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert ("scores" if body else "worker") in detail
    assert "surrogate" in detail or "unicode" in detail
    counters = client.get(f"/v1/experiments/{name}").json()["counters"]
    assert counters["reports_accepted"] == 0
    assert counters["tasks_issued"] == (0 if body is None else 1)
    for fmt in ("jsonl", "parquet"):
        assert client.get(f"/v1/experiments/{name}/export?format={fmt}").status_code == 200


def test_batch_limits_are_the_documented_ones(client: httpx.Client, doc: dict[str, Any]) -> None:
    schemas = doc["components"]["schemas"]
    assert schemas["TaskRequest"]["properties"]["n"]["maximum"] == MAX_BATCH
    assert schemas["ReportBatch"]["properties"]["reports"]["maxItems"] == MAX_BATCH
    _experiment(client, "batches", "random")
    assert (
        len(client.post("/v1/experiments/batches/tasks", json={"n": MAX_BATCH}).json()["tasks"])
        == MAX_BATCH
    )
    r = client.post("/v1/experiments/batches/tasks", json={"n": MAX_BATCH + 1})
    assert r.status_code == 422 and str(MAX_BATCH) in r.json()["detail"]


# ------------------------------------------------------------------ the error model
def test_every_error_answer_has_the_documented_body(
    client: httpx.Client, doc: dict[str, Any], shared_server: ServerProcess
) -> None:
    _experiment(client, "errs", "random")
    cases = [
        ("/v1/experiments/{experiment_id}", "get", client.get("/v1/experiments/nope"), 404),
        (
            "/v1/experiments",
            "post",
            client.post(
                "/v1/experiments",
                json={"name": "errs", "space": BOX2, "teacher": {"kind": "random"}},
            ),
            409,
        ),
        (
            "/v1/experiments/{experiment_id}/tasks",
            "post",
            client.post("/v1/experiments/errs/tasks", json={"n": 0}),
            422,
        ),
        (
            "/v1/experiments/{experiment_id}/tasks",
            "post",
            client.post(
                "/v1/experiments/errs/tasks",
                content=b"\xff\xfe{",
                headers={"content-type": "application/json"},
            ),
            400,
        ),
        (
            "/v1/experiments/{experiment_id}/tasks",
            "post",
            client.post(
                "/v1/experiments/errs/tasks",
                content=b"{not json",
                headers={"content-type": "application/json"},
            ),
            422,
        ),
        (
            "/v1/experiments/{experiment_id}/reports",
            "post",
            client.post(
                "/v1/experiments/errs/reports",
                content=b"x" * (17 * 1024 * 1024),
                headers={"content-type": "application/json"},
            ),
            413,
        ),
        (
            "/v1/experiments/{experiment_id}",
            "get",
            client.get("/v1/experiments/" + "x" * 200),
            422,
        ),
    ]
    for path, method, resp, status in cases:
        assert resp.status_code == status, (path, resp.text)
        _error_validator(doc, path, method, status).validate(resp.json())
    assert "HTTPValidationError" not in doc["components"]["schemas"]


def test_every_operation_declares_its_error_statuses(doc: dict[str, Any]) -> None:
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            codes = {int(c) for c in op["responses"]}
            errors = {c for c in codes if c >= 400}
            if path == "/healthz":
                assert errors == set()
                continue
            assert {401, 500} <= errors, (method, path)  # token-protected
            if "{experiment_id}" in path:
                assert {404, 422} <= errors, (method, path)
            if method in ("post", "put"):
                assert {413, 422, 503} <= errors, (method, path)
            for code in errors:
                content = op["responses"][str(code)]["content"]["application/json"]
                assert content["schema"] == {"$ref": "#/components/schemas/ErrorResponse"}
    metrics = doc["paths"]["/metrics"]["get"]["responses"]["200"]["content"]
    assert list(metrics) == ["text/plain"]
    assert (
        "413" in doc["info"]["description"] and str(16 * 1024 * 1024) in doc["info"]["description"]
    )


def _unbounded(schema: dict[str, Any], comps: dict[str, Any], where: str, seen: tuple) -> list:
    """Request schema parts without limits: numbers without both bounds, strings without a
    length limit, arrays without maxItems, maps without maxProperties or key limits."""
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return (
            []
            if name in seen
            else _unbounded(comps[name], comps, f"{where}<{name}>", (*seen, name))
        )
    out = []
    for key in ("anyOf", "oneOf", "allOf"):
        for i, sub in enumerate(schema.get(key, [])):
            out += _unbounded(sub, comps, f"{where}/{key}{i}", seen)
    if "enum" in schema or "const" in schema:
        return out
    kind = schema.get("type")
    if kind in ("integer", "number"):
        low = {"minimum", "exclusiveMinimum"} & set(schema)
        high = {"maximum", "exclusiveMaximum"} & set(schema)
        if not (low and high):
            out.append(where)
    elif kind == "string":
        if "maxLength" not in schema and schema.get("format") != "binary":
            out.append(where)
    elif kind == "array":
        if "maxItems" not in schema:
            out.append(where)
        out += _unbounded(schema.get("items", {}), comps, where + "[]", seen)
    elif kind == "object" or "properties" in schema:
        for k, sub in schema.get("properties", {}).items():
            out += _unbounded(sub, comps, f"{where}.{k}", seen)
        extra = schema.get("additionalProperties")
        if isinstance(extra, dict):
            if "maxProperties" not in schema or "maxLength" not in schema.get("propertyNames", {}):
                out.append(where + "{}")
            out += _unbounded(extra, comps, where + "{}", seen)
        elif extra is None and not schema.get("properties"):
            out.append(where + " (free-form object)")
    return out


def test_every_request_field_has_its_limits_in_the_document(doc: dict[str, Any]) -> None:
    comps = doc["components"]["schemas"]
    unbounded = []
    for path, ops in doc["paths"].items():
        for method, op in ops.items():
            for p in op.get("parameters", []):
                unbounded += _unbounded(p["schema"], comps, f"{method} {path} {p['name']}", ())
            for ctype, content in op.get("requestBody", {}).get("content", {}).items():
                unbounded += _unbounded(content["schema"], comps, f"{method} {path} {ctype}", ())
    assert unbounded == []
    # pydantic's own spelling of a bound ("ge", "le") means a bound JSON Schema does not see
    text = json.dumps(doc)
    assert not any(f'"{k}":' in text for k in ("ge", "le", "gt", "lt"))
    # and the walk does look at what matters
    report = comps["Report"]["properties"]
    assert report["episodes"]["maximum"] == MAX_EPISODES
    assert report["scores"]["maxProperties"] == MAX_SCORES
    assert report["scores"]["propertyNames"]["maxLength"] == MAX_SCORE_NAME
    assert report["episode_return"]["maximum"] == MAX_REAL
    agent = next(
        p
        for p in doc["paths"]["/v1/experiments/{experiment_id}/agents/{agent_id}"]["put"][
            "parameters"
        ]
        if p["name"] == "agent_id"
    )
    assert agent["schema"]["pattern"] and agent["schema"]["maxLength"] == 128
    body = doc["paths"]["/v1/experiments/{experiment_id}/agents/{agent_id}"]["put"]["requestBody"]
    assert body["content"]["application/octet-stream"]["schema"]["minLength"] == 1


def test_the_document_lists_its_sections_in_reading_order(doc: dict[str, Any]) -> None:
    # The server matches the students' two routes first; the document keeps the order in
    # which a reader (and a stateful fuzzer walking the links) meets the API.
    tags = [t["name"] for t in doc["tags"]]
    assert tags[:5] == ["health", "teachers", "experiments", "tasks", "reports"]
    assert all(t.get("description") for t in doc["tags"])
    sections = [next(iter(ops.values()))["tags"][0] for ops in doc["paths"].values()]
    assert sections == sorted(sections, key=tags.index)
    assert set(sections) == set(tags)
    paths = list(doc["paths"])
    assert paths.index("/v1/experiments") < paths.index("/v1/experiments/{experiment_id}/tasks")
