"""The JSON Schema the rules language emits: it terminates, its references resolve, and the
published document validates every shipped rule file and rejects broken ones."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator

from responder.cli import main
from responder.events import KINDS
from responder.rules.file import FILE
from responder.rules.language import RULE_FIELDS, TIME, WHEN
from responder.rules.yamlnodes import load
from responder.tools.schema import rules_schema


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


# -- `responder schema`: the published document -----------------------------------------------

REPO = Path(__file__).resolve().parent.parent.parent
DATA = REPO / "tests" / "data" / "rules"


def shipped_rule_files() -> list[Path]:
    files = [
        p
        for root in (REPO / "rules", REPO / "examples", DATA / "valid")
        for p in sorted(root.rglob("*.y*ml"))
        if not p.name.endswith((".test.yaml", ".test.yml"))
    ]
    assert len(files) >= 9
    return files


def tree_of(path: Path) -> Any:
    tree, problems = load(path.read_text(encoding="utf-8"), str(path))
    assert problems == []
    return tree


def printed_schema(capsys: pytest.CaptureFixture[str], *args: str) -> dict[str, Any]:
    assert main(["schema", *args]) == 0
    document: dict[str, Any] = json.loads(capsys.readouterr().out)
    return document


def test_schema_command_prints_a_draft_2020_12_schema(capsys) -> None:
    schema = printed_schema(capsys)
    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert schema["title"] == "responder rules file"
    assert schema["description"].startswith("A responder ")
    assert set(schema["properties"]) == set(FILE.fields)
    assert {"rules", "dialogues", "compliance"} <= set(schema["properties"])
    assert schema == rules_schema()


def test_every_property_is_described_for_completion() -> None:
    undocumented: list[str] = []

    def walk(node: Any, path: str) -> None:
        if isinstance(node, dict):
            for key, value in (node.get("properties") or {}).items():
                if "description" not in value and "$ref" not in value:
                    undocumented.append(f"{path}.{key}")
            for key, value in node.items():
                walk(value, f"{path}/{key}")
        elif isinstance(node, list):
            for index, value in enumerate(node):
                walk(value, f"{path}[{index}]")

    walk(rules_schema(), "")
    assert undocumented == []


@pytest.mark.parametrize("path", shipped_rule_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_the_schema_validates_every_shipped_rule_file(path: Path) -> None:
    errors = list(Draft202012Validator(rules_schema()).iter_errors(tree_of(path)))
    assert errors == []


def test_the_schema_rejects_broken_rule_files() -> None:
    validator = Draft202012Validator(rules_schema())
    unknown = sorted(
        e.message for e in validator.iter_errors(tree_of(DATA / "broken" / "02_unknown_keys.yaml"))
    )
    assert len(unknown) == 4
    assert all("Additional properties are not allowed" in m for m in unknown)
    assert any("'replly' was unexpected" in m for m in unknown)
    assert any("'ruels' was unexpected" in m for m in unknown)
    types = list(validator.iter_errors(tree_of(DATA / "broken" / "03_types.yaml")))
    assert {tuple(e.absolute_path)[:3] for e in types} >= {
        ("rules", 0, "priority"),
        ("rules", 1, "continue"),
    }
    broken = {
        "rules": [
            {"on": "sms.received", "reply": {"text": "no name"}},
            {"name": "bad name!", "on": "sms.received", "priority": 5000, "reply": {"text": 1}},
        ],
        "dialogues": [{"name": "d", "states": {"a": {"gather": {"max_digits": 999}}}}],
    }
    paths = sorted(str(list(e.absolute_path)) for e in validator.iter_errors(broken))
    assert paths == [
        "['dialogues', 0, 'states', 'a', 'gather', 'max_digits']",
        "['rules', 0]",
        "['rules', 1, 'name']",
        "['rules', 1, 'priority']",
    ]


def test_transcript_schema_validates_shipped_transcripts_and_rejects_broken(capsys) -> None:
    schema = printed_schema(capsys, "--transcripts")
    Draft202012Validator.check_schema(schema)
    validator = Draft202012Validator(schema)
    transcripts = [
        *sorted(REPO.glob("examples/*/*.test.yaml")),
        REPO / "rules" / "default.test.yaml",
    ]
    for path in transcripts:
        assert list(validator.iter_errors(tree_of(path))) == [], path
    broken = {"tests": [{"name": "x", "steps": [{"sms": "hi", "expect": {"replly": "x"}}]}]}
    [error] = validator.iter_errors(broken)
    assert list(error.absolute_path) == ["tests", 0, "steps", 0, "expect"]
