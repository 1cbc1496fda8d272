"""The simulated student (docs/algorithms.md#the-simulated-student) and its challenge
variants: the unlock rule, each variant's twist, seeding, and what a perfect teacher reaches."""

from __future__ import annotations

import numpy as np
import pytest

from env_generators.simulated_student import (
    VARIANTS,
    ForgettingStudent,
    NoisyStudent,
    RuggedStudent,
    SimulatedStudent,
    UnfeasibleStudent,
    make_student,
)


def centre(i: int, j: int, cells: int = 10, dims: int = 2) -> list[float]:
    return [(i + 0.5) / cells, (j + 0.5) / cells] + [0.37] * (dims - 2)


def perfect_order(cells: int) -> list[tuple[int, int]]:
    """Cells in an order where each is unlocked by an earlier one (anti-diagonals)."""
    return sorted(((i, j) for i in range(cells) for j in range(cells)), key=lambda c: sum(c))


def test_base_unlock_rule_and_perfect_teacher() -> None:
    s = SimulatedStudent()
    assert s.episode(centre(1, 0)) == 0.0  # locked: (0, 0) not known yet
    for _ in range(75):
        s.episode(centre(0, 0))
    assert s.score() == 0.0  # c = 75 unlocks neighbours but is not mastered (> 75)
    assert s.episode(centre(1, 1)) == 0.01  # diagonal "previous" neighbour counts
    assert s.episode(centre(2, 0)) == 0.0  # not a neighbour of (0, 0)
    s = SimulatedStudent()
    for i, j in perfect_order(10):
        for _ in range(76):
            s.episode(centre(i, j))
    assert s.episodes == 7_600 and s.score() == 100.0  # docs/algorithms.md#the-simulated-student
    assert s.episode(centre(0, 0)) == 0.77


def test_variants_registry() -> None:
    assert list(VARIANTS) == [
        "base", "unfeasible", "noisy", "forgetting", "rugged", "dim5", "dim10", "fine"
    ]  # fmt: skip
    assert VARIANTS["dim5"].dims == 5 and VARIANTS["dim10"].dims == 10
    assert all(v.description for v in VARIANTS.values())
    with pytest.raises(KeyError, match="known"):
        make_student("nope", 0)
    with pytest.raises(ValueError, match="dimensions"):
        SimulatedStudent().episode([0.5])


def test_unfeasible_block_only() -> None:
    s = make_student("unfeasible", 0)
    assert isinstance(s, UnfeasibleStudent) and s.cells == 20
    for _ in range(100):
        s.episode(centre(0, 0, 20))
    # (0, 0) known; its neighbour inside the block learns, the rest of the grid never does.
    assert s.episode(centre(1, 0, 20)) == 0.01
    s.competence[:10, :10] = 100
    assert s.episode(centre(10, 10, 20)) == 0.0  # all its neighbours mastered: still 0
    assert s.episode(centre(15, 3, 20)) == 0.0
    assert s.score() == 100.0  # the score counts the learnable block only
    with pytest.raises(ValueError, match="feasible"):
        UnfeasibleStudent(cells=5, feasible=6)


def test_noisy_rewards_are_seeded_and_centred() -> None:
    a, b, c = make_student("noisy", 1), make_student("noisy", 1), make_student("noisy", 2)
    assert isinstance(a, NoisyStudent)
    ra = [a.episode(centre(5, 5)) for _ in range(2000)]  # locked cell: true reward 0
    assert ra == [b.episode(centre(5, 5)) for _ in range(2000)]
    assert ra != [c.episode(centre(5, 5)) for _ in range(2000)]
    assert abs(np.mean(ra)) < 0.01 and np.std(ra) == pytest.approx(0.1, rel=0.1)
    for _ in range(50):
        a.episode(centre(0, 0))
    assert a.competence[0, 0] == 50  # the competence dynamics are the base toy's
    with pytest.raises(ValueError, match="noise"):
        NoisyStudent(noise=-1)


def test_forgetting_decays_unpractised_cells() -> None:
    s = make_student("forgetting", 0)
    assert isinstance(s, ForgettingStudent) and s.decay_period == 500
    for _ in range(80):
        s.episode(centre(0, 0))
    assert s.score() == 1.0  # (0, 0) at 80, last practised at episode 79
    for _ in range(2_498):  # practise a locked cell: episode count 2,578, 4 points lost
        s.episode(centre(9, 9))
    assert s.score() == 1.0  # 76 > 75
    assert s.episode(centre(9, 9)) == 0.0  # the 2,579th: 5 points lost, 75 is not mastered
    assert s.score() == 0.0
    assert s.episode(centre(1, 0)) == 0.01  # 75 still unlocks the neighbours
    assert s.episode(centre(0, 0)) == 0.76  # practice catches up the decay, then learns
    assert s.score() == 1.0
    with pytest.raises(ValueError, match="decay_period"):
        ForgettingStudent(decay_period=0)


def test_rugged_is_a_seeded_shuffle_of_the_base_toy() -> None:
    a, b, c = (make_student("rugged", s) for s in (3, 3, 4))
    assert isinstance(a, RuggedStudent)
    where = a._where.ravel()
    assert sorted(where.tolist()) == list(range(100))  # a permutation of the cells
    assert np.array_equal(where, b._where.ravel()) and not np.array_equal(where, c._where.ravel())
    # A perfect teacher that knows the shuffle still needs 7,600 episodes for 100%.
    position = {int(k): divmod(p, 10) for p, k in enumerate(where)}
    for i, j in perfect_order(10):
        pi, pj = position[i * 10 + j]
        for _ in range(76):
            a.episode(centre(pi, pj))
    assert a.score() == 100.0 and a.episodes == 7_600


@pytest.mark.parametrize("name", ["dim5", "dim10"])
def test_distractor_dimensions_are_ignored(name: str) -> None:
    dims = VARIANTS[name].dims
    s = make_student(name, 0)
    rng = np.random.default_rng(0)
    for _ in range(76):
        x = centre(0, 0, dims=dims)
        x[2:] = rng.random(dims - 2).tolist()
        s.episode(x)
    assert s.competence[0, 0] == 76 and s.score() == 1.0


def test_fine_grid_has_400_cells() -> None:
    s = make_student("fine", 0)
    assert s.cells == 20 and s.competence.size == 400
    for _ in range(76):
        s.episode(centre(0, 0, 20))
    assert s.score() == 100 / 400
