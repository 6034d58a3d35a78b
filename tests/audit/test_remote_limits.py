"""Servers that abuse the client's patience or disk: a body dripped just inside every read
timeout is abandoned under the remote_min_rate floor (never because of our own bandwidth
cap), and a whole-file download needs room on the disk first. Every server here is the
loopback hub (127.0.0.1)."""

from __future__ import annotations

import json
import struct
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from helpers.hub_server import Hub
from helpers.remote_repos import family_repos, hub_env

from companion.audit.checkpoint import open_checkpoint
from companion.audit.prefetch import fetch_remote
from companion.audit.remote_http import Blob, RemoteOptions, client, limiter, probe
from companion.errors import InputError
from companion.jobs import Job


@pytest.fixture
def hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Hub]:
    """The loopback hub with org/base, org/tuned and org/other."""
    with hub_env(family_repos(tmp_path), tmp_path, monkeypatch) as h:
        yield h


def blob(hub: Hub) -> Blob:
    """org/base's weights, probed with the settings of the environment."""
    s = RemoteOptions.from_settings()
    return probe(f"{hub.url}/org/base/resolve/main/model.safetensors", s, client(s), limiter(s))


def test_a_body_dripped_inside_every_timeout_is_given_up_as_too_slow(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMPANION_REMOTE_TIMEOUT_S", "2")  # each 20 ms gap is well inside it
    monkeypatch.setenv("COMPANION_REMOTE_MIN_RATE", "1000")  # the drip is ~50 bytes/s
    monkeypatch.setenv("COMPANION_REMOTE_RETRIES", "0")
    hub.faults.add("drip")
    with pytest.raises(InputError) as err:
        blob(hub).read(0, 4096)
    assert "too slow" in err.value.message and "bytes/s" in err.value.message
    assert "mirror" in (err.value.hint or "") and "remote_min_rate" in (err.value.hint or "")
    assert hub.sent < 500  # abandoned before the drip ran out by itself


def test_our_own_bandwidth_cap_does_not_trip_the_floor(
    hub: Hub, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMPANION_REMOTE_TIMEOUT_S", "5")  # the grace: a loaded machine is slow
    monkeypatch.setenv("COMPANION_REMOTE_BANDWIDTH", "1024")  # 2 KB take ~2 s of our sleep
    monkeypatch.setenv("COMPANION_REMOTE_MIN_RATE", "1000000")  # far above our own cap
    monkeypatch.setenv("COMPANION_REMOTE_RETRIES", "0")
    data = hub.repos["org/base"]["model.safetensors"]
    assert blob(hub).read(0, 2048) == data[:2048]


def test_a_full_download_bigger_than_the_free_disk_is_refused_unwritten(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COMPANION_REMOTE_FULL_DOWNLOAD", "true")
    hub.faults.add("norange")
    hub.head_size = 10 * 10**12  # the HEAD claims 10 TB
    with pytest.raises(InputError) as err:
        blob(hub).read(0, 8)
    assert "10,000,000,000,000 bytes" in err.value.message and "free" in err.value.message
    assert "remote_cache_dir" in (err.value.hint or "")
    written = [p for p in (tmp_path / "cache").rglob("*") if p.is_file()]
    assert not [p for p in written if p.stat().st_size or p.suffix == ".whole"], written


@pytest.mark.skipif(sys.platform == "win32", reason="RLIMIT_FSIZE is POSIX")
def test_a_cache_write_the_disk_refuses_is_a_clear_error(hub: Hub) -> None:
    import resource

    fetched = blob(hub)
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1000, hard))  # writes past 1000 bytes: EFBIG
    try:
        with pytest.raises(InputError) as err:
            fetched.read(0, 4096)
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert "Cannot write the range cache" in err.value.message
    assert "remote_cache_dir" in (err.value.hint or "")


def test_an_unwritable_cache_folder_is_a_clear_error(
    hub: Hub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "file").write_bytes(b"")
    monkeypatch.setenv("COMPANION_REMOTE_CACHE_DIR", str(tmp_path / "file" / "cache"))
    with pytest.raises(InputError) as err:
        blob(hub).read(0, 8)
    assert "Cannot write the range cache" in err.value.message


def test_ranges_bigger_than_the_free_disk_are_refused_before_any_is_fetched(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    huge = 10 * 10**12  # a header (and HEAD) that claim a 10 TB tensor; Range is honoured
    head = json.dumps({"w": {"dtype": "U8", "shape": [huge], "data_offsets": [0, huge]}})
    data = struct.pack("<Q", len(head)) + head.encode() + bytes(64)
    with hub_env({"org/huge": {"model.safetensors": data}}, tmp_path, monkeypatch) as hub:
        hub.head_size = 8 + len(head) + huge
        settings = RemoteOptions.from_settings()
        ck = open_checkpoint("hf://org/huge", settings)
        before = [r for r in hub.requests if r[0] == "GET"]
        with pytest.raises(InputError) as err:
            fetch_remote([ck], [["w"]], Job(), settings)
    assert "10,000,000,000,000 bytes" in err.value.message and "free" in err.value.message
    assert "remote_cache_dir" in (err.value.hint or "")
    assert [r for r in hub.requests if r[0] == "GET"] == before  # no range of it was asked for
