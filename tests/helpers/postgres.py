"""A real PostgreSQL 15 server for the tests: a fresh cluster in a temp dir, Unix socket only.

initdb refuses to run as root, so as root the cluster belongs to the `postgres` user (run
through `runuser`); otherwise it belongs to the current user. The server listens on a socket
inside its own directory (no TCP port, nothing shared with other test runs).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

PORT = 5432  # only names the socket file inside our own directory


def _bin(name: str) -> str | None:
    """A server tool: on PATH, else Debian's versioned directory (not on PATH by default)."""
    found = shutil.which(name)
    if found:
        return found
    versions = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: p.parts[-3])
    return str(versions[-1]) if versions else None


def available() -> bool:
    """Whether initdb and pg_ctl can be found."""
    return _bin("initdb") is not None and _bin("pg_ctl") is not None


class PostgresServer:
    """One cluster: start, make databases and roles, restart, stop."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="companion-pg-"))
        self.data = self.root / "data"
        self.as_root = os.geteuid() == 0
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        os.chmod(self.root, 0o755)

    def _run(self, *argv: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        """Run a server tool as the cluster's owner; a failure shows its output."""
        argv = (_bin(argv[0]) or argv[0], *argv[1:])
        cmd = ["runuser", "-u", "postgres", "--", *argv] if self.as_root else list(argv)
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if proc.returncode != 0:
            raise RuntimeError(f"{' '.join(argv)} failed:\n{proc.stdout}\n{proc.stderr}")
        return proc

    def start(self) -> None:
        """initdb (trust auth on the socket) and start, waiting until it accepts connections."""
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8")
        options = (
            f"-k {self.root} -c listen_addresses='' -p {PORT} -c fsync=off "
            "-c synchronous_commit=off -c full_page_writes=off -c shared_buffers=16MB "
            "-c max_connections=60"
        )
        log = self.root / "server.log"
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"
        )

    def restart(self) -> None:
        """Restart the server (fast shutdown: open connections are cut), waiting until up."""
        log = str(self.root / "server.log")  # else the server would hold our stdout pipe open
        self._run(
            "pg_ctl", "-D", str(self.data), "-l", log, "-m", "fast", "-w", "-t", "60", "restart"
        )

    def stop(self) -> None:
        """Stop the server and remove the cluster."""
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "-t", "60", "stop")
        finally:
            shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str = "postgres", user: str = "postgres") -> str:
        """A libpq URL for a database on this server's socket."""
        return f"postgresql://{user}@/{database}?host={self.root}&port={PORT}"

    def sql(self, statement: str, database: str = "postgres") -> None:
        """Run one statement as the superuser (outside a transaction: CREATE DATABASE works)."""
        import psycopg

        with psycopg.connect(self.url(database), autocommit=True) as conn:
            conn.execute(statement)  # type: ignore[arg-type]

    def new_database(self) -> str:
        """A fresh empty database; returns its URL."""
        name = "t_" + uuid.uuid4().hex[:12]
        self.sql(f"CREATE DATABASE {name} TEMPLATE template0")
        return self.url(name)
