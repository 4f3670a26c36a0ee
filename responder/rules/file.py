"""A whole rules file: its four parts, each a language of its own.

The loader validates with this spec and ``responder schema`` prints its JSON Schema, so the two
can never disagree.
"""

from __future__ import annotations

from typing import Final

from responder.rules.calendars import CALENDARS
from responder.rules.compliance import COMPLIANCE
from responder.rules.dialogues import DIALOGUE
from responder.rules.language import RULE
from responder.rules.spec import Field, ListOf, Obj

FILE: Final = Obj(
    {
        "rules": Field(ListOf(RULE, "The rules of this file.", single=False, partial=True)),
        "dialogues": Field(
            ListOf(DIALOGUE, "The dialogues of this file.", single=False, partial=True)
        ),
        "compliance": Field(COMPLIANCE),
        "calendars": Field(CALENDARS),
    },
    "A responder rules file.",
    title="responder rules file",
)
