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
