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


class TemplateRenderError(ResponderError):
    """A template failed while rendering; ``rule`` names the rule it belongs to."""

    def __init__(self, rule: str, message: str) -> None:
        super().__init__(f"rule {rule!r}: {message}")
        self.rule = rule


class StoreError(ResponderError):
    """The store could not be opened or used."""


class DeliveryError(ResponderError):
    """An outbound API call failed; ``retry`` tells whether trying again may help."""

    def __init__(self, message: str, *, retry: bool, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry = retry
        self.retry_after = retry_after
