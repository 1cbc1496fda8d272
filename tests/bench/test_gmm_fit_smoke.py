"""Smoke test of ``benchmarks/gmm_fit.py``: both arms are timed on both row shapes and the lean
EM's mixtures equal scikit-learn's."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def test_gmm_fit_quick(tmp_path: Path) -> None:
    out = tmp_path / "g.json"
    cmd = [sys.executable, str(REPO / "benchmarks" / "gmm_fit.py"), "--quick", "--out", str(out)]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    assert res["benchmark"] == "gmm_fit" and res["rounds"] == 2 and res["ks"] == list(range(2, 11))
    assert set(res["shapes"]) == {"alp_gmm", "covar_gmm"}
    for shape in res["shapes"].values():
        cpu = shape["cpu_ms_per_cycle"]
        assert len(cpu["sklearn"]["runs"]) == len(cpu["gmm_em"]["runs"]) == 2
        assert cpu["sklearn"]["median"] > 0 and cpu["gmm_em"]["median"] > 0
        assert shape["speedup"] == round(cpu["sklearn"]["median"] / cpu["gmm_em"]["median"], 3)
        assert shape["identical"] is True
    bad = subprocess.run(
        [sys.executable, str(REPO / "benchmarks" / "gmm_fit.py"), "--rounds", "0"],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert bad.returncode == 2 and "--rounds must be at least 1" in bad.stderr
    assert "Traceback" not in bad.stderr
