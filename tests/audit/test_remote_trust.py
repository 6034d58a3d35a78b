"""What a remote server may not do: learn the user's HF_TOKEN when it is not the hf endpoint,
or fill the range cache that audits of another server's files read (a forged ETag)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.hub_server import Hub, serve
from helpers.remote_repos import family_repos, hub_env

from companion.audit.checkpoint import open_checkpoint
from companion.audit.remote import MAX_SHARDS
from companion.audit.remote_http import RemoteOptions, origin
from companion.audit.schemas import AuditResult
from companion.errors import InputError
from companion.settings import Settings
from companion.toolbox import run_tool
from companion.tools import ToolContext

FILE = "resolve/main/model.safetensors"


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """The hf endpoint: org/base, org/tuned (a fine-tune) and org/other (independent)."""
    with hub_env(family_repos(tmp_path), tmp_path, monkeypatch) as h:
        yield h


def audit(a: str, b: str) -> AuditResult:
    """Run the audit tool as the CLI does (unconfined, settings from the environment)."""
    args = {"a": a, "b": b, "roles": ["norm"]}
    result = run_tool("audit.compare", args, ToolContext(settings=Settings()))
    assert isinstance(result, AuditResult)
    return result


def test_origins_fill_in_default_ports_and_ignore_paths_and_case() -> None:
    assert origin("https://HuggingFace.co/org/x") == origin("https://huggingface.co:443/")
    assert origin("http://127.0.0.1:8000/a") != origin("http://127.0.0.1:8001/a")
    assert origin("http://huggingface.co/") != origin("https://huggingface.co/")


def test_the_token_goes_to_the_hf_endpoint_and_nowhere_else(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", "hf_secret_token")
    (tmp_path / "x").mkdir()
    with serve(Hub(repos=family_repos(tmp_path / "x"))) as elsewhere:
        result = audit("hf://org/base", f"{elsewhere.url}/org/tuned/{FILE}")
    assert result.verdict == "derived"
    assert hub.auth and set(hub.auth) == {"Bearer hf_secret_token"}  # HEADs, GETs, the CDN
    assert elsewhere.auth and set(elsewhere.auth) == {""}, elsewhere.auth


def test_a_forged_etag_cannot_fill_the_cache_another_server_s_audits_read(
    hub: Hub, tmp_path: Path
) -> None:
    real = hub.repos["org/base"]["model.safetensors"]
    other = hub.repos["org/other"]["model.safetensors"]
    assert len(other) == len(real)  # same layout: only the ETag tells them apart
    forger = Hub(
        repos={"org/base": {"model.safetensors": other}}, claim=hashlib.sha256(real).hexdigest()
    )
    with serve(forger) as evil:
        fooled = audit(f"{evil.url}/org/base/{FILE}", "hf://org/tuned")
    assert fooled.verdict != "derived" and evil.sent > 0  # it served the independent model
    hub.sent = 0
    honest = audit("hf://org/base", "hf://org/tuned")
    assert honest.verdict == "derived", [r.statement for r in honest.reasons]
    assert hub.sent > 0  # org/base's ranges came from the hub, not from the forger's entries


def test_a_deeply_nested_remote_index_is_a_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    index = b"[" * 100_000 + b"]" * 100_000
    repos = {"org/deep": {"model.safetensors.index.json": index}}
    with hub_env(repos, tmp_path, monkeypatch), pytest.raises(InputError) as err:
        open_checkpoint("hf://org/deep", RemoteOptions.from_settings())
    assert "nested too deeply" in err.value.text and err.value.hint == "check the index URL."


def test_an_index_naming_too_many_shards_is_refused_before_any_is_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    weight_map = {f"t{i}": f"model-{i:06d}.safetensors" for i in range(MAX_SHARDS + 1)}
    index = json.dumps({"weight_map": weight_map}).encode()
    repos = {"org/many": {"model.safetensors.index.json": index}}
    with hub_env(repos, tmp_path, monkeypatch) as h, pytest.raises(InputError) as err:
        open_checkpoint("hf://org/many", RemoteOptions.from_settings())
    assert f"names {MAX_SHARDS + 1} shards" in err.value.text and err.value.hint
    assert not [p for _, p, _ in h.requests if "model-" in p]  # no shard was asked for
