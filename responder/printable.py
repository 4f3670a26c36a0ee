"""Text from strangers made safe to print: one line, no control characters."""

from __future__ import annotations

import io
import re
from typing import Final, TextIO

# Characters that would end or forge a text log line, or hide part of it on a terminal.
_CONTROL: Final = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")


def _escaped(match: re.Match[str]) -> str:
    return match.group().encode("unicode_escape").decode("ascii")


def one_line(text: str, limit: int | None = None) -> str:
    """``text`` with every control character escaped (``\\r``, ``\\x1b``), cut to ``limit``
    characters when given: safe to write on one line of a log or a terminal."""
    # isprintable() is a C loop over the text; it is False for every character the pattern
    # escapes (and for some harmless ones, which the pattern then leaves alone).
    if not text.isprintable() and _CONTROL.search(text):
        text = _CONTROL.sub(_escaped, text)
    if limit is not None and len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


# Every control character but the line feed and the tab: what a tool's own lines are made of.
_CONTROL_IN_LINES: Final = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029]")


def in_lines(text: str) -> str:
    """``text`` with every control character escaped except line feeds and tabs."""
    if _CONTROL_IN_LINES.search(text):
        text = _CONTROL_IN_LINES.sub(_escaped, text)
    return text


class Escaping(io.TextIOBase):
    """A text stream that escapes every control character written to it except line feeds
    and tabs: a tool's output on a terminal, whatever the data it shows holds (a CR that
    would overwrite a line, an ESC sequence that would recolour or retitle the terminal).
    Fields that must stay on one line are passed through ``one_line`` as well."""

    def __init__(self, raw: TextIO) -> None:
        super().__init__()
        self.raw = raw  # for a tool's own control characters (a progress bar's \r)

    def write(self, text: str) -> int:
        self.raw.write(in_lines(text))
        return len(text)

    def flush(self) -> None:
        self.raw.flush()

    def fileno(self) -> int:
        return self.raw.fileno()

    def isatty(self) -> bool:
        return self.raw.isatty()

    def writable(self) -> bool:
        return True

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return str(getattr(self.raw, "encoding", "utf-8"))
