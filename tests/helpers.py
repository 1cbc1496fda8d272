"""Test helpers (re-exported from :mod:`teacher_service.testing`)."""

from teacher_service.testing import ServerProcess, free_port

__all__ = ["ServerProcess", "free_port"]
