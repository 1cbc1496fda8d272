"""Benchmarks of the service, the wrapper, the Ray students and the teachers.

The scripts (``python benchmarks/<name>.py``) measure and write ``benchmarks/results/``; the
modules they and ``autocurriculum bench teachers`` share live here too:
:mod:`benchmarks.machine` (the machine a run used), :mod:`benchmarks.teacher_quality` (teachers
on the simulated student) and :mod:`benchmarks.plots` (its PNG).
"""
