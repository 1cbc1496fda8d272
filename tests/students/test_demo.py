"""``autocurriculum demo`` (what ``make demo`` runs): the service, an experiment with the
default curriculum teacher on its space, Ray students, and a summary that sets the run beside
the benchmark's DR figure."""

from __future__ import annotations

import json
import re

from student_workers.demo_setup import (
    DEFAULT_TEACHER,
    RESULTS,
    demo_space,
    describe_space,
    measured,
)
from tests.students.helpers import cli, finish


def test_the_demo_trains_under_its_default_curriculum_and_compares_with_dr(tmp_path) -> None:
    db, out = tmp_path / "demo.db", tmp_path / "demo"
    args = ["demo", "--minutes", "0.3", "--workers", "1", "--db", str(db), "--out", str(out)]
    code, stdout, err = finish(cli(*args, "--no-serve"), timeout=240)
    assert code == 0, err[-3000:]
    text = " ".join(stdout.split())  # rich wraps long lines
    # the experiment is on the default teacher's demo space
    assert (
        f"teacher {DEFAULT_TEACHER} proposes {describe_space(demo_space(DEFAULT_TEACHER))}" in text
    )
    assert re.search(r"live dashboard: http://127\.0\.0\.1:\d+/\?exp=demo-minigrid-", text)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["env_steps"] > 0 and (out / "latest.pt").exists()
    assert db.exists() and re.search(r"reports stored: [1-9]", text)
    # the benchmark's figures, DR's beside the default teacher's, from the results file
    dr, own = measured("random"), measured(DEFAULT_TEACHER)
    assert RESULTS.exists() and dr is not None and own is not None
    pct = f"{100 * dr['test_solve_rate']:.0f}% ± {100 * dr['test_solve_rate_sd']:.0f}%"
    assert f"DR (random) {pct}" in text
    assert f"{DEFAULT_TEACHER} reached {100 * own['test_solve_rate']:.0f}%" in text
