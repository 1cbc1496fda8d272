"""The service starts without the students' heavy dependencies, and the client without the
server's (docs/architecture.md#layout)."""

from __future__ import annotations

import subprocess
import sys


def run_python(code: str) -> None:
    """Run ``code`` in a fresh interpreter (nothing imported yet); it must exit 0."""
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr


def test_service_imports_neither_torch_nor_ray() -> None:
    code = (
        "import sys\n"
        "import teacher_service.app, teacher_service.cli, teacher_service.client\n"
        "from teacher_service.teachers import make_teacher\n"
        "import teacher_service.teachers.alp_gmm, teacher_service.teachers.random_teacher\n"
        "import teacher_service.teachers.lp_tree, teacher_service.teachers.riac\n"
        "import teacher_service.teachers.covar_gmm, env_generators.generators\n"
        "from api_schemas.spaces import LevelSpace\n"
        "from api_schemas.teachers import RandomConfig\n"
        "make_teacher(LevelSpace(), RandomConfig(), 0).propose(2)  # levels without minigrid\n"
        "heavy = sorted(m for m in ('torch', 'ray', 'minigrid', 'gymnasium') if m in sys.modules)\n"
        "assert not heavy, heavy\n"
    )
    run_python(code)


def test_the_client_imports_none_of_the_server() -> None:
    """Students use the client without the server's web framework, database or runtime."""
    code = (
        "import sys\n"
        "import teacher_service.client\n"
        "from teacher_service.client import read_export, export_dataframe  # noqa: F401\n"
        "server = ('fastapi', 'starlette', 'uvicorn', 'sqlalchemy', 'torch', 'ray',\n"
        "          'teacher_service.app', 'teacher_service.runtime',\n"
        "          'teacher_service.storage', 'teacher_service.export')\n"
        "loaded = sorted(m for m in server if m in sys.modules)\n"
        "assert not loaded, loaded\n"
    )
    run_python(code)
