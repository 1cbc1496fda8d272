"""``python -m teacher_service`` is the ``autocurriculum`` CLI."""

from teacher_service.cli import main

main()
