"""A route class for the students' two calls: a well-formed request skips FastAPI's solver.

A task or a report request cost several times a ``/healthz`` in the server's CPU, and the
largest part was FastAPI's general machinery: solving the token check, the runtime lookup and
the metrics as dependencies (with their sub-dependencies and path parameter), and validating
the answer again before serialising it. :class:`DirectRoute` answers a request that is valid
in every part with the same steps done directly: parse the body as FastAPI does (the standard
library's ``json``), validate it and the path parameters with the route's own fields, resolve
each dependency from the request, call the endpoint, serialise the answer with the route's
response field.

Nothing else changes. The route is an ordinary ``APIRoute`` for matching and for the OpenAPI
document. Any request the direct path does not accept in full (no or a wrong token when the
server has one, a path parameter out of bounds, a content type other than JSON, a body that
does not parse or validate) goes to FastAPI's own handler, which answers it exactly as any
other route would. Errors raised by the endpoint reach the same exception handlers.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any

from fastapi import Request, Response, routing
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import ResponseValidationError

from teacher_service.api.deps import get_metrics, get_runtime, require_token, token_accepted

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

#: How the direct path resolves each dependency a direct route may declare: from the request
#: alone, the way the dependency itself does (``None``: a check, see ``token_accepted``).
_RESOLVERS: dict[Callable[..., Any], Callable[[Request], Awaitable[Any]] | None] = {
    require_token: None,
    get_runtime: lambda request: get_runtime(request.path_params["experiment_id"], request),
    get_metrics: get_metrics,
}
#: The content type the direct path parses; any other goes to FastAPI's handler.
_JSON = "application/json"


class DirectRoute(routing.APIRoute):
    """An ``APIRoute`` whose well-formed requests are answered without dependency solving.

    The endpoint may declare one JSON body, path parameters, and dependencies listed in
    ``_RESOLVERS``; anything else is refused when the route is built.
    """

    def get_route_handler(self) -> Handler:
        """FastAPI's handler, with the direct path in front of it."""
        standard = super().get_route_handler()
        route = _effective(self)
        plan = _Plan(route)
        body_field = route.body_field
        response_field = route.response_field
        status_code = route.status_code or 200
        by_alias = route.response_model_by_alias
        endpoint = route.endpoint

        async def handle(request: Request) -> Response:
            if not _is_json(request.headers.get("content-type")):
                return await standard(request)
            if plan.checks_token and not await token_accepted(request):
                return await standard(request)
            for field in plan.path_fields:
                _, errors = field.validate(request.path_params.get(field.alias), {}, loc=("path",))
                if errors:
                    return await standard(request)
            try:
                raw = json.loads(await request.body())
            except ValueError:  # not JSON, or not UTF-8: FastAPI's handler says which
                return await standard(request)
            body, errors = body_field.validate(raw, {}, loc=("body",))
            if errors:
                return await standard(request)
            values = {plan.body_name: body}
            for name, resolve in plan.resolvers:
                values[name] = await resolve(request)
            result = await endpoint(**values)
            value, errors = response_field.validate(result, {}, loc=("response",))
            if errors:  # a bug in the endpoint, as FastAPI's handler reports it
                raise ResponseValidationError(errors, body=result)
            return Response(
                response_field.serialize_json(value, by_alias=by_alias),
                status_code=status_code,
                media_type=_JSON,
            )

        return handle


class _Plan:
    """What the direct path does for one route, worked out once when the route is built."""

    def __init__(self, route: Any) -> None:
        def refuse(what: str) -> TypeError:
            return TypeError(f"DirectRoute {route.path}: {what} (use a plain APIRoute)")

        dependant: Dependant = route.dependant
        if not inspect.iscoroutinefunction(route.endpoint):
            raise refuse("the endpoint must be an async function")
        if len(dependant.body_params) != 1:
            raise refuse("the endpoint must take exactly one JSON body")
        if route.response_field is None:
            raise refuse("the route must declare its response model")
        special = (
            dependant.query_params,
            dependant.header_params,
            dependant.cookie_params,
            dependant.request_param_name,
            dependant.response_param_name,
            dependant.background_tasks_param_name,
            dependant.security_scopes_param_name,
        )
        if any(special):
            raise refuse("only a body, path parameters and known dependencies are resolved")
        shaping = (
            route.response_model_include,
            route.response_model_exclude,
            route.response_model_exclude_unset,
            route.response_model_exclude_defaults,
            route.response_model_exclude_none,
        )
        if any(shaping):
            raise refuse("the answer is serialised whole (no response_model_include/exclude)")
        self.body_name: str = dependant.body_params[0].name
        self.path_fields = _path_params(dependant)
        self.resolvers: list[tuple[str, Callable[[Request], Awaitable[Any]]]] = []
        self.checks_token = False
        for dep in dependant.dependencies:
            if dep.call not in _RESOLVERS:
                raise refuse(f"no direct resolver for the dependency {dep.call!r}")
            resolve = _RESOLVERS[dep.call]
            self.checks_token |= dep.call is require_token
            if resolve is not None and dep.name is not None:
                self.resolvers.append((dep.name, resolve))


def _path_params(dependant: Dependant) -> list[Any]:
    """The path parameters of ``dependant`` and of its dependencies, each once."""
    fields = {field.alias: field for field in dependant.path_params}
    for dep in dependant.dependencies:
        fields.update({field.alias: field for field in _path_params(dep)})
    return list(fields.values())


def _is_json(content_type: str | None) -> bool:
    """``application/json``, with or without parameters (FastAPI reads the body the same way
    whatever its ``charset``)."""
    if content_type == _JSON:
        return True
    return content_type is not None and content_type.partition(";")[0].strip().lower() == _JSON


def _effective(route: routing.APIRoute) -> Any:
    """The route as included in its app: with the including router's dependencies (FastAPI
    0.16x builds the handler of an included route under a context holding them)."""
    var = getattr(routing, "_effective_route_context_var", None)
    context = var.get() if var is not None else None
    if context is not None and context.original_route is route:
        return context
    return route
