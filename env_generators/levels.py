"""MiniGrid levels as plain data (docs/architecture.md#environment-generators): the ASCII
encoding, strict parsing, the shortest-path / solvability check, generation from parameters,
ACCEL's mutation operators (docs/algorithms.md#accel), and rendering to SVG and PNG.

Plain Python and numpy only: the teacher service uses this module, and only building the
env (:mod:`env_generators.minigrid_env`) imports minigrid.

Encoding, one character per tile, rows top to bottom, ``x`` left to right::

    #  wall          .  floor        G  goal
    >  agent facing right (MiniGrid direction 0)   v  down (1)   <  left (2)   ^  up (3)
    L  lava          K  key          D  locked door (opened with the key)

A level is a rectangle of at least 3 x 3 tiles whose border is wall, with exactly one
agent and one goal, at most one key, and a key whenever there is a door.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Literal

import numpy as np

WALL, FLOOR, GOAL, LAVA, KEY, DOOR = "#", ".", "G", "L", "K", "D"
#: Agent characters in MiniGrid direction order (0 right, 1 down, 2 left, 3 up).
AGENT_CHARS = ">v<^"
TILES = frozenset(WALL + FLOOR + GOAL + LAVA + KEY + DOOR)
#: Moves (dx, dy) for MiniGrid directions 0..3.
DIRECTIONS = ((1, 0), (0, 1), (-1, 0), (0, -1))
MAX_SIDE = 64


class LevelError(ValueError):
    """A level string that is not a valid level; the message says where and why."""


# --------------------------------------------------------------------------- parsing
_WALL, _FLOOR, _GOAL, _KEY, _DOOR = (ord(c) for c in (WALL, FLOOR, GOAL, KEY, DOOR))
#: Byte -> whether it is a tile or agent character.
_LEGAL = np.zeros(256, dtype=bool)
_LEGAL[[ord(c) for c in TILES | set(AGENT_CHARS)]] = True
#: Byte -> MiniGrid direction of an agent character, -1 for every other byte.
_AGENT_DIR = np.full(256, -1, dtype=np.int8)
_AGENT_DIR[[ord(c) for c in AGENT_CHARS]] = np.arange(4)


def _codes(rows: list[str], width: int) -> np.ndarray | None:
    """The rows as a (height, width) array of bytes, or ``None`` when they are not ASCII
    rows of one width (the slow scan then says where)."""
    if any(len(r) != width for r in rows):
        return None
    try:
        data = "".join(rows).encode("ascii")
    except UnicodeEncodeError:
        return None
    return np.frombuffer(data, dtype=np.uint8).reshape(len(rows), width)


def _raise_first_tile_error(rows: list[str], width: int) -> None:
    """Scan tile by tile and raise for the first broken rule, in reading order."""
    height = len(rows)
    for y, row in enumerate(rows):
        if len(row) != width:
            raise LevelError(
                f"row {y} has {len(row)} tiles, expected {width} (levels are rectangles)"
            )
        for x, ch in enumerate(row):
            if ch not in AGENT_CHARS and ch not in TILES:
                raise LevelError(
                    f"unknown tile {ch!r} at row {y}, column {x}; "
                    f"known: {''.join(sorted(TILES))}{AGENT_CHARS}"
                )
            border = y in (0, height - 1) or x in (0, width - 1)
            if border and ch != WALL:
                raise LevelError(f"the border must be wall '#': {ch!r} at row {y}, column {x}")
    raise AssertionError("_raise_first_tile_error called on well-formed rows")


@dataclass(frozen=True, slots=True)
class Level:
    """A parsed level.

    Attributes:
        tiles: (height, width) array of tile characters (the agent's tile is floor).
        agent: (x, y) of the agent.
        agent_dir: MiniGrid direction of the agent (0 right, 1 down, 2 left, 3 up).
    """

    tiles: np.ndarray
    agent: tuple[int, int]
    agent_dir: int

    @property
    def width(self) -> int:
        """Tiles per row, border included."""
        return int(self.tiles.shape[1])

    @property
    def height(self) -> int:
        """Rows, border included."""
        return int(self.tiles.shape[0])

    @property
    def goal(self) -> tuple[int, int]:
        """(x, y) of the goal."""
        ys, xs = np.nonzero(self.tiles == GOAL)
        return int(xs[0]), int(ys[0])

    def count(self, tile: str) -> int:
        """How many tiles of a kind (walls include the border)."""
        return int(np.count_nonzero(self.tiles == tile))

    def encode(self) -> str:
        """The ASCII encoding (rows joined by newlines, no trailing newline)."""
        grid = self.tiles.copy()
        x, y = self.agent
        grid[y, x] = AGENT_CHARS[self.agent_dir]
        return "\n".join("".join(row) for row in grid)

    def __str__(self) -> str:
        return self.encode()

    @classmethod
    def parse(cls, text: str) -> Level:
        """Parse and validate an encoded level (see the module docstring).

        Raises:
            LevelError: naming the row/column and the rule broken.
        """
        if not isinstance(text, str):
            raise LevelError(f"a level is a string, got {type(text).__name__}")
        rows = [r.rstrip("\r") for r in text.strip("\n").split("\n")]
        height = len(rows)
        width = len(rows[0]) if rows else 0
        if height < 3 or width < 3:
            raise LevelError(f"a level needs at least 3x3 tiles, got {width}x{height}")
        if height > MAX_SIDE or width > MAX_SIDE:
            raise LevelError(f"a level is at most {MAX_SIDE}x{MAX_SIDE}, got {width}x{height}")
        # Every task a curriculum wrapper plays is parsed at reset: check a well-formed level
        # with whole-array operations and leave the tile-by-tile scan to naming the error.
        codes = _codes(rows, width)
        if (
            codes is None
            or not _LEGAL[codes].all()
            or (codes[[0, -1]] != _WALL).any()
            or (codes[:, [0, -1]] != _WALL).any()
        ):
            _raise_first_tile_error(rows, width)
        dirs = _AGENT_DIR[codes]
        is_agent = dirs >= 0
        agents = np.flatnonzero(is_agent)
        if len(agents) != 1:
            raise LevelError(
                f"a level needs exactly one agent ({AGENT_CHARS}), found {len(agents)}"
            )
        y, x = divmod(int(agents[0]), width)
        d = int(dirs[y, x])
        codes = np.where(is_agent, _FLOOR, codes)
        grid = codes.view("S1").astype("<U1")
        goals = int(np.count_nonzero(codes == _GOAL))
        if goals != 1:
            raise LevelError(f"a level needs exactly one goal 'G', found {goals}")
        keys = int(np.count_nonzero(codes == _KEY))
        if keys > 1:
            raise LevelError(f"a level has at most one key 'K', found {keys}")
        if keys == 0 and np.any(codes == _DOOR):
            raise LevelError("a level with a door 'D' needs a key 'K'")
        return cls(tiles=grid, agent=(x, y), agent_dir=d)


# --------------------------------------------------------------------------- solvability


def shortest_path(
    level: Level, actions: Literal["navigation", "full"] = "navigation"
) -> int | None:
    """Fewest moves (tile steps, turns not counted) from the agent to the goal, or ``None``.

    Lava and walls block. With ``navigation`` actions (left, right, forward) keys and doors
    block too; with ``full`` actions the key can be picked up from a neighbouring tile and
    then opens doors.
    """
    tiles = level.tiles
    h, w = tiles.shape
    start = (level.agent[0], level.agent[1], False)
    seen = {start}
    queue = deque([(start, 0)])
    full = actions == "full"
    while queue:
        (x, y, has_key), dist = queue.popleft()
        for dx, dy in DIRECTIONS:
            nx, ny = x + dx, y + dy
            if not (0 <= nx < w and 0 <= ny < h):
                continue
            t = tiles[ny, nx]
            if t == GOAL:
                return dist + 1
            key = has_key
            if t == KEY and full and not has_key:
                key = True  # picked up from here; the tile is then free
                state = (x, y, key)
                if state not in seen:
                    seen.add(state)
                    queue.append((state, dist))
                continue
            passable = t == FLOOR or (t == DOOR and full and has_key) or (t == KEY and has_key)
            if passable and (nx, ny, key) not in seen:
                seen.add((nx, ny, key))
                queue.append(((nx, ny, key), dist + 1))
    return None


def is_solvable(level: Level, actions: Literal["navigation", "full"] = "navigation") -> bool:
    """Whether the goal can be reached (see :func:`shortest_path`)."""
    return shortest_path(level, actions) is not None


# --------------------------------------------------------------------------- generation


def _free_tiles(tiles: np.ndarray, exclude: tuple[int, int] | None = None) -> list[tuple[int, int]]:
    ys, xs = np.nonzero(tiles == FLOOR)
    free = [(int(x), int(y)) for x, y in zip(xs, ys, strict=True)]
    return [p for p in free if p != exclude]


def empty_level(size: int, rng: np.random.Generator) -> Level:
    """An empty room ``size`` x ``size`` (border included) with a random agent and goal
    (ACCEL's starting point)."""
    if not 3 <= size <= MAX_SIDE:
        raise ValueError(f"size must be in 3..{MAX_SIDE}, got {size}")
    tiles = np.full((size, size), FLOOR, dtype="<U1")
    tiles[0, :] = tiles[-1, :] = tiles[:, 0] = tiles[:, -1] = WALL
    inner = _free_tiles(tiles)
    if len(inner) < 2:
        raise ValueError(f"a {size}x{size} room has no space for an agent and a goal")
    gi, ai = rng.choice(len(inner), size=2, replace=False)
    gx, gy = inner[int(gi)]
    tiles[gy, gx] = GOAL
    return Level(tiles=tiles, agent=inner[int(ai)], agent_dir=int(rng.integers(4)))


def generate_level(
    rng: np.random.Generator,
    *,
    size: int = 15,
    walls: int = 25,
    lava: int = 0,
    solvable: bool = True,
    max_tries: int = 1000,
) -> Level:
    """A random level: ``walls`` wall tiles and ``lava`` lava tiles placed uniformly on the
    interior of a ``size`` x ``size`` room, then agent and goal on free tiles.

    With ``solvable`` the draw is repeated until the goal can be reached (navigation
    actions); a ``ValueError`` says so if ``max_tries`` draws all fail.
    """
    if not 3 <= size <= MAX_SIDE:
        raise ValueError(f"size must be in 3..{MAX_SIDE}, got {size}")
    interior = (size - 2) ** 2
    if walls < 0 or lava < 0 or walls + lava > interior - 2:
        raise ValueError(
            f"walls + lava ({walls} + {lava}) must leave 2 of the {interior} interior tiles free"
        )
    for _ in range(max_tries):
        level = empty_level(size, rng)
        tiles = level.tiles.copy()
        gx, gy = level.goal
        tiles[gy, gx] = FLOOR
        free = _free_tiles(tiles)
        picks = rng.choice(len(free), size=walls + lava + 2, replace=False)
        for n, i in enumerate(picks):
            x, y = free[int(i)]
            if n < walls:
                tiles[y, x] = WALL
            elif n < walls + lava:
                tiles[y, x] = LAVA
            elif n == walls + lava:
                tiles[y, x] = GOAL
            else:
                agent = (x, y)
        level = Level(tiles=tiles, agent=agent, agent_dir=int(rng.integers(4)))
        if not solvable or is_solvable(level):
            return level
    raise ValueError(f"no solvable level in {max_tries} draws (size {size}, walls {walls})")


# --------------------------------------------------------------------------- mutation


def mutate(level: Level, rng: np.random.Generator, num_edits: int = 5) -> Level:
    """ACCEL's editor (docs/algorithms.md#accel): ``num_edits`` random edits, each turning a random
    interior tile into wall, floor, or the goal (the goal moves there). An agent or goal that
    an edit overwrites is re-placed on a random free tile, so both always remain.
    Solvability is not enforced (ACCEL lets the score rule judge children)."""
    if num_edits < 0:
        raise ValueError(f"num_edits must be >= 0, got {num_edits}")
    tiles = level.tiles.copy()
    agent = level.agent
    h, w = tiles.shape
    for _ in range(num_edits):
        x, y = int(rng.integers(1, w - 1)), int(rng.integers(1, h - 1))
        kind = int(rng.integers(3))
        if kind == 2:  # the goal moves here
            gy, gx = np.argwhere(tiles == GOAL)[0]
            tiles[gy, gx] = FLOOR
            tiles[y, x] = GOAL
        else:
            tiles[y, x] = WALL if kind == 0 else FLOOR
        if not np.any(tiles == GOAL):  # the goal was overwritten: re-place it
            free = _free_tiles(tiles, exclude=agent)
            if free:
                gx, gy = free[int(rng.integers(len(free)))]
                tiles[gy, gx] = GOAL
            else:  # a room of walls: give the goal back its tile
                tiles[y, x] = GOAL
        if tiles[agent[1], agent[0]] != FLOOR:  # the agent's tile was overwritten
            free = _free_tiles(tiles)
            if free:
                agent = free[int(rng.integers(len(free)))]
            else:
                tiles[agent[1], agent[0]] = FLOOR
    return Level(tiles=tiles, agent=agent, agent_dir=level.agent_dir)


# --------------------------------------------------------------------------- rendering

#: Tile colours (RGB), close to MiniGrid's own.
COLOURS = {
    WALL: (100, 100, 100),
    FLOOR: (0, 0, 0),
    GOAL: (0, 200, 0),
    LAVA: (255, 128, 0),
    KEY: (230, 200, 0),
    DOOR: (230, 200, 0),
}
AGENT_COLOUR = (220, 30, 30)


def _agent_triangle(x: int, y: int, d: int, tile: int) -> list[tuple[float, float]]:
    cx, cy = (x + 0.5) * tile, (y + 0.5) * tile
    r = 0.38 * tile
    dx, dy = DIRECTIONS[d]
    tip = (cx + dx * r, cy + dy * r)
    px, py = -dy, dx  # perpendicular
    back = (cx - dx * r * 0.8, cy - dy * r * 0.8)
    return [tip, (back[0] + px * r * 0.8, back[1] + py * r * 0.8),
            (back[0] - px * r * 0.8, back[1] - py * r * 0.8)]  # fmt: skip


def render_svg(level: Level, tile: int = 16) -> str:
    """The level as a standalone SVG document."""
    w, h = level.width * tile, level.height * tile
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" viewBox="0 0 {w} {h}">',
        f'<rect width="{w}" height="{h}" fill="rgb{COLOURS[FLOOR]}"/>',
    ]
    for (y, x), t in np.ndenumerate(level.tiles):
        if t == FLOOR:
            continue
        fill = f"rgb{COLOURS[t]}"
        if t == DOOR:
            parts.append(
                f'<rect x="{x * tile + 1}" y="{y * tile + 1}" width="{tile - 2}" '
                f'height="{tile - 2}" fill="none" stroke="{fill}" stroke-width="2"/>'
            )
        elif t == KEY:
            parts.append(
                f'<circle cx="{(x + 0.5) * tile}" cy="{(y + 0.5) * tile}" r="{tile * 0.3}" '
                f'fill="{fill}"/>'
            )
        else:
            parts.append(
                f'<rect x="{x * tile}" y="{y * tile}" width="{tile}" height="{tile}" '
                f'fill="{fill}"/>'
            )
    pts = " ".join(
        f"{px:.1f},{py:.1f}" for px, py in _agent_triangle(*level.agent, level.agent_dir, tile)
    )
    parts.append(f'<polygon points="{pts}" fill="rgb{AGENT_COLOUR}"/>')
    parts.append("</svg>")
    return "\n".join(parts)


def render_rgb(level: Level, tile: int = 16) -> np.ndarray:
    """The level as an RGB array (height * tile, width * tile, 3), uint8."""
    from PIL import Image, ImageDraw

    img = Image.new("RGB", (level.width * tile, level.height * tile), COLOURS[FLOOR])
    draw = ImageDraw.Draw(img)
    for (y, x), t in np.ndenumerate(level.tiles):
        box = (x * tile, y * tile, (x + 1) * tile - 1, (y + 1) * tile - 1)
        if t == DOOR:
            draw.rectangle(box, outline=COLOURS[t], width=2)
        elif t == KEY:
            draw.ellipse((box[0] + tile * 0.2, box[1] + tile * 0.2, box[2] - tile * 0.2,
                          box[3] - tile * 0.2), fill=COLOURS[t])  # fmt: skip
        elif t != FLOOR:
            draw.rectangle(box, fill=COLOURS[t])
    draw.polygon(_agent_triangle(*level.agent, level.agent_dir, tile), fill=AGENT_COLOUR)
    return np.asarray(img, dtype=np.uint8)


def render_png(level: Level, tile: int = 16) -> bytes:
    """The level as PNG bytes (needs Pillow)."""
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(render_rgb(level, tile)).save(buf, format="PNG")
    return buf.getvalue()
