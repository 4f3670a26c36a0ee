"""Text from strangers made safe to print: one line, no control characters."""

from __future__ import annotations

import re
from typing import Final

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
