"""Fixtures for the store tests: an isolated store on each backend, a recording context.

Every test that takes `settings` (or `ctx`, `db`, `store_env`) runs twice: against an SQLite
file and against a fresh database on a real PostgreSQL server started for the session
(tests/helpers/postgres.py). Tests about SQLite files themselves carry `@pytest.mark.sqlite_only`.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import helpers.store_tools  # noqa: F401  (registers the test-only recordable tools)
import pytest
from helpers.postgres import PostgresServer, available

from companion.settings import Settings
from companion.store.backend import Conn
from companion.store.db import backend_for, open_store
from companion.toolbox import context
from companion.tools import ToolContext

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session, stopped (and removed) at the end."""
    if not available():
        pytest.fail(
            "initdb/pg_ctl not found: the store suite runs against a real PostgreSQL; "
            "install it with `make system-deps` (Debian package `postgresql`)."
        )
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgres"])
def backend_name(request: pytest.FixtureRequest) -> str:
    """Which backend this run of the test uses."""
    if request.param == "postgres" and request.node.get_closest_marker("sqlite_only"):
        pytest.skip("about SQLite files only")
    return str(request.param)


@pytest.fixture
def store_url(backend_name: str, request: pytest.FixtureRequest) -> str | None:
    """None for SQLite; the URL of a fresh empty database for PostgreSQL."""
    if backend_name == "sqlite":
        return None
    server: PostgresServer = request.getfixturevalue("pg_server")
    return server.new_database()


@pytest.fixture
def settings(tmp_path: Path, store_url: str | None) -> Settings:
    """Settings whose store lives in this test's temp dir (or its own PostgreSQL database)."""
    return Settings(home=tmp_path / "home", store_url=store_url)


@pytest.fixture
def ctx(settings: Settings, tmp_path: Path) -> ToolContext:
    """A context that records into the test store, rooted at the temp dir."""
    return context(settings, [tmp_path])


@pytest.fixture
def db(settings: Settings) -> Iterator[Conn]:
    """A connection to the test store for checking what was written (closed afterwards)."""
    with open_store(backend_for(settings)) as conn:
        yield conn


@pytest.fixture
def store_env(settings: Settings) -> dict[str, str]:
    """Environment for a subprocess that uses the same store as `settings`."""
    env = {**os.environ, "COMPANION_HOME": str(settings.home)}
    env["PYTHONPATH"] = f"{REPO}:{REPO / 'tests'}"
    env.pop("COMPANION_STORE_URL", None)
    if settings.store_url:
        env["COMPANION_STORE_URL"] = settings.store_url
    return env
