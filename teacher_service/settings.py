"""Server settings (one pydantic-settings object; env vars ``AUTOCURRICULUM_*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from api_schemas.limits import DEFAULT_MAX_BODY_BYTES


class Settings(BaseSettings):
    """Everything the teacher service can be told at start-up."""

    model_config = SettingsConfigDict(env_prefix="AUTOCURRICULUM_", extra="ignore")

    db: str = Field(
        default="sqlite:///autocurriculum.db",
        description="SQLAlchemy URL or a file path (a path means SQLite).",
    )
    token: str | None = Field(
        default=None, description="Bearer token required on /v1 and /metrics."
    )
    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    snapshot_every: int = Field(default=1000, ge=1, description="Events between teacher snapshots.")
    max_outstanding: int = Field(
        default=100_000,
        ge=1,
        description="Most unreported tasks per experiment before early expiry.",
    )
    max_body_bytes: int = Field(
        default=DEFAULT_MAX_BODY_BYTES, ge=1024, description="Largest request body (413 above)."
    )
    sweep_interval: float = Field(default=1.0, gt=0, description="Seconds between lease sweeps.")
    sqlite_synchronous: str = Field(default="NORMAL", description="SQLite synchronous pragma.")
    fit_processes: int = Field(
        default=2,
        ge=0,
        le=64,
        description="Worker processes for the teachers' model fits (ALP-GMM, Covar-GMM), off the "
        "server's GIL; a fit's candidate mixtures are dealt over them. 0: fits run in threads "
        "of the server process.",
    )
    # OMNI's 'llm' model of interestingness: an OpenAI-compatible chat endpoint. Never logged
    # or stored: only the model's answers go to an experiment's log.
    llm_url: str | None = Field(
        default=None,
        description="Base URL of an OpenAI-compatible API (e.g. https://api.openai.com/v1); "
        "POST {llm_url}/chat/completions.",
    )
    llm_model: str = Field(default="gpt-4o", description="Chat model that judges tasks.")
    llm_api_key: SecretStr | None = Field(default=None, description="Bearer key of the API.")
    llm_timeout: float = Field(default=60.0, gt=0, description="Seconds per chat request.")

    def database_url(self) -> str:
        """The SQLAlchemy URL (a bare file path becomes a SQLite URL)."""
        if "://" in self.db:
            return self.db
        return f"sqlite:///{self.db}"
