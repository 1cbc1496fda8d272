"""SQLAlchemy Core tables (same schema on SQLite and PostgreSQL)."""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)

metadata = MetaData()


experiments = Table(
    "experiments",
    metadata,
    Column("id", String(64), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("spec", Text, nullable=False),  # ExperimentCreate as JSON
    Column("created_at", Float, nullable=False),
    UniqueConstraint("name", name="uq_experiments_name"),
)

#: The write-ahead log: one ordered sequence of events per experiment.
events = Table(
    "events",
    metadata,
    Column("experiment_id", String(64), primary_key=True),
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("kind", String(16), nullable=False),
    Column("payload", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

snapshots = Table(
    "snapshots",
    metadata,
    Column("experiment_id", String(64), primary_key=True),
    Column(
        "seq", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False
    ),
    Column("data", LargeBinary, nullable=False),
    Column("created_at", Float, nullable=False),
)

#: Held-out test results posted by evaluators (not part of the teacher's log: they never
#: change what a teacher proposes, so they are stored beside it, in arrival order).
evaluations = Table(
    "evaluations",
    metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("experiment_id", String(64), nullable=False, index=True),
    Column("payload", Text, nullable=False),  # one Evaluation as JSON
    Column("created_at", Float, nullable=False),
)

#: Agent checkpoints (opaque bytes, e.g. PAIRED's protagonist and antagonist weights): the
#: latest upload of each agent, replaced by every new one (``version`` counts the uploads).
agents = Table(
    "agents",
    metadata,
    Column("experiment_id", String(64), primary_key=True),
    Column("agent_id", String(128), primary_key=True),
    Column("data", LargeBinary, nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("size", Integer, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", Float, nullable=False),
)
