"""A throwaway PostgreSQL cluster on a free loopback port (initdb + pg_ctl).

As root, PostgreSQL refuses to run, so the cluster is created and started as the
``postgres`` system user (which Debian's package creates) through ``runuser``.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.helpers import free_port


def find_pg_bin() -> Path | None:
    """Directory holding initdb and pg_ctl, or None when PostgreSQL is not installed."""
    candidates = [
        os.environ.get("PG_BIN", ""),
        *sorted(glob.glob("/usr/lib/postgresql/*/bin"))[::-1],
    ]
    for cand in candidates:
        if cand and (Path(cand) / "initdb").exists() and (Path(cand) / "pg_ctl").exists():
            return Path(cand)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("pg_ctl"):
        return Path(os.path.realpath(initdb)).parent
    return None


class PgCluster:
    """Start with :meth:`start`; :meth:`url` gives a SQLAlchemy URL for a new database."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="ac-pg-", dir="/tmp"))
        self.data = self.root / "data"
        self._as_postgres = os.geteuid() == 0
        self._dbs = 0

    def _run(self, *args: str) -> None:
        cmd = list(args)
        if self._as_postgres:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        res = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
        if res.returncode != 0:
            raise RuntimeError(f"{' '.join(args)} failed: {res.stdout}\n{res.stderr}")

    def start(self) -> PgCluster:
        if self._as_postgres:
            pw = pwd.getpwnam("postgres")
            os.chmod(self.root, 0o755)
            os.chown(self.root, pw.pw_uid, pw.pw_gid)
        self._run(
            str(self.bin / "initdb"),
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "--auth=trust",
            "-E",
            "UTF8",
            "--no-sync",
        )
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c fsync=on"
        self._run(
            str(self.bin / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            opts,
            "-l",
            str(self.root / "log"),
            "-w",
            "-t",
            "60",
            "start",
        )
        return self

    def url(self) -> str:
        """Create a fresh database and return its URL."""
        import psycopg

        self._dbs += 1
        name = f"ac{self._dbs}_{int(time.time() * 1000) % 100000}"
        with psycopg.connect(
            f"host=127.0.0.1 port={self.port} user=postgres dbname=postgres", autocommit=True
        ) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{name}"

    def stop(self) -> None:
        try:
            self._run(str(self.bin / "pg_ctl"), "-D", str(self.data), "-m", "immediate", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)
