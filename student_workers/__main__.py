"""``python -m student_workers`` is the full ``autocurriculum`` CLI."""

from student_workers.cli import main

main()
