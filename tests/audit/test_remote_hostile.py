"""Hostile or broken servers, damaged range caches and hand-written manifests: each gives a
clear error with a next step (never a traceback, a hang or a huge allocation), or is repaired
by fetching the bytes again. Every server here is the loopback hub (127.0.0.1)."""

from __future__ import annotations

import gzip
import hashlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from helpers.hub_server import Hub
from helpers.remote_repos import family_repos, hub_env

from companion.audit.checkpoint import open_checkpoint
from companion.audit.remote_http import RemoteOptions, client, limiter, probe
from companion.audit.remote_verify import MAX_RANGES, recheck
from companion.audit.schemas import AuditResult
from companion.errors import InputError
from companion.settings import Settings
from companion.toolbox import run_tool
from companion.tools import ToolContext


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """The loopback hub with org/base, org/tuned (a fine-tune) and org/other."""
    with hub_env(family_repos(tmp_path), tmp_path, monkeypatch) as h:
        yield h


def audit(a: str = "hf://org/base", b: str = "hf://org/tuned") -> AuditResult:
    """Run the audit tool as the CLI does."""
    args = {"a": a, "b": b, "roles": ["norm", "attn"]}
    result = run_tool("audit.compare", args, ToolContext(settings=Settings()))
    assert isinstance(result, AuditResult)
    return result


def opened(ref: str = "hf://org/base") -> None:
    """Open a remote checkpoint (its header only)."""
    open_checkpoint(ref, settings=RemoteOptions.from_settings())


def entries(tmp_path: Path) -> list[Path]:
    """The complete range-cache entries, in path order."""
    return sorted(p for p in (tmp_path / "cache").rglob("*") if "." not in p.name and "-" in p.name)


def header_entry(tmp_path: Path) -> Path:
    """A cache entry holding a safetensors header's JSON (the range from byte 8)."""
    return next(p for p in entries(tmp_path) if p.name.startswith("8-"))


@pytest.mark.parametrize("fault", ["loop", "loop-get"])
def test_a_redirect_loop_is_a_clear_error(hub: Hub, fault: str) -> None:
    hub.faults.add(fault)  # "loop": the HEAD loops; "loop-get": the HEAD works, ranges loop
    with pytest.raises(InputError) as err:
        opened()
    assert "redirect" in err.value.message and err.value.hint


def test_an_invalid_url_is_a_clear_error(hub: Hub) -> None:
    with pytest.raises(InputError) as err:
        opened("http://[::1/model.safetensors")
    assert "not a valid URL" in err.value.message and err.value.hint


def test_a_retry_after_that_is_not_a_number_is_ignored(hub: Hub) -> None:
    hub.faults.add("429")
    hub.retry_after = "\u00b2"  # str.isdigit() says yes, float() says no
    assert audit().verdict == "derived"


@pytest.mark.parametrize("body", ["garbage", "bomb"])
def test_an_encoded_range_answer_is_refused_unread(hub: Hub, body: str) -> None:
    hub.faults.add("gzip")  # we ask for identity; the bomb is 64 MB of zeros in ~100 bytes
    bomb = gzip.compress(gzip.compress(bytes(64 << 20), 1))
    hub.encoded = b"not gzip at all" if body == "garbage" else bomb
    with pytest.raises(InputError) as err:
        opened()
    assert "Content-Encoding" in err.value.message and err.value.hint


def test_a_content_range_total_other_than_the_size_is_a_changed_file(hub: Hub) -> None:
    blob = probe(f"{hub.url}/org/base/resolve/main/model.safetensors", *_http())
    blob.size += 1  # as if the file had grown since the HEAD, under the same ETag
    with pytest.raises(InputError) as err:
        blob.read(0, 8)
    assert "bytes" in err.value.message and "pin a revision" in (err.value.hint or "")


def _http() -> tuple[Any, ...]:
    """probe's settings, client and limiter."""
    s = RemoteOptions.from_settings()
    return s, client(s), limiter(s)


