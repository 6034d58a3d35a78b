"""Which LLM endpoint to use: base URL, model and key (read from the env var named in settings).

Also discovers the served context length: vLLM `/v1/models` (max_model_len), llama.cpp
`/props` (n_ctx), Ollama `/api/show` (num_ctx); otherwise the configured value.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from companion.errors import NotConfiguredError
from companion.settings import Settings

OPENAI_URL = "https://api.openai.com/v1"
# Local servers (Ollama, vLLM, llama.cpp) accept any key; the SDK insists on a non-empty one.
PLACEHOLDER_KEY = "not-needed"
DISCOVERY_TIMEOUT_S = 3.0
MAX_PROBE_BYTES = 4 * 1024 * 1024
FALLBACK_SOURCE = "settings llm_context_length"
DISCOVERY_TIMED_OUT = "discovery did not finish"
log = logging.getLogger("companion.llm")

SETUP_HELP = """\
Set one of these (environment variables, or the same keys in your editor's companion settings):
  OpenAI:  export OPENAI_API_KEY=sk-...  COMPANION_LLM_MODEL=gpt-4o-mini
  Ollama:  export COMPANION_LLM_BASE_URL=http://127.0.0.1:11434/v1  COMPANION_LLM_MODEL=llama3.1
  vLLM:    export COMPANION_LLM_BASE_URL=http://127.0.0.1:8000/v1  COMPANION_LLM_MODEL=<model>
Editor settings (JSON): {"companion": {"llm": {"baseUrl": "http://127.0.0.1:11434/v1", \
"model": "llama3.1", "apiKeyEnv": "OPENAI_API_KEY"}}}
The key itself never goes in settings: llm_api_key_env names the variable that holds it. \
Every non-chat tool works without any of this."""


@dataclass(frozen=True)
class Endpoint:
    """A resolved endpoint. The key is excluded from repr so it never reaches a log."""

    base_url: str
    model: str
    key_env: str
    api_key: str = field(repr=False)

    @property
    def is_local(self) -> bool:
        """Whether the endpoint is on this machine (loopback)."""
        host = urlparse(self.base_url).hostname or ""
        return host in ("127.0.0.1", "localhost", "::1") or host.startswith("127.")

    @property
    def root_url(self) -> str:
        """The server root (base URL without a trailing /v1)."""
        return re.sub(r"/v1/?$", "", self.base_url.rstrip("/"))

    def redact(self, text: str) -> str:
        """Remove the key from any text (error bodies may echo it)."""
        if self.api_key and self.api_key != PLACEHOLDER_KEY and len(self.api_key) >= 4:
            text = text.replace(self.api_key, "***")
        return text


def not_configured(reason: str) -> NotConfiguredError:
    """The error shown when chat has no endpoint, with ready-to-paste settings."""
    return NotConfiguredError(f"LLM chat is not configured: {reason}.", hint="\n" + SETUP_HELP)


def resolve_endpoint(settings: Settings, env: dict[str, str] | None = None) -> Endpoint:
    """The endpoint the settings describe; NotConfiguredError (with setup help) when incomplete."""
    environ = os.environ if env is None else env
    key = environ.get(settings.llm_api_key_env, "").strip()
    base = (settings.llm_base_url or "").strip().rstrip("/")
    if not base and not settings.llm_model:
        raise not_configured("no endpoint (llm_base_url) and no model (llm_model) are set")
    if base and urlparse(base).scheme not in ("http", "https"):
        raise not_configured(f"llm_base_url {base!r} is not an http(s) URL")
    if not base:
        if not key:
            raise not_configured(
                f"llm_model is set but no llm_base_url, and ${settings.llm_api_key_env} "
                "(the key for api.openai.com) is empty"
            )
        base = OPENAI_URL
    if not settings.llm_model:
        raise not_configured(f"llm_base_url is {base} but llm_model is not set")
    endpoint = Endpoint(base, settings.llm_model, settings.llm_api_key_env, key or PLACEHOLDER_KEY)
    if not key and not endpoint.is_local and urlparse(base).hostname == "api.openai.com":
        raise not_configured(f"${settings.llm_api_key_env} is empty")
    return endpoint


class DiscoveryCache(dict[tuple[str, str], "tuple[int, str] | None"]):
    """Per process: (base_url, model) -> what the endpoint reported (None: it reports nothing)."""

    def reset(self) -> None:
        """Forget every discovered context length."""
        self.clear()


DISCOVERED = DiscoveryCache()


def _from_models(data: Any, model: str) -> int | None:
    """vLLM: /v1/models entries carry max_model_len."""
    entries = data.get("data") if isinstance(data, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and entry.get("id") == model:
            value = entry.get("max_model_len")
            return int(value) if isinstance(value, int) and value > 0 else None
    return None


def _from_props(data: Any) -> int | None:
    """llama.cpp: /props has default_generation_settings.n_ctx (or a top-level n_ctx)."""
    if not isinstance(data, dict):
        return None
    gen = data.get("default_generation_settings")
    value = gen.get("n_ctx") if isinstance(gen, dict) else data.get("n_ctx")
    return int(value) if isinstance(value, int) and value > 0 else None


def _from_ollama(data: Any) -> int | None:
    """Ollama: /api/show lists `num_ctx N` in its parameters when the model sets it."""
    params = data.get("parameters") if isinstance(data, dict) else None
    if isinstance(params, str):
        match = re.search(r"^\s*num_ctx\s+(\d+)\s*$", params, re.MULTILINE)
        if match:
            return int(match.group(1))
    return None


def remember_context_length(endpoint: Endpoint, length: int, source: str) -> None:
    """Record a context length learned from the endpoint (e.g. from its refusal)."""
    DISCOVERED[(endpoint.base_url, endpoint.model)] = (length, source)


async def discover_context_length(
    endpoint: Endpoint, fallback: int, timeout_s: float = DISCOVERY_TIMEOUT_S
) -> tuple[int, str]:
    """(context length, where it came from); all probes together take at most `timeout_s`."""
    cache_key = (endpoint.base_url, endpoint.model)
    if cache_key in DISCOVERED:
        cached = DISCOVERED[cache_key]
        return cached if cached is not None else (fallback, FALLBACK_SOURCE)
    found: tuple[int, str] | None = None
    source = FALLBACK_SOURCE
    try:
        # Per-read timeouts alone do not bound a server that trickles bytes: bound the total.
        async with asyncio.timeout(timeout_s):
            found = await _probe_all(endpoint, timeout_s)
    except TimeoutError:
        log.warning("context-length discovery at %s timed out", endpoint.root_url)
        source = f"{FALLBACK_SOURCE} ({DISCOVERY_TIMED_OUT} within {timeout_s:g} s)"
    DISCOVERED[cache_key] = found
    return found if found is not None else (fallback, source)


async def _probe_all(endpoint: Endpoint, timeout_s: float) -> tuple[int, str] | None:
    """Ask each known discovery route in turn; the first that reports a length wins."""
    import httpx

    headers = {"Authorization": f"Bearer {endpoint.api_key}"}
    probes: list[tuple[str, str, Any]] = [("GET", endpoint.base_url + "/models", None)]
    if endpoint.is_local or urlparse(endpoint.base_url).hostname != "api.openai.com":
        probes += [
            ("GET", endpoint.root_url + "/props", None),
            ("POST", endpoint.root_url + "/api/show", {"model": endpoint.model}),
        ]
    async with httpx.AsyncClient(timeout=timeout_s, headers=headers) as http:
        for method, url, body in probes:
            try:
                data = await _probe(http, method, url, body)
            except (httpx.HTTPError, ValueError):
                continue
            if url.endswith("/models"):
                value, source = _from_models(data, endpoint.model), "vLLM /v1/models max_model_len"
            elif url.endswith("/props"):
                value, source = _from_props(data), "llama.cpp /props n_ctx"
            else:
                value, source = _from_ollama(data), "Ollama /api/show num_ctx"
            if value:
                return value, source
    return None


async def _probe(http: Any, method: str, url: str, body: Any) -> Any:
    """One probe's JSON (None unless 200); ValueError when the body passes MAX_PROBE_BYTES."""
    async with http.stream(method, url, json=body) as response:
        if response.status_code != 200:
            return None
        data = b""
        async for chunk in response.aiter_bytes():
            data += chunk
            if len(data) > MAX_PROBE_BYTES:
                raise ValueError(f"{url} sent more than {MAX_PROBE_BYTES} bytes")
    return json.loads(data)
