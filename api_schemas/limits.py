"""Every limit of the HTTP contract, defined once.

The request models use these constants, so the same numbers are enforced by the server and
published in its OpenAPI document (``maximum``, ``maxItems``, ``maxLength``, ``pattern``):
a request that the document calls valid is never refused for its size or range. The limits
are chosen so that anything accepted can be stored, replayed and exported (JSON lines and
Parquet) unchanged:

- integers stay far inside int64 (Parquet's integer columns, SQL ``BIGINT``) and inside
  2**53 (exact in a JavaScript ``number``), except the seed, which is any int64 >= 0;
- real numbers are finite and at most ``MAX_REAL`` in magnitude, so the sums, differences and
  squares the teachers compute from them stay finite;
- text is well-formed Unicode (no lone surrogate code points, which UTF-8 cannot encode).
"""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BeforeValidator, Field, StringConstraints

from api_schemas.wire import json_number

#: Most tasks asked for in one request, and most reports sent in one request.
MAX_BATCH = 4096
#: Largest magnitude of a real number on the wire (returns, scores, box bounds, ...).
MAX_REAL = 1e15
#: Most environment steps of one episode (``Report.length``).
MAX_EPISODE_LENGTH = 10**9
#: Most episodes summarised by one report or one evaluation.
MAX_EPISODES = 10**6
#: Most environment steps a student trained for (``Evaluation.env_steps``).
MAX_ENV_STEPS = 10**15
#: Largest seed (seeds are int64 >= 0).
MAX_SEED = 2**63 - 1
#: Most scores in one report, and the longest score name.
MAX_SCORES = 64
MAX_SCORE_NAME = 128
#: Longest names (experiments, box dimensions, discrete tasks, environments).
MAX_NAME = 128
#: Characters of experiment, dimension, task and environment names.
NAME_PATTERN = r"^[A-Za-z0-9_.:\-]+$"
#: Longest task id a client may send (server-made ids are far shorter).
MAX_TASK_ID = 256
#: Longest worker label.
MAX_WORKER = 256
#: Longest text description of a discrete task.
MAX_DESCRIPTION = 4096
#: Longest checkpoint reference in an evaluation.
MAX_CHECKPOINT_REF = 1024
#: Most evaluations in one request.
MAX_EVALUATIONS = 1000
#: Most dimensions of a box space, and most tasks of a discrete space.
MAX_BOX_DIMS = 64
MAX_DISCRETE_TASKS = 100_000
#: Longest task lease, in seconds (one week).
MAX_LEASE_SECONDS = 7 * 24 * 3600.0
#: Default largest request body, in bytes (a server setting: ``AUTOCURRICULUM_MAX_BODY_BYTES``).
DEFAULT_MAX_BODY_BYTES = 16 * 1024 * 1024
#: Agent ids: a letter or digit, then up to 127 letters, digits, ``_``, ``.`` or ``-``.
MAX_AGENT_ID = 128
AGENT_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$"
#: A SHA-256 digest in hexadecimal (either case).
SHA256_HEX_PATTERN = r"^[0-9a-fA-F]{64}$"


def well_formed(text: str) -> str:
    """Refuse lone surrogate code points (JSON can escape them, UTF-8 cannot store them).

    Raises:
        ValueError: naming the position of the first one.
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"text must be well-formed Unicode: lone surrogate at position {exc.start}"
        ) from None
    return text


def text(max_length: int, min_length: int = 0) -> type[str]:
    """A string type of at most ``max_length`` characters of well-formed Unicode."""
    return Annotated[  # type: ignore[return-value]
        str,
        StringConstraints(min_length=min_length, max_length=max_length),
        AfterValidator(well_formed),
    ]


#: A finite real number of magnitude at most ``MAX_REAL``.
Real = Annotated[
    float, Field(allow_inf_nan=False, ge=-MAX_REAL, le=MAX_REAL), BeforeValidator(json_number)
]
#: A label of who asked for tasks or who evaluated (kept in the log and the export).
WorkerLabel = text(MAX_WORKER)
#: An experiment, dimension, task or environment name.
Name = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN)]
