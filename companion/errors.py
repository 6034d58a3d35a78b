"""The one error family a user is meant to see; every message names the next step."""

from __future__ import annotations


class CompanionError(Exception):
    """An error for the user: `message` says what went wrong, `hint` says what to do next."""

    kind = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        self.message = message
        self.hint = hint
        super().__init__(self.text)

    @property
    def text(self) -> str:
        """The full user-facing text: message plus next step."""
        return f"{self.message} Next step: {self.hint}" if self.hint else self.message


class InputError(CompanionError):
    """A file or argument the user gave is unusable (corrupt, hostile, wrong type, missing)."""

    kind = "input"


class ConfigError(CompanionError):
    """Settings are invalid or a required setting is missing."""

    kind = "config"


class NotConfiguredError(ConfigError):
    """A feature needs configuration that is absent (e.g. no LLM endpoint)."""

    kind = "not-configured"


class EndpointError(CompanionError):
    """A remote endpoint (the LLM server) failed or misbehaved."""

    kind = "endpoint"


class StoreError(CompanionError):
    """The audit store could not be opened, migrated or written."""

    kind = "store"


class NotRecordedError(StoreError):
    """A tool ran but its result could not be recorded; `result` keeps the computed answer."""

    def __init__(self, cause: CompanionError, result: object) -> None:
        super().__init__(
            f"The result was computed but not recorded: {cause.message}", hint=cause.hint
        )
        self.result = result


class Cancelled(CompanionError):
    """The user cancelled a long-running job."""

    kind = "cancelled"

    def __init__(self, message: str = "Cancelled by the user.") -> None:
        super().__init__(message)
