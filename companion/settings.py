"""One settings model: environment variables, editor settings and CLI flags all map onto it."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Any

from pydantic import AliasChoices, ConfigDict, Field, ValidationError, model_validator
from pydantic.fields import FieldInfo

from companion.model import Model

# Names of variables that hold keys; anything else (PATH, HOME...) is never sent to an endpoint.
KEY_ENV_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*_(API_KEY|KEY|TOKEN)$"


def _env(name: str, *more: str) -> AliasChoices:
    """Accept the field name (editor/kwargs) and the listed environment variable names."""
    return AliasChoices(name, *more)


def env_names(name: str, field: FieldInfo) -> list[str]:
    """The environment variables a field reads, first one set wins: its upper-case aliases."""
    alias = field.validation_alias
    if isinstance(alias, AliasChoices):
        return [a for a in alias.choices if isinstance(a, str) and a.isupper()]
    return [f"COMPANION_{name.upper()}"]


def _given(name: str, field: FieldInfo, data: dict[str, Any]) -> bool:
    """Whether the keywords set this field, by its name or any of its aliases."""
    alias = field.validation_alias
    choices = alias.choices if isinstance(alias, AliasChoices) else []
    return name in data or any(isinstance(a, str) and a in data for a in choices)


class Settings(Model):
    """All user-facing settings. Editors send them camelCase or nested; see `from_editor`."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True, validate_default=True)

    @model_validator(mode="before")
    @classmethod
    def _from_environment(cls, data: Any) -> Any:
        """Fill each field the keywords leave out from its environment variables (any case)."""
        if not isinstance(data, dict):
            return data
        env = {key.upper(): value for key, value in os.environ.items()}
        filled = dict(data)
        for name, field in cls.model_fields.items():
            found = [env[e] for e in env_names(name, field) if e in env]
            if found and not _given(name, field, data):
                filled[name] = found[0]
        return filled

    home: Path | None = Field(
        default=None,
        description="Data directory for the store and caches (env COMPANION_HOME). "
        "Default: the per-user data directory.",
    )
    store_path: Path | None = Field(
        default=None,
        description="SQLite audit store file (env COMPANION_STORE_PATH). "
        "Default: <home>/store.sqlite3.",
    )
    store_url: str | None = Field(
        default=None,
        pattern=r"^postgres(ql)?://",
        description="Shared PostgreSQL audit store, e.g. postgresql://user@db.example/companion "
        "(env COMPANION_STORE_URL; needs the `postgres` extra). When set it replaces the SQLite "
        "file; `companion store migrate-to URL` copies an existing file into it.",
    )
    store_enabled: bool = Field(
        default=True, description="Record every run in the audit store (CLI flag --no-store)."
    )
    log_level: str = Field(
        default="INFO", pattern=r"^(DEBUG|INFO|WARNING|ERROR)$", description="Server log level."
    )
    llm_base_url: str | None = Field(
        default=None,
        validation_alias=_env("llm_base_url", "COMPANION_LLM_BASE_URL", "OPENAI_BASE_URL"),
        description="OpenAI-compatible endpoint, e.g. http://127.0.0.1:11434/v1 "
        "(env COMPANION_LLM_BASE_URL, falling back to OPENAI_BASE_URL).",
    )
    llm_model: str | None = Field(
        default=None,
        validation_alias=_env("llm_model", "COMPANION_LLM_MODEL"),
        description="Model name served by the endpoint (env COMPANION_LLM_MODEL).",
    )
    llm_api_key_env: str = Field(
        default="OPENAI_API_KEY",
        pattern=KEY_ENV_PATTERN,
        validation_alias=_env("llm_api_key_env", "COMPANION_LLM_API_KEY_ENV"),
        description="Name of the environment variable that holds the API key (never the key). "
        "Only names ending in _API_KEY, _KEY or _TOKEN are accepted, so a workspace cannot "
        "forward an arbitrary variable to an endpoint.",
    )
    llm_context_length: int = Field(
        default=8192,
        ge=512,
        le=10_000_000,
        description="Context window used when the endpoint does not report one.",
    )
    llm_max_output_tokens: int = Field(
        default=1024, ge=16, le=1_000_000, description="Tokens reserved for the answer."
    )
    llm_timeout_s: float = Field(
        default=60.0, gt=0, le=3600, description="Timeout (s) for each read from the endpoint."
    )
    llm_max_retries: int = Field(
        default=2,
        ge=0,
        le=10,
        description="Retries after a 429, 5xx, timeout or a stream that broke before any text.",
    )
    llm_max_answer_chars: int = Field(
        default=100_000,
        ge=100,
        le=10_000_000,
        description="Stop reading an answer (text plus tool-call arguments) after this many "
        "characters; the response is also capped at 64 bytes per character on the wire.",
    )
    llm_max_answer_s: float = Field(
        default=300.0,
        gt=0,
        le=86_400,
        description="Stop reading one streamed answer after this many seconds in total.",
    )
    llm_discovery_timeout_s: float = Field(
        default=3.0,
        gt=0,
        le=60,
        description="Total time allowed for probing the endpoint's context length.",
    )
    chat_max_tool_rounds: int = Field(
        default=4, ge=0, le=20, description="Bound on tool-calling rounds per chat turn."
    )
    chat_max_tool_calls_per_round: int = Field(
        default=8,
        ge=1,
        le=100,
        description="Tool calls run from one model reply (the rest are skipped).",
    )
    chat_max_tool_calls_per_turn: int = Field(
        default=24, ge=1, le=1000, description="Tool calls run in one chat turn, over all rounds."
    )
    chat_tool_output_chars: int = Field(
        default=8000, ge=256, le=1_000_000, description="Cap on each tool result quoted to the LLM."
    )
    scan_max_files: int = Field(
        default=50_000,
        ge=1,
        le=10_000_000,
        description="Stop a workspace scan after this many files.",
    )
    digest_cache: bool = Field(
        default=True,
        description="Reuse the sha256 of an unchanged input file (same inode, size, mtime and "
        "ctime) from <home>/digests.sqlite3 instead of re-reading it; manifests say which.",
    )
    audit_workers: int = Field(
        default=2,
        ge=1,
        le=64,
        description="Threads used by weight audits (numpy releases the GIL).",
    )

    hf_endpoint: str = Field(
        default="https://huggingface.co",
        pattern=r"^https?://",
        validation_alias=_env("hf_endpoint", "HF_ENDPOINT", "COMPANION_HF_ENDPOINT"),
        description="Hub endpoint for hf://ORG/NAME checkpoints (env HF_ENDPOINT, as "
        "huggingface_hub reads it). The token comes from HF_TOKEN, is sent only to this "
        "endpoint's origin and is never logged.",
    )
    remote_cache_dir: Path | None = Field(
        default=None,
        description="On-disk cache of byte ranges read from remote checkpoints, keyed by the "
        "server's origin, the ETag and the range, so a repeat audit fetches nothing. "
        "Default: <home>/remote-cache.",
    )
    remote_concurrency: int = Field(
        default=4, ge=1, le=64, description="Range requests in flight per remote audit."
    )
    remote_bandwidth: int | None = Field(
        default=None,
        ge=1024,
        description="Cap on remote download speed in bytes per second (unset: no cap).",
    )
    remote_timeout_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Seconds a remote read may wait for the next bytes before it is retried.",
    )
    remote_min_rate: int = Field(
        default=64 * 1024,
        ge=0,
        description="Slowest average speed, in bytes per second, at which a remote range is "
        "still read: measured once a request has waited remote_timeout_s for its bytes (the "
        "time remote_bandwidth holds it back does not count), a slower one is retried and "
        "then given up with an error. 0 turns the floor off.",
    )
    remote_retries: int = Field(
        default=4,
        ge=0,
        le=20,
        description="Retries of a remote request on 429, 5xx, resets and timeouts (with "
        "backoff, honouring Retry-After).",
    )
    remote_coalesce_gap: int = Field(
        default=1 << 20,
        ge=0,
        description="Byte gap below which the ranges of neighbouring tensors merge into one "
        "request.",
    )
    remote_full_download: bool = Field(
        default=False,
        description="Allow downloading a whole remote file when its server ignores Range "
        "requests (otherwise that is an error).",
    )

    def data_dir(self) -> Path:
        """The directory holding the store and caches."""
        if self.home is not None:
            return self.home
        from platformdirs import user_data_dir

        return Path(user_data_dir("companion", appauthor=False))

    def digest_path(self) -> Path | None:
        """The digest cache file, or None when the cache is off."""
        return self.data_dir() / "digests.sqlite3" if self.digest_cache else None

    def resolved_store_path(self) -> Path:
        """The store file this configuration points at."""
        return self.store_path if self.store_path is not None else self.data_dir() / "store.sqlite3"


