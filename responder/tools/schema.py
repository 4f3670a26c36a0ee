"""The JSON Schema documents ``responder schema`` prints, generated from the same specs the
loaders validate with, so an editor's completion and validation never drift from ``check``."""

from __future__ import annotations

from typing import Any, Final

from responder import __version__
from responder.rules.file import FILE
from responder.rules.spec import Obj

DRAFT: Final = "https://json-schema.org/draft/2020-12/schema"


def _document(spec: Obj, description: str) -> dict[str, Any]:
    schema = spec.schema()
    schema.pop("description", None)
    return {
        "$schema": DRAFT,
        "title": schema.pop("title", None),
        "description": description,
        **schema,
    }


def rules_schema() -> dict[str, Any]:
    """The schema of a rule file (rules, dialogues, compliance)."""
    return _document(
        FILE,
        f"A responder {__version__} rule file: rules, dialogues, calendars and compliance "
        "settings. "
        "`responder check` validates the same language, with more checks than a schema can "
        "say (templates, regexes, unknown states, duplicate names).",
    )


def transcript_schema() -> dict[str, Any]:
    """The schema of a transcript test file (``*.test.yaml``)."""
    from responder.transcripts.language import TRANSCRIPT

    return _document(
        TRANSCRIPT,
        f"A responder {__version__} transcript test file, run by `responder test`.",
    )
