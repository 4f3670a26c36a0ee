"""The ResponderError tree: one root, branches that keep their context as attributes."""

from __future__ import annotations

from dataclasses import dataclass


class ResponderError(Exception):
    """Root of every error responder raises on purpose."""


class SettingsError(ResponderError):
    """A setting is missing or malformed."""

    def __init__(self, key: str, message: str) -> None:
        super().__init__(f"{key}: {message}")
        self.key = key


@dataclass(frozen=True, slots=True, order=True)
class Problem:
    """One problem found in a rule file, reported as ``file:line: message``."""

    file: str
    line: int
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


class RulesError(ResponderError):
    """A rule set failed validation; ``problems`` lists every problem found."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems)
        super().__init__("\n".join(str(p) for p in self.problems))


class BadRequest(ResponderError):
    """A webhook request that cannot be read at all (answered 400)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Unauthorized(ResponderError):
    """A webhook request without valid credentials (answered 401 or 403)."""

    def __init__(self, reason: str, status: int = 401) -> None:
        super().__init__(reason)
        self.reason = reason
        self.status = status


class TemplateError(ResponderError):
    """A template failed to compile or render; ``lineno`` is relative to the template."""

    def __init__(self, message: str, lineno: int | None = None) -> None:
        super().__init__(message)
        self.lineno = lineno


class StepError(ResponderError):
    """A dialogue move its machine does not allow from the conversation's state."""

    def __init__(self, message: str, *, dialogue: str, state: str, trigger: str) -> None:
        super().__init__(message)
        self.dialogue = dialogue
        self.state = state
        self.trigger = trigger


class AppStateError(ResponderError, ValueError):
    """A pass-on state that is missing its signature, malformed, or forged."""


class StoreError(ResponderError):
    """The store could not be opened or used."""


class ConflictError(ResponderError):
    """A commit lost a race: the conversation changed since it was read (compare-and-set
    failed), or a limit the decision counted on was reached meanwhile. Decided again, not
    an outage."""


class DeliveryError(ResponderError):
    """An outbound API call failed; ``retry`` tells whether trying again may help."""

    def __init__(self, message: str, *, retry: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after
