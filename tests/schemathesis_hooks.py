"""Schemathesis hooks for the contract fuzz run (``tests/service/test_schemathesis.py``).

Experiment names are unique on a server that outlives each test case, so a fuzzer that draws
short names mostly collides with earlier experiments (409) and its stateful scenarios rarely
get past their first step. For a request the fuzzer means to be valid, the hook below appends
a counter to the generated name (within the documented pattern and length); requests meant to
be invalid are sent as generated.
"""

from __future__ import annotations

import itertools
import re
from typing import Any

import schemathesis

from api_schemas.limits import MAX_NAME, NAME_PATTERN

_counter = itertools.count()
_NAME = re.compile(NAME_PATTERN)


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    """Give every valid experiment the fuzzer creates a name of its own."""
    operation = context.operation
    if (
        operation is None
        or operation.method.upper() != "POST"
        or operation.path != "/v1/experiments"
    ):
        return case
    meta = getattr(case, "meta", None)
    body = case.body
    if meta is None or not meta.generation.mode.is_positive or not isinstance(body, dict):
        return case
    name = body.get("name")
    if isinstance(name, str) and _NAME.fullmatch(name):
        suffix = f"-{next(_counter)}"
        case.body = {**body, "name": name[: MAX_NAME - len(suffix)] + suffix}
    return case
