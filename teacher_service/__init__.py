"""The autocurriculum teacher service: FastAPI app, runtimes, storage, teachers, client, CLI."""