_CAMEL = re.compile(r"(?<!^)(?=[A-Z])")


def _flatten(data: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Turn {'llm': {'baseUrl': x}} and {'llmBaseUrl': x} into {'llm_base_url': x}."""
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = prefix + _CAMEL.sub("_", str(key)).lower().replace(".", "_").replace("-", "_")
        if isinstance(value, dict):
            out.update(_flatten(value, name + "_"))
        else:
            out[name] = value
    return out


def problems(exc: ValidationError) -> list[str]:
    """Readable lines for invalid settings (the key-variable rule in words, not a regex)."""
    out = []
    for e in exc.errors():
        name = ".".join(str(p) for p in e["loc"])
        if name == "llm_api_key_env" and e["type"] == "string_pattern_mismatch":
            out.append(
                f"llm_api_key_env: {e['input']!r} is not a key variable; name an environment "
                "variable ending in _API_KEY, _KEY or _TOKEN (the default OPENAI_API_KEY is used)"
            )
        else:
            out.append(f"{name}: {e['msg']}")
    return out


def load_settings() -> Settings:
    """Settings from the environment; ConfigError naming the bad value instead of a traceback."""
    from companion.errors import ConfigError

    try:
        return Settings()
    except ValidationError as exc:
        raise ConfigError(
            "Invalid settings in the environment: " + "; ".join(problems(exc)) + ".",
            hint="fix or unset the COMPANION_* variable named above.",
        ) from None


def from_editor(data: object) -> tuple[Settings, list[str]]:
    """Build settings from editor JSON; on invalid input return defaults plus readable errors."""
    if data is None:
        return Settings(), []
    if not isinstance(data, dict):
        return Settings(), [f"settings must be an object, got {type(data).__name__}"]
    flat = _flatten(
        data.get("companion", data) if isinstance(data.get("companion"), dict) else data
    )
    known = set(Settings.model_fields)
    unknown = sorted(k for k in flat if k not in known)
    try:
        settings = Settings(**{k: v for k, v in flat.items() if k in known})
    except ValidationError as exc:
        return Settings(), problems(exc)
    return settings, [f"unknown setting '{k}' ignored" for k in unknown]


def settings_markdown() -> str:
    """docs/settings.md: every setting with its editor key, env var, default and meaning."""
    lines = [
        "# Settings",
        "",
        "Generated from `companion/settings.py`:",
        "`python -m companion.settings > docs/settings.md`.",
        "Editors send the camelCase key in `initializationOptions` or",
        '`workspace/didChangeConfiguration` (flat, or nested as `{"llm": {"baseUrl": ...}}`).',
        "",
        "| setting | editor key | environment | default | meaning |",
        "|---|---|---|---|---|",
    ]
    for name, field in Settings.model_fields.items():
        camel = name.split("_")[0] + "".join(w.title() for w in name.split("_")[1:])
        envs = env_names(name, field)
        default = "—" if field.default is None else f"`{field.default}`"
        lines.append(
            f"| `{name}` | `{camel}` | {', '.join(f'`{e}`' for e in envs)} | {default} "
            f"| {field.description or ''} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(settings_markdown(), end="")
