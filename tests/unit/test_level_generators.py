"""A second level generator is one registry entry: the service and every level teacher work
with it unchanged (no MiniGrid assumption outside the ``minigrid`` generator)."""

from __future__ import annotations

import io
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np
import pytest
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field

from api_schemas.experiments import ExperimentCreate
from api_schemas.spaces import LevelSpace, SpaceError
from env_generators import generators
from env_generators.level_generator import LevelGenerator
from teacher_service.spaces import (
    SpaceConfigError,
    add_generator_schemas,
    check_proposal,
    normalise_space,
)
from teacher_service.teachers import TaskProposal, TaskResult
from teacher_service.teachers.registry import make_teacher


class BitsConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    length: int = Field(default=8, ge=2, le=64, description="Bits per level.")


class BitsGenerator(LevelGenerator):
    """Levels are strings of bits; an edit flips one."""

    name: ClassVar[str] = "bits"
    description: ClassVar[str] = "bit strings"
    encoding: ClassVar[str] = "A string of '0' and '1'."
    config_model: ClassVar[type[BaseModel]] = BitsConfig

    def sample(self, rng: np.random.Generator, config: BitsConfig) -> str:
        return "".join("01"[b] for b in rng.integers(0, 2, size=config.length))

    def validate(self, level: str) -> str:
        if not level or set(level) - {"0", "1"}:
            raise ValueError(f"a bits level is a non-empty string of 0 and 1, got {level!r}")
        return level

    def render_png(self, level: str, tile: int = 16) -> bytes:
        row = np.repeat(np.array([255 * (c == "1") for c in level], dtype=np.uint8), tile)
        buf = io.BytesIO()
        Image.fromarray(np.tile(row, (tile, 1))).save(buf, format="PNG")
        return buf.getvalue()

    def empty(self, rng: np.random.Generator, config: BitsConfig) -> str:
        one = int(rng.integers(config.length))  # the simplest levels: a single bit set
        return "".join("1" if i == one else "0" for i in range(config.length))

    def mutate(self, level: str, rng: np.random.Generator, num_edits: int) -> str:
        bits = list(level)
        for i in rng.integers(0, len(bits), size=num_edits):
            bits[i] = "1" if bits[i] == "0" else "0"
        return "".join(bits)


class SampleOnly(BitsGenerator):
    """A generator that cannot edit (ACCEL must refuse it)."""

    name: ClassVar[str] = "sample_only"
    empty = LevelGenerator.empty  # type: ignore[assignment]
    mutate = LevelGenerator.mutate  # type: ignore[assignment]


@pytest.fixture(autouse=True)
def registered(monkeypatch: pytest.MonkeyPatch) -> None:
    """The registry with the two test generators added: the only change they need."""
    extra = {g.name: g for g in (BitsGenerator(), SampleOnly())}
    monkeypatch.setattr(
        generators, "GENERATORS", MappingProxyType({**generators.GENERATORS, **extra})
    )


def space(generator: str = "bits", **config: Any) -> LevelSpace:
    return normalise_space(LevelSpace(generator=generator, config=config))


def teacher(kind: str, generator: str = "bits", **hyper: Any) -> Any:
    spec = ExperimentCreate(name="g", space=space(generator), teacher={"kind": kind, **hyper})
    return make_teacher(spec.space, spec.teacher, seed=0)


def test_the_space_is_validated_and_normalised_by_the_new_generator() -> None:
    assert space().config == {"length": 8}
    assert space(length=5).config == {"length": 5}
    with pytest.raises(SpaceConfigError) as err:
        space(length=1)
    assert err.value.errors[0]["loc"] == ("config", "length")
    check_proposal(space(), TaskProposal(level="0101"))
    with pytest.raises(SpaceError, match="non-empty string of 0 and 1"):
        check_proposal(space(), TaskProposal(level="012"))


def test_the_level_teachers_work_on_it_unchanged() -> None:
    rng = np.random.default_rng(0)
    for kind, hyper in [
        ("random", {}),
        ("plr", {"buffer_size": 4}),
        ("accel", {"buffer_size": 4, "edit_batch": 2, "edit_parents": 1}),
    ]:
        t = teacher(kind, **hyper)
        levels = set()
        for _ in range(30):
            proposals = t.propose(4)
            for p in proposals:
                check_proposal(space(), p)
                assert len(p.level) == 8
                levels.add(p.level)
            scores = {"positive_value_loss": float(rng.random())}
            t.observe([TaskResult(p, float(rng.random()), scores=scores) for p in proposals])
        assert len(levels) > 10, kind
        if kind == "accel":
            assert t.view()["proposals"]["edit"] > 0
        t.close()


def test_editing_and_minigrid_only_teachers_refuse_what_they_cannot_use() -> None:
    with pytest.raises(ValueError, match="edits levels"):
        teacher("accel", generator="sample_only")
    with pytest.raises(ValueError, match="paired builds MiniGrid levels"):
        teacher("paired")
    teacher("plr", generator="sample_only").close()  # sampling is all PLR needs


def test_the_api_schema_publishes_every_generator() -> None:
    doc = {
        "components": {
            "schemas": {"LevelSpace": LevelSpace.model_json_schema(ref_template="{model}")}
        }
    }
    props = add_generator_schemas(doc)["components"]["schemas"]["LevelSpace"]["properties"]
    assert props["generator"]["enum"] == ["bits", "minigrid", "minigrid_set", "sample_only"]
    titles = [c["title"] for c in props["config"]["anyOf"]]
    assert titles == [
        "bits generator config",
        "minigrid generator config",
        "minigrid_set generator config",
        "sample_only generator config",
    ]
    assert "bits: A string of '0' and '1'." in props["generator"]["description"]


def test_it_renders_its_own_levels() -> None:
    png = BitsGenerator().render_png("0110", tile=4)
    assert Image.open(io.BytesIO(png)).size == (16, 4)
