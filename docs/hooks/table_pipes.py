"""Docs build hook: a pipe written ``\\|`` inside code in a table cell shows as ``|``."""

from __future__ import annotations

import re
from typing import Any

# GitHub needs the backslash to keep such a pipe in its cell; Python-Markdown keeps pipes
# inside code in their cell already and would show the backslash, turning `(a\|aa)*` into
# another regex. So the pages keep GitHub's spelling and the site drops the backslash.
CODE = re.compile(r"`+[^`\n]*`+")


def on_page_markdown(markdown: str, **_: Any) -> str:
    lines, fenced = [], False
    for line in markdown.split("\n"):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        elif not fenced and line.lstrip().startswith("|"):
            line = CODE.sub(lambda code: code.group(0).replace("\\|", "|"), line)
        lines.append(line)
    return "\n".join(lines)
