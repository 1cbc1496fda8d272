"""Task spaces on the service side: a level space checked by its generator, a box space by
its parametric generator (and the level it builds for each task), and teacher proposals
checked against the space before anything is issued.

The wire models (:mod:`api_schemas.spaces`) are data only; what a level looks like is
known to its generator (:mod:`env_generators.generators`), and this module is where the
two meet.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from api_schemas.spaces import BoxSpace, DiscreteSpace, LevelSpace, SpaceError
from env_generators import generators
from env_generators.generators import UnknownGeneratorError, get_generator, get_parametric
from teacher_service.teachers import TaskProposal


class SpaceConfigError(ValueError):
    """A level space's generator or config is invalid.

    Attributes:
        errors: pydantic-style errors whose ``loc`` is relative to the space.
    """

    def __init__(self, errors: list[dict[str, Any]]) -> None:
        super().__init__("; ".join(str(e["msg"]) for e in errors))
        self.errors = errors


def normalise_space(space: Any) -> Any:
    """The space as stored: a level space's config validated by its generator, defaults
    filled in and each value of its declared type. Other spaces are returned unchanged.

    Raises:
        SpaceConfigError: for an unknown generator or a config it refuses.
    """
    if isinstance(space, BoxSpace) and space.generator is not None:
        _check_parametric(space)
        return space
    if not isinstance(space, LevelSpace):
        return space
    try:
        generator = get_generator(space.generator)
    except UnknownGeneratorError as exc:
        raise SpaceConfigError(
            [
                {
                    "loc": ("generator",),
                    "msg": str(exc),
                    "type": "value_error",
                    "input": space.generator,
                }
            ]
        ) from None
    try:
        config = generator.config(space.config)
    except ValidationError as exc:
        errors = [{**e, "loc": ("config", *e["loc"])} for e in exc.errors(include_url=False)]
        raise SpaceConfigError(errors) from None
    return space.model_copy(update={"config": config.model_dump(mode="json")})


def _check_parametric(space: BoxSpace) -> None:
    """A box space's generator is registered and its dims are parameters of it, within
    their ranges.

    Raises:
        SpaceConfigError: naming the generator or the dimension.
    """

    def refuse(loc: tuple[Any, ...], msg: str, value: Any) -> SpaceConfigError:
        return SpaceConfigError([{"loc": loc, "msg": msg, "type": "value_error", "input": value}])

    try:
        generator = get_parametric(space.generator or "")
    except UnknownGeneratorError as exc:
        raise refuse(("generator",), str(exc.args[0]), space.generator) from None
    for i, dim in enumerate(space.dims):
        try:
            p = generator.parameter(dim.name)
        except KeyError as exc:
            raise refuse(("dims", i, "name"), str(exc.args[0]), dim.name) from None
        if dim.low < p.low or dim.high > p.high:
            raise refuse(
                ("dims", i),
                f"dimension {dim.name!r} of the {generator.name!r} generator must stay within "
                f"[{p.low}, {p.high}], got [{dim.low}, {dim.high}]",
                dim.name,
            )


def level_of(space: Any, params: dict[str, Any] | None) -> str | None:
    """The level a box space's parametric generator builds from ``params`` (None for other
    spaces)."""
    if not isinstance(space, BoxSpace) or space.generator is None or params is None:
        return None
    return get_parametric(space.generator).build(params)


def check_proposal(space: Any, proposal: TaskProposal) -> None:
    """Check that a proposal fits the space (its params, or its level for the generator).

    Raises:
        SpaceError: saying what does not fit.
    """
    if isinstance(space, BoxSpace | DiscreteSpace):
        space.validate_params(proposal.params or {})
    elif isinstance(space, LevelSpace):
        try:
            get_generator(space.generator).validate(proposal.level or "")
        except (ValueError, UnknownGeneratorError) as exc:
            raise SpaceError(f"malformed level: {exc}") from None


def add_generator_schemas(doc: dict[str, Any]) -> dict[str, Any]:
    """Publish the registered generators in an OpenAPI document: the names a level space
    may give, each generator's config schema and its level encoding."""
    schema = doc.get("components", {}).get("schemas", {}).get("LevelSpace")
    if schema is None:
        return doc
    registry = generators.GENERATORS
    props = schema["properties"]
    props["generator"]["enum"] = sorted(registry)
    configs = []
    encodings = []
    for name in sorted(registry):
        gen = registry[name]
        sub = gen.config_model.model_json_schema()
        if "$defs" in sub:  # inlined below: a generator config must be flat
            raise TypeError(f"generator {name!r}: its config schema must not use $defs")
        sub["title"] = f"{name} generator config"
        configs.append(sub)
        encodings.append(f"{name}: {gen.encoding}")
    props["config"] = {"anyOf": configs, "description": props["config"].get("description")}
    props["generator"]["description"] = (
        props["generator"].get("description", "") + " Level encodings: " + " | ".join(encodings)
    )
    return doc
