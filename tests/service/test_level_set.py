"""The ``minigrid_set`` generator: a fixed set of levels, drawn uniformly, checked level by
level; a ``random`` experiment over HTTP issues only the set's levels."""

from __future__ import annotations

import httpx
import numpy as np
import pytest
from pydantic import ValidationError

from env_generators.generators import get_generator
from env_generators.levels import empty_level

LEVELS = [empty_level(5, np.random.default_rng(i)).encode() for i in range(3)]


def test_draws_are_the_set_uniformly() -> None:
    gen = get_generator("minigrid_set")
    cfg = gen.config({"levels": LEVELS})
    rng = np.random.default_rng(0)
    draws = [gen.sample(rng, cfg) for _ in range(3000)]
    assert set(draws) == set(LEVELS)
    counts = np.array([draws.count(level) for level in LEVELS])
    assert np.all(np.abs(counts - 1000) < 120)
    assert not gen.supports_editing


def test_a_malformed_level_is_named_by_index() -> None:
    gen = get_generator("minigrid_set")
    with pytest.raises(ValidationError, match="level 1"):
        gen.config({"levels": [LEVELS[0], "#G#"]})
    with pytest.raises(ValidationError):
        gen.config({"levels": []})


def test_random_over_http_issues_the_set(shared_server) -> None:
    space = {"kind": "level", "generator": "minigrid_set", "config": {"levels": LEVELS}}
    with httpx.Client(base_url=shared_server.url, timeout=30) as c:
        r = c.post(
            "/v1/experiments",
            json={"name": "level-set", "space": space, "teacher": {"kind": "random"}},
        )
        assert r.status_code == 201, r.text
        tasks = c.post("/v1/experiments/level-set/tasks", json={"n": 64}).json()["tasks"]
        assert {t["level"] for t in tasks} == set(LEVELS)
        bad = {**space, "config": {"levels": ["#G#"]}}
        r = c.post(
            "/v1/experiments",
            json={"name": "bad-set", "space": bad, "teacher": {"kind": "random"}},
        )
        assert r.status_code == 422 and "level 0" in r.text