@pytest.mark.parametrize("damage", ["truncated", "symlink", "fifo"])
def test_a_damaged_cache_entry_is_fetched_again(hub: Hub, tmp_path: Path, damage: str) -> None:
    first = audit()
    header = header_entry(tmp_path)
    good = header.read_bytes()
    header.unlink()
    if damage == "truncated":  # e.g. a crash before the rename reached the disk
        header.write_bytes(good[:-1])
    elif damage == "symlink":
        (tmp_path / "other").write_bytes(bytes(len(good)))
        header.symlink_to(tmp_path / "other")
    else:
        os.mkfifo(header)  # reading it would wait forever for a writer
    again = audit()
    assert [t.metrics for t in again.per_tensor] == [t.metrics for t in first.per_tensor]
    assert header.is_file() and not header.is_symlink() and header.read_bytes() == good


def test_a_cache_entry_replaced_by_a_folder_names_it(hub: Hub, tmp_path: Path) -> None:
    audit()
    header = header_entry(tmp_path)
    header.unlink()
    header.mkdir()
    with pytest.raises(InputError) as err:
        audit()
    assert str(header) in err.value.message and "remove" in (err.value.hint or "")


def test_a_part_file_longer_than_its_range_is_started_afresh(hub: Hub, tmp_path: Path) -> None:
    first = audit()
    header = header_entry(tmp_path)
    good = header.read_bytes()
    header.unlink()
    Path(f"{header}.part").write_bytes(good + good)  # two unlocked writers appended
    again = audit()
    assert [t.metrics for t in again.per_tensor] == [t.metrics for t in first.per_tensor]
    assert header.read_bytes() == good


def test_two_writers_of_one_range_do_not_interleave(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMPANION_REMOTE_TIMEOUT_S", "30")  # the stall is no timeout
    url = f"{hub.url}/org/base/resolve/main/model.safetensors"
    one, two = probe(url, *_http()), probe(url, *_http())  # as two processes would
    data = hub.repos["org/base"]["model.safetensors"]
    hub.faults.add("stall")  # the first range answer stops half way until the gate opens
    first = threading.Thread(target=one.fetch, args=(0, 4096))
    first.start()
    for _ in range(500):  # bounded: until half the range has arrived
        if hub.sent:
            break
        threading.Event().wait(0.01)
    second = threading.Thread(target=two.fetch, args=(0, 4096))
    second.start()
    second.join(timeout=1)  # without a lock it finishes alone; with one it waits for `first`
    hub.gate.set()
    first.join(timeout=10)
    second.join(timeout=10)
    assert two.read(0, 4096) == data[:4096]
    assert [p.stat().st_size for p in entries(tmp_path)] == [4096]
    assert hub.sent == 4096  # the second writer waited and then found the range complete


def entry(hub: Hub, **changes: Any) -> dict[str, Any]:
    """A remote manifest entry for org/base's weights, with changes."""
    data = hub.repos["org/base"]["model.safetensors"]
    return {
        "path": f"{hub.url}/org/base/resolve/main/model.safetensors",
        "size": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
        "sha256_from": "remote",
        "ranges": [[0, 8]],
    } | changes


@pytest.mark.parametrize(
    ("changes", "said"),
    [
        ({"ranges": [[0]]}, "not [begin, end]"),
        ({"ranges": [[0, 1, 2]]}, "not [begin, end]"),
        ({"ranges": [[-5, 10]]}, "outside the file"),
        ({"ranges": [[10, 5]]}, "outside the file"),
        ({"ranges": [[0, 10**18]]}, "outside the file"),
        ({"ranges": [[0, 100], [50, 150]]}, "overlap"),
        ({"ranges": [[i, i + 1] for i in range(0, 2 * MAX_RANGES + 2, 2)]}, "at most"),
        ({"path": "file:///etc/passwd"}, "not an http(s) URL"),
        ({"path": "ftp://127.0.0.1/x"}, "not an http(s) URL"),
        ({"path": "http://[::1/x"}, "not a valid URL"),
        ({"ranges": "all of them"}, "not a valid URL entry"),
    ],
    ids=[
        *("one", "three", "negative", "reversed", "huge", "overlap", "many"),
        *("file", "ftp", "bad", "typed"),
    ],
)
def test_a_hand_written_manifest_entry_is_refused_before_any_range_request(
    hub: Hub, changes: dict[str, Any], said: str
) -> None:
    check = recheck(entry(hub, **changes), RemoteOptions.from_settings())
    assert check.status == "missing" and said in check.reason, check.reason
    assert "Next step" in check.reason
    assert not [r for r in hub.requests if r[0] == "GET"]
