"""The real server: `companion.audit.query` over LSP, and server + CLI processes writing at once."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.lsp import client_fixture
from helpers.store_tools import make_pair
from lsprotocol import types as lsp
from pygls.exceptions import JsonRpcException
from pytest_lsp import ClientServerConfig, LanguageClient

# One LSP server over one SQLite home (the PostgreSQL concurrency tests: test_store_postgres.py).
pytestmark = [pytest.mark.asyncio(loop_scope="module"), pytest.mark.sqlite_only]

REPO = Path(__file__).resolve().parents[2]
ROOT = Path(tempfile.mkdtemp(prefix="companion-store-lsp-"))
HOME = ROOT / "home"
ENV = {**os.environ, "COMPANION_HOME": str(HOME), "PYTHONPATH": f"{REPO}:{REPO / 'tests'}"}
# The real server, with the test-only recordable tools registered in its registry.
SERVE = (
    "import helpers.store_tools; from companion.cli import main; raise SystemExit(main(['serve']))"
)


@pytest.fixture(scope="module")
def workspace() -> Iterator[Path]:
    """The shared root (the store's home is inside it); removed after the client stops."""
    yield ROOT
    shutil.rmtree(ROOT, ignore_errors=True)


def check_query(_: LanguageClient, result: lsp.InitializeResult) -> None:
    """The server offers the query command."""
    commands = result.capabilities.execute_command_provider
    assert commands is not None and "companion.audit.query" in commands.commands


client = client_fixture(
    config=ClientServerConfig(server_command=[sys.executable, "-c", SERVE], server_env=ENV),
    editor="neovim@v0.7.0",
    check=check_query,
)


async def command(client: LanguageClient, name: str, args: object) -> dict[str, object]:
    return await client.workspace_execute_command_async(  # type: ignore[no-any-return]
        lsp.ExecuteCommandParams(command=name, arguments=[args])
    )


async def test_server_and_cli_processes_write_at_the_same_time(client: LanguageClient) -> None:
    a, b = make_pair(ROOT / "server", size=8192)
    go = ROOT / "go"
    writers = [
        subprocess.Popen(
            [
                sys.executable,
                "-m",
                "helpers.store_writer",
                str(ROOT / f"w{i}"),
                "12",
                "400",
                "--go",
                str(go),
            ],
            env=ENV,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        for w in writers:
            assert w.stdout is not None and w.stdout.readline().strip() == "ready"
        go.touch()
        args = {"a": str(a), "b": str(b), "chunks": 400}
        results = await asyncio.gather(
            *(command(client, "companion.audit.test_compare", args) for _ in range(12))
        )
        outputs = [w.communicate(timeout=120) for w in writers]
    finally:
        for w in writers:
            w.kill()
    for w, (_, err) in zip(writers, outputs, strict=True):
        assert w.returncode == 0, err
    cli_ids = {line.split()[1] for out, _ in outputs for line in out.splitlines()}
    server_ids = {str(r["record_id"]) for r in results}
    assert len(cli_ids) == 24 and len(server_ids) == 12
    listed = await command(client, "companion.audit.query", {"limit": 1000})
    records = listed["records"]
    assert isinstance(records, list)
    assert {r["id"] for r in records} == cli_ids | server_ids
    assert all(r["n_tensors"] == 400 for r in records)
    conn = sqlite3.connect(HOME / "store.sqlite3")
    assert conn.execute("SELECT count(*) FROM per_tensor").fetchone()[0] == 36 * 400
    created = [r["created"] for r in records]
    assert created == sorted(created, reverse=True)


async def test_query_command_filters_like_the_cli(client: LanguageClient) -> None:
    listed = await command(
        client,
        "companion.audit.query",
        {
            "kind": "audit.*",
            "role": ["mlp"],
            "where": ["pearson>0.5"],
            "tensor_limit": 2,
            "limit": 5,
            "format": "csv",
        },
    )
    records = listed["records"]
    assert isinstance(records, list) and len(records) == 5 and listed["total"] == 36
    for r in records:
        assert r["tensor_matches"] == 200 and len(r["tensors"]) == 2
        assert {t["role"] for t in r["tensors"]} == {"mlp"}
    hostile = await command(client, "companion.audit.query", {"model": ["' OR 1=1 --"]})
    assert hostile["records"] == [] and hostile["total"] == 0


async def test_query_command_bad_threshold_is_a_clear_error(client: LanguageClient) -> None:
    with pytest.raises(JsonRpcException, match="metric threshold"):
        await command(client, "companion.audit.query", {"where": ["pearson>0; DROP TABLE x"]})


async def test_verify_and_export_commands(client: LanguageClient) -> None:
    newest = (await command(client, "companion.audit.query", {"limit": 1}))["records"]
    assert isinstance(newest, list)
    rid = newest[0]["id"]
    verified = await command(client, "companion.store.verify", {"target": rid})
    assert verified["status"] == "reproduced", json.dumps(verified)[:2000]
    exported = await command(client, "companion.store.export", {"id": rid, "format": "json"})
    assert exported["bundle"]["id"] == rid  # type: ignore[index]
