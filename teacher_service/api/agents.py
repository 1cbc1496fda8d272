"""``/v1/experiments/{id}/agents``: agent checkpoints (opaque bytes) for POET / PAIRED.

``PUT .../agents/{agent_id}`` stores the request body as the agent's latest checkpoint
(answered once it is committed); ``GET`` returns those bytes with their SHA-256 as ``ETag``
(``If-None-Match`` gives 304); ``GET .../agents`` lists what is stored, without the bytes.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated

from fastapi import APIRouter, Header, Path, Request, Response, status
from starlette.concurrency import run_in_threadpool

from api_schemas.agents import AgentInfo, AgentList, agent_id_problem
from api_schemas.limits import AGENT_ID_PATTERN, MAX_AGENT_ID, SHA256_HEX_PATTERN
from teacher_service.api.deps import RuntimeDep, durable
from teacher_service.api.responses import ON_EXPERIMENT, errors
from teacher_service.errors import AgentNotFoundError, InvalidAgentError, UnavailableError
from teacher_service.runtime import ExperimentRuntime
from teacher_service.storage.store import AgentRecord, StorageError

router = APIRouter(prefix="/v1/experiments", tags=["agents"])

#: Bodies at least this large are hashed in a worker thread, not on the event loop.
_HASH_IN_THREAD_BYTES = 64 * 1024
_HEX64 = re.compile(r"^[0-9a-f]{64}$")

#: The agent id in the path. The route checks it itself (for a message that says which rule
#: it breaks), so the limits are published here rather than enforced by the framework.
AgentIdPath = Annotated[
    str,
    Path(
        description="The agent's id.",
        json_schema_extra={
            "minLength": 1,
            "maxLength": MAX_AGENT_ID,
            "pattern": AGENT_ID_PATTERN,
        },
    ),
]


def _check_agent_id(agent_id: str) -> None:
    problem = agent_id_problem(agent_id)
    if problem is not None:
        raise InvalidAgentError(problem)


def _info(rec: AgentRecord) -> AgentInfo:
    return AgentInfo(
        agent_id=rec.agent_id,
        version=rec.version,
        size=rec.size,
        sha256=rec.sha256,
        updated_at=rec.updated_at,
    )


def _headers(rec: AgentRecord) -> dict[str, str]:
    return {
        "ETag": f'"{rec.sha256}"',
        "X-Agent-Version": str(rec.version),
        "X-Content-SHA256": rec.sha256,
        "Cache-Control": "no-cache",
    }


def _etag_matches(if_none_match: str, sha256: str) -> bool:
    """Whether an ``If-None-Match`` header names this checkpoint (weak tags compare too)."""
    for tag in if_none_match.split(","):
        tag = tag.strip()
        if tag == "*":
            return True
        tag = tag.removeprefix("W/").strip('"').lower()
        if tag == sha256:
            return True
    return False


def _not_found(rt: ExperimentRuntime, agent_id: str) -> AgentNotFoundError:
    return AgentNotFoundError(f"experiment {rt.name!r} has no agent {agent_id!r}")


async def _sha256(data: bytes) -> str:
    if len(data) >= _HASH_IN_THREAD_BYTES:
        return await run_in_threadpool(lambda: hashlib.sha256(data).hexdigest())
    return hashlib.sha256(data).hexdigest()


@router.put(
    "/{experiment_id}/agents/{agent_id:path}",
    response_model=AgentInfo,
    responses=errors(*ON_EXPERIMENT, 413, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/octet-stream": {
                    "schema": {"type": "string", "format": "binary", "minLength": 1}
                }
            },
        }
    },
)
async def put_agent(
    agent_id: AgentIdPath,
    request: Request,
    rt: RuntimeDep,
    x_content_sha256: Annotated[
        str | None,
        Header(
            max_length=64,
            description="SHA-256 (hex) of the body; checked before anything is stored.",
            json_schema_extra={"pattern": SHA256_HEX_PATTERN},
        ),
    ] = None,
) -> AgentInfo:
    """Store the raw body as the agent's latest checkpoint (its ``version`` goes up by one,
    unless the bytes equal the stored ones: a repeated ``PUT`` changes nothing); answered once
    committed (503 if storage fails)."""
    _check_agent_id(agent_id)
    data = await request.body()
    if not data:
        raise InvalidAgentError(f"empty body: send agent {agent_id!r}'s checkpoint bytes")
    digest = await _sha256(data)
    if x_content_sha256 is not None:
        claimed = x_content_sha256.strip().lower()
        if not _HEX64.fullmatch(claimed):
            raise InvalidAgentError("X-Content-SHA256 must be 64 hexadecimal digits")
        if claimed != digest:
            raise InvalidAgentError(
                f"body does not match X-Content-SHA256 (got {len(data)} bytes with SHA-256 "
                f"{digest}, expected {claimed}); nothing was stored"
            )
    try:
        fut = rt.store.put_agent(rt.id, agent_id, data, digest)
    except StorageError as exc:
        raise UnavailableError(f"storage failed, nothing was stored (retry): {exc}") from exc
    await durable(fut)
    return _info(fut.result())


@router.get(
    "/{experiment_id}/agents",
    response_model=AgentList,
    responses=errors(*ON_EXPERIMENT, 503),
)
async def list_agents(rt: RuntimeDep) -> AgentList:
    """Every stored agent of the experiment (metadata only), by agent id."""
    records = await run_in_threadpool(rt.store.list_agents, rt.id)
    data = [_info(r) for r in records]
    return AgentList(data=data, count=len(data))


@router.get(
    "/{experiment_id}/agents/{agent_id:path}",
    response_class=Response,
    responses={
        200: {
            "content": {"application/octet-stream": {"schema": {"type": "string"}}},
            "description": "The checkpoint's bytes; its SHA-256 in ``ETag``/``X-Content-SHA256``.",
        },
        304: {"description": "``If-None-Match`` names the stored checkpoint."},
        **errors(*ON_EXPERIMENT, 503),
    },
)
async def get_agent(
    agent_id: AgentIdPath,
    rt: RuntimeDep,
    if_none_match: Annotated[
        str | None,
        Header(
            max_length=8192,
            description="ETags (SHA-256 of checkpoints) the client holds: 304 if one is current.",
        ),
    ] = None,
) -> Response:
    """The agent's latest checkpoint as ``application/octet-stream``."""
    _check_agent_id(agent_id)
    if if_none_match is not None:
        rec = await run_in_threadpool(rt.store.agent_info, rt.id, agent_id)
        if rec is None:
            raise _not_found(rt, agent_id)
        if _etag_matches(if_none_match, rec.sha256):
            return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=_headers(rec))
    found = await run_in_threadpool(rt.store.get_agent, rt.id, agent_id)
    if found is None:
        raise _not_found(rt, agent_id)
    rec, data = found
    return Response(content=data, media_type="application/octet-stream", headers=_headers(rec))
