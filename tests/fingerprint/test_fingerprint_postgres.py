"""Fingerprints recorded in, and identified from, a real PostgreSQL store."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.postgres import PostgresServer, available

from companion.audit import synth
from companion.fingerprint import zoo
from companion.fingerprint.schemas import IdentifyResult
from companion.settings import Settings
from companion.toolbox import context


@pytest.fixture(scope="module")
def pg() -> Iterator[PostgresServer]:
    """A PostgreSQL server for this module."""
    if not available():
        pytest.fail("initdb/pg_ctl not found: install the Debian package `postgresql`.")
    server = PostgresServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()


def test_identify_on_a_postgres_store(pg: PostgresServer, tmp_path: Path) -> None:
    spec = synth.Spec(layers=2)
    w = synth.base(spec, seed=0)
    paths = [synth.save(tmp_path / "base", w, spec)]
    paths += [synth.save(tmp_path / f"u{s}", synth.base(spec, 70 + s), spec) for s in range(12)]
    upload = synth.save(tmp_path / "upload", zoo.quantized(zoo.hidden_permuted(w, spec)), spec)
    ctx = context(Settings(home=tmp_path / "home", store_url=pg.new_database()), [tmp_path])
    ctx.run("fingerprint.compute", {"paths": [str(p) for p in paths]})
    ctx.run("fingerprint.compute", {"paths": [str(paths[0])]})  # upsert, not a second row
    result = ctx.run("fingerprint.identify", {"path": str(upload)})
    assert isinstance(result, IdentifyResult)
    assert result.parent is not None and Path(result.parent.path).name == "base"
    assert result.null.stored == 13
