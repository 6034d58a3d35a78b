"""Remote checkpoints over HTTP Range against a loopback hub (127.0.0.1 only): only the
selected tensors' bytes travel, a repeat run fetches nothing, and faults give clear errors or
resume."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from helpers.hub_server import Hub
from helpers.remote_repos import HIDDEN, family_repos, hub_env, st_bytes

from companion.audit.checkpoint import open_checkpoint
from companion.audit.remote import locate
from companion.audit.remote_http import RemoteOptions
from companion.audit.schemas import AuditResult
from companion.errors import InputError
from companion.settings import Settings
from companion.toolbox import run_tool
from companion.tools import ToolContext


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """A hub with org/base, org/tuned (a fine-tune) and org/other (independent)."""
    with hub_env(family_repos(tmp_path), tmp_path, monkeypatch) as h:
        yield h


def audit(a: str, b: str, **kw: Any) -> AuditResult:
    """Run the audit tool with the settings the environment gives."""
    args = {"a": a, "b": b, "roles": ["norm", "attn"], **kw}
    result = run_tool("audit.compare", args, ToolContext(settings=Settings()))
    assert isinstance(result, AuditResult)
    return result


def test_hf_reference_resolves_like_the_hub() -> None:
    s = RemoteOptions.from_settings(Settings(hf_endpoint="https://mirror.example"))
    assert locate("hf://ORG/NAME@v1.0/sub/model.safetensors", s).urls == (
        "https://mirror.example/ORG/NAME/resolve/v1.0/sub/model.safetensors",
    )
    loc = locate("hf://ORG/NAME", s)
    assert loc.revision == "main" and loc.urls[0].endswith(
        "/resolve/main/model.safetensors.index.json"
    )


def test_remote_pair_fetches_only_the_selected_roles_and_a_repeat_fetches_nothing(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMPANION_REMOTE_COALESCE_GAP", "4096")  # tensors here are tiny
    total = sum(
        len(b) for r in hub.repos.values() for b in r.values() if r is not hub.repos["org/other"]
    )
    first = audit("hf://org/base", "hf://org/tuned")
    assert first.verdict == "derived", [x.statement for x in first.reasons]
    fetched = hub.sent
    needed = sum(4 * int(np.prod(t.shape)) for t in first.per_tensor) * 2
    assert needed <= fetched < needed + 2 * 64 * 1024  # the tensors, plus two small headers
    assert fetched < 0.25 * total
    remote = [i for i in first.manifest.inputs if i.sha256_from == "remote"]
    assert len(remote) == 2 and all(i.ranges and i.revision == "main" and i.sha256 for i in remote)
    assert remote[0].path.endswith("/org/base/resolve/main/model.safetensors")
    text = first.to_markdown()  # a remote side is named as the user gave it
    assert (first.a, first.b) == ("hf://org/base", "hf://org/tuned")
    assert "hf://org/base" in text and "/remote/" not in text, text
    hub.sent = 0
    again = audit("hf://org/base", "hf://org/tuned")
    assert hub.sent == 0  # every range came from the cache
    assert [t.metrics.pearson for t in again.per_tensor] == [
        t.metrics.pearson for t in first.per_tensor
    ]


def test_remote_against_local_and_independent(hub: Hub, tmp_path: Path) -> None:
    local = tmp_path / "other.safetensors"
    local.write_bytes(hub.repos["org/other"]["model.safetensors"])
    r = audit("hf://org/base", str(local))
    assert r.verdict == "independent", [x.statement for x in r.reasons]


def test_a_reset_mid_range_resumes(hub: Hub) -> None:
    hub.faults.add("reset")
    ck = open_checkpoint("hf://org/base/model.safetensors", RemoteOptions.from_settings())
    name = "model.embed_tokens.weight"
    got = ck.tensors[name].file.read(name)
    want = np.frombuffer(
        io.BytesIO(hub.repos["org/base"]["model.safetensors"]).getvalue(), dtype=np.uint8
    )
    assert "reset" in hub.once
    begin = ck.tensors[name].file.span(ck.tensors[name].info)[0]
    assert np.array_equal(got.view(np.uint8), want[begin : begin + got.nbytes])
    resumed = [
        r for m, p, r in hub.requests if m == "GET" and r and not r.startswith(f"bytes={begin}-")
    ]
    assert resumed  # the second request started where the first one broke off


def test_429_is_retried_after_retry_after(hub: Hub) -> None:
    hub.faults.add("429")
    ck = open_checkpoint("hf://org/base", RemoteOptions.from_settings())
    assert "model.norm.weight" in ck.tensors and "429" in hub.once


@pytest.mark.parametrize(
    ("fault", "words"),
    [
        ("norange", "does not support Range"),
        ("ignored", "ignored the Range header"),
        ("short", "tries"),
        ("etag", "changed while it was being read"),
        ("trickle", "Timeout"),
        ("401", "HF_TOKEN"),
        ("403", "license"),
        ("404", "not found"),
    ],
)
def test_faults_are_clear_errors(
    hub: Hub, fault: str, words: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    hub.faults.add(fault)
    if fault == "trickle":  # a byte every 0.5 s: only a shorter gap timeout ends it
        monkeypatch.setenv("COMPANION_REMOTE_TIMEOUT_S", "0.3")
    with pytest.raises(InputError) as err:
        ck = open_checkpoint("hf://org/base/model.safetensors", RemoteOptions.from_settings())
        name = "model.embed_tokens.weight"
        ck.tensors[name].file.read(name)
    assert words in err.value.text, err.value.text
    assert err.value.hint
    if fault in ("norange", "ignored"):  # stopped after the headers: the body was not read
        cache = RemoteOptions.from_settings().cache_dir
        kept = sum(f.stat().st_size for f in cache.rglob("*") if f.is_file())
        assert kept < 1 << 20  # (what the server pushed into socket buffers is not ours to bound)


def test_a_full_download_when_the_user_allows_it(hub: Hub, monkeypatch: pytest.MonkeyPatch) -> None:
    hub.faults.add("norange")
    monkeypatch.setenv("COMPANION_REMOTE_FULL_DOWNLOAD", "true")
    ck = open_checkpoint("hf://org/base/model.safetensors", RemoteOptions.from_settings())
    assert ck.tensors["model.norm.weight"].file.read("model.norm.weight").shape == (HIDDEN,)


def test_chat_and_agents_cannot_reach_a_url(hub: Hub, tmp_path: Path) -> None:
    """A confined context (chat, MCP) reads only workspace files: no URL is fetched."""
    ctx = ToolContext(roots=[tmp_path], confine=True)
    with pytest.raises(InputError) as err:
        run_tool("audit.compare", {"a": "hf://org/base", "b": "hf://org/base"}, ctx)
    assert "inside the workspace" in err.value.text and err.value.hint
    assert hub.sent == 0


def test_prefetch_progress_names_bytes_fetched_of_bytes_needed(hub: Hub) -> None:
    messages: list[tuple[str, float | None]] = []
    ctx = ToolContext(settings=Settings(), progress=lambda m, f: messages.append((m, f)))
    run_tool("audit.compare", {"a": "hf://org/base", "b": "hf://org/tuned", "roles": ["norm"]}, ctx)
    shape = re.compile(r"fetched (\d+(?:\.\d)?) ([KMG]?B) of (\d+(?:\.\d)?) ([KMG]?B) needed")
    fetched = [m for m, _ in messages if shape.fullmatch(m)]
    assert fetched, messages
    last = shape.fullmatch(fetched[-1])
    assert last and last.group(1, 2) == last.group(3, 4)  # all of it, in the same unit
    messages.clear()
    run_tool("audit.compare", {"a": "hf://org/base", "b": "hf://org/tuned", "roles": ["norm"]}, ctx)
    assert any("in the range cache (fetched 0 B)" in m for m, _ in messages), messages


def test_remote_reads_and_the_manifest_hash_hold_no_copy_of_the_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import tracemalloc

    big = {"model.embed_tokens.weight": np.ones((2048, 2048), dtype="<f4")}  # 16 MB
    with hub_env(
        {"org/big": {"model.safetensors": st_bytes(big, tmp_path)}}, tmp_path, monkeypatch
    ):
        ck = open_checkpoint("hf://org/big", RemoteOptions.from_settings())
        name = "model.embed_tokens.weight"
        ref = ck.tensors[name]
        out = np.empty(ref.info.end - ref.info.begin, dtype=np.uint8)
        ref.file.read_into(ref.info, 0, ref.info.numel, out)  # fetched into the range cache
        tracemalloc.start()
        try:
            got = ref.file.read_into(ref.info, 0, ref.info.numel, out)  # from the cache
            entry = ck.remote_inputs()[0]  # sha256 of every range read
            peak = tracemalloc.get_traced_memory()[1]
        finally:
            tracemalloc.stop()
    assert np.all(got == 1.0) and entry.ranges_sha256
    assert peak < 2 << 20, f"{peak / 2**20:.1f} MB traced for a 16 MB tensor"
