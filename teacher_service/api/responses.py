"""The error answers each operation declares in the OpenAPI document.

Every 4xx/5xx answer of the service has the one body :class:`~api_schemas.errors.ErrorResponse`
(``{"detail": "...", "errors": [...] | null}``); each route lists the statuses it can return
with :func:`errors`, so that a client generated from ``/openapi.json`` can parse every answer.
"""

from __future__ import annotations

from typing import Any

from api_schemas.errors import ErrorResponse

#: What each error status means in this API.
ERROR_DESCRIPTIONS: dict[int, str] = {
    400: "The body could not be parsed (it must be UTF-8 encoded JSON).",
    401: "Missing or wrong bearer token (when the server is started with a token).",
    404: "No experiment with that id or name, or no such task or agent in it.",
    406: "Parquet was asked for, but pyarrow is not installed on the server.",
    409: "An experiment with that name exists (or is being deleted).",
    413: "The request body is larger than the server accepts (16 MiB unless configured).",
    422: (
        "The request is invalid: `detail` says why in one line, `errors` lists each invalid "
        "field. Limits that JSON Schema cannot state (`low < high`, `min_k <= max_k`, a teacher "
        "that does not accept the space, a report without the score its teacher needs, a "
        "body that does not match `X-Content-SHA256`) are checked here too."
    ),
    500: "An unexpected server error (a bug: nothing was acknowledged).",
    503: "Storage failed: nothing was acknowledged or stored; retry.",
}

#: Statuses every token-protected operation can return.
PROTECTED = (401, 500)
#: ... every operation on one experiment (its id or name in the path).
ON_EXPERIMENT = (*PROTECTED, 404, 422)
#: ... every operation with a JSON body that is written to storage.
JSON_WRITE = (400, 413, 422, 503)


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries of a route for these error statuses (sorted, deduplicated)."""
    return {
        code: {"model": ErrorResponse, "description": ERROR_DESCRIPTIONS[code]}
        for code in sorted(set(codes))
    }


def errors_as_json(doc: dict[str, Any]) -> dict[str, Any]:
    """Declare every error answer of ``doc`` (an OpenAPI document) as ``application/json``.

    FastAPI files a route's extra responses under the route's own media type, which for the
    event stream is ``text/event-stream``; its errors are JSON like every other.
    """
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            for code, response in op.get("responses", {}).items():
                content = response.get("content", {})
                if code[:1] in "45" and content and "application/json" not in content:
                    response["content"] = {"application/json": next(iter(content.values()))}
    return doc


#: Operations on one experiment, reached from its creation with the new id.
_ON_NEW_EXPERIMENT = (
    "get_experiment",
    "add_space_tasks",
    "get_state",
    "create_tasks",
    "post_evaluations",
    "list_evaluations",
    "put_agent",
    "list_agents",
    "export_history",
    "get_frame",
    "stream_frames",
    "delete_experiment",
)
_SAME_EXPERIMENT = {"experiment_id": "$request.path.experiment_id"}

#: OpenAPI links: how one answer feeds the next request (operationId, status) -> links. They
#: tell a reader, and a stateful fuzzer, the life of an experiment: create it, ask for tasks,
#: report them, read its state and history, store agents, delete it.
LINKS: dict[tuple[str, str], dict[str, dict[str, Any]]] = {
    ("create_experiment", "201"): {
        op: {"operationId": op, "parameters": {"experiment_id": "$response.body#/id"}}
        for op in _ON_NEW_EXPERIMENT
    },
    ("create_tasks", "200"): {
        "report_the_first_task": {
            "operationId": "create_reports",
            "parameters": _SAME_EXPERIMENT,
            "requestBody": {
                "reports": [{"task_id": "$response.body#/tasks/0/id", "episode_return": 0.5}]
            },
            # Schemathesis: send this body as it is (a generated report would name a task
            # that was never issued, and a batch is all-or-nothing).
            "x-schemathesis": {"merge_body": False},
        },
    },
    ("create_reports", "200"): {
        op: {"operationId": op, "parameters": _SAME_EXPERIMENT}
        for op in ("get_state", "export_history", "create_tasks")
    },
    ("put_agent", "200"): {
        "get_the_agent": {
            "operationId": "get_agent",
            "parameters": {**_SAME_EXPERIMENT, "agent_id": "$response.body#/agent_id"},
        },
        "list_agents": {"operationId": "list_agents", "parameters": _SAME_EXPERIMENT},
    },
    ("post_evaluations", "201"): {
        "list_evaluations": {"operationId": "list_evaluations", "parameters": _SAME_EXPERIMENT},
    },
}


def add_links(doc: dict[str, Any]) -> dict[str, Any]:
    """Attach :data:`LINKS` to the answers of ``doc`` (an OpenAPI document)."""
    for ops in doc.get("paths", {}).values():
        for op in ops.values():
            for status, response in op.get("responses", {}).items():
                links = LINKS.get((op.get("operationId", ""), status))
                if links:
                    response["links"] = links
    return doc
