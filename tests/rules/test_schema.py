"""The JSON Schema the rules language emits: it terminates, and its references resolve."""

from __future__ import annotations

import json
from typing import Any

from responder.events import KINDS
from responder.rules.language import FILE, RULE_FIELDS, TIME, WHEN


def refs(node: Any) -> list[str]:
    if isinstance(node, dict):
        found = [node["$ref"]] if "$ref" in node else []
        return found + [r for value in node.values() for r in refs(value)]
    if isinstance(node, list):
        return [r for value in node for r in refs(value)]
    return []


def test_file_schema_terminates_and_refs_resolve() -> None:
    schema = FILE.schema()
    json.dumps(schema)  # plain JSON
    assert schema["title"] == "responder rules file"
    assert schema["additionalProperties"] is False
    defs = schema["$defs"]
    assert set(defs) == {"when"}
    assert refs(schema)
    for ref in refs(schema):
        assert ref.startswith("#/$defs/")
        assert ref.removeprefix("#/$defs/") in defs


def test_rule_schema_lists_every_rule_key() -> None:
    rule = FILE.schema()["properties"]["rules"]["items"]
    assert set(rule["properties"]) == set(RULE_FIELDS)
    assert rule["required"] == ["name", "on"]
    assert rule["properties"]["when"] == {"$ref": "#/$defs/when"}
    on = rule["properties"]["on"]["anyOf"][0]
    assert on["examples"] == sorted(KINDS)


def test_when_is_recursive_through_not_and_any() -> None:
    when = FILE.schema()["$defs"]["when"]
    assert when["properties"]["not"] == {"$ref": "#/$defs/when"}
    assert when["properties"]["any"]["items"] == {"$ref": "#/$defs/when"}
    assert when["properties"]["any"]["minItems"] == 1
    assert set(when["properties"]) == set(WHEN.fields)


def test_when_alone_carries_its_own_definition() -> None:
    schema = WHEN.schema()
    assert schema["$ref"] == "#/$defs/when"
    assert "text" in schema["$defs"]["when"]["properties"]


def test_schema_calls_do_not_leak_definitions() -> None:
    assert "$defs" not in TIME.schema()
    time = TIME.schema()
    assert time["required"] == ["timezone"]
    assert time["properties"]["dates"]["anyOf"][0]["pattern"] == r"^(?:\d{4}-\d{2}-\d{2})$"
