"""Located YAML: line numbers, YAML 1.2 scalars, merge keys, aliases and limits."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from responder.errors import Problem
from responder.rules import yamlnodes
from responder.rules.yamlnodes import MAX_DEPTH, MAX_NODES, LMap, LSeq, line_of, load
from tests.conftest import REPO


def test_lines_of_mappings_keys_and_items() -> None:
    tree, problems = load("# comment\nrules:\n  - name: a\n    on: x\n  - {name: b}\n", "f")
    assert problems == []
    assert isinstance(tree, LMap)
    assert (tree.line, tree.key_lines) == (2, {"rules": 2})
    rules = tree["rules"]
    assert isinstance(rules, LSeq)
    assert (rules.line, rules.item_lines) == (3, [3, 5])
    assert rules[0].key_lines == {"name": 3, "on": 4}
    assert line_of(rules[1], 99) == 5
    assert line_of("scalar", 99) == 99


@pytest.mark.parametrize(
    ("scalar", "value"),
    [
        ("on", "on"),
        ("off", "off"),
        ("yes", "yes"),
        ("No", "No"),
        ("y", "y"),
        ("true", True),
        ("False", False),
        ("TRUE", True),
        ("0", 0),
        ("-3", -3),
        ("+4", 4),
        ("42", 42),
        ("007", "007"),
        ("010", "010"),
        ("08", "08"),
        ("1_000", "1_000"),
        ("1:30", "1:30"),
        ("0x1F", 31),
        ("0o17", 15),
        ("1.5", 1.5),
        ("-.5", -0.5),
        ("1e3", 1000.0),
        ("3.", 3.0),
        ("2024-12-25", "2024-12-25"),
        ("2024-02-30", "2024-02-30"),
        ("6h", "6h"),
        ("~", None),
        ("null", None),
        ("", None),
    ],
)
def test_yaml_1_2_core_scalars(scalar: str, value: object) -> None:
    tree, problems = load(f"k: {scalar}\n", "f")
    assert problems == []
    assert tree["k"] == value
    assert type(tree["k"]) is type(value)


def test_on_is_a_string_key() -> None:
    tree, _ = load("on: sms.received\nyes: 1\noff: 2\n", "f")
    assert list(tree) == ["on", "yes", "off"]


def test_explicit_tags_still_work() -> None:
    tree, problems = load("a: !!str 007\nb: !!int '12'\nc: !!timestamp 2024-12-25\n", "f")
    assert problems == []
    assert tree == {"a": "007", "b": 12, "c": date(2024, 12, 25)}


def test_unreadable_explicit_values_are_problems() -> None:
    tree, problems = load("a: !!int abc\nb: !!timestamp 2024-02-30\nc: ok\n", "f")
    assert tree == {"a": None, "b": None, "c": "ok"}
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (1, "cannot read value 'abc'"),
        (2, "cannot read value '2024-02-30'"),
    ]


def test_duplicate_keys_keep_the_first_value() -> None:
    tree, problems = load("a: 1\nb: 2\na: 3\n", "f")
    assert tree == {"a": 1, "b": 2}
    assert problems == [Problem("f", 3, "duplicate key 'a' (first on line 1)")]


def test_non_string_keys_are_problems() -> None:
    tree, problems = load("1: a\n~: b\ntrue: c\nk: d\n", "f")
    assert tree == {"k": "d"}
    assert [p.message for p in problems] == [
        "key 1 must be a string",
        "key None must be a string",
        "key True must be a string",
    ]


def test_merge_keys_are_overridden_by_own_keys() -> None:
    text = "base: &b\n  x: 1\n  y: 2\nuse:\n  <<: *b\n  y: 3\n  z: 4\n"
    tree, problems = load(text, "f")
    assert problems == []
    assert tree["use"] == {"x": 1, "y": 3, "z": 4}
    assert tree["use"].key_lines == {"x": 2, "y": 6, "z": 7}


def test_own_duplicates_are_still_reported_with_merges() -> None:
    tree, problems = load("base: &b {x: 1}\nuse:\n  <<: *b\n  y: 2\n  y: 3\n", "f")
    assert tree["use"] == {"x": 1, "y": 2}
    assert problems == [Problem("f", 5, "duplicate key 'y' (first on line 4)")]


def test_aliased_mapping_with_a_merge_converts_the_same_twice() -> None:
    text = "base: &b {on: x, p: 5}\none: &one\n  <<: *b\n  p: 1\ntwo: *one\n"
    tree, problems = load(text, "f")
    assert problems == []
    assert tree["one"] == tree["two"] == {"on": "x", "p": 1}
    assert tree["one"] is not tree["two"]  # aliases are copies


@pytest.mark.parametrize("text", ["a: &a [1, *a]\n", "a: &a {b: *a}\n"])
def test_recursive_alias_is_a_problem_not_a_crash(text: str) -> None:
    _, problems = load(text, "f")
    assert problems == [Problem("f", 1, "an alias refers to the value that contains it")]


def test_alias_bomb_is_refused() -> None:
    levels = ["a: &a [x, x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        prev, name = chr(96 + i), chr(97 + i)
        levels.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    tree, problems = load("\n".join(levels) + "\n", "f")
    assert tree is None
    assert [p.message for p in problems] == [f"more than {MAX_NODES} values (aliases expanded)"]


@pytest.mark.parametrize("depth", [MAX_DEPTH + 5, 5000])
def test_deep_nesting_is_refused(depth: int) -> None:
    tree, problems = load("[" * depth + "]" * depth, "f")
    assert tree is None
    assert [p.message for p in problems] == [f"nested more than {MAX_DEPTH} levels deep"]


def test_reasonable_nesting_is_fine() -> None:
    tree, problems = load("[" * 50 + "]" * 50, "f")
    assert problems == []
    assert isinstance(tree, list)


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ('a: "x\n', 2, "while scanning a quoted scalar on line 1, found unexpected end"),
        ("a: [1,\n", 2, "expected the node content, but found '<stream end>'"),
        ("a: 1\nb:\n- x\n  c: 2\n", 4, "mapping values are not allowed here"),
        ("a: 1\n---\nb: 2\n", 2, "but found another document"),
        ("a: *nope\n", 1, "found undefined alias 'nope'"),
        ("a: !!python/object:os.system x\n", 1, "could not determine a constructor"),
        ("\tx: 1\n", 1, "found character '\\t' that cannot start any token"),
    ],
)
def test_syntax_errors(text: str, line: int, message: str) -> None:
    tree, problems = load(text, "f")
    assert tree is None
    [problem] = problems
    assert problem.line == line
    assert problem.message.startswith("YAML syntax error: ")
    assert message in problem.message


def test_empty_documents() -> None:
    assert load("", "f") == (None, [])
    assert load("# only a comment\n", "f") == (None, [])
    assert load("---\n", "f") == (None, [])


def _located(value: object) -> object:
    """A loaded value with its line marks spelled out, to compare two loads."""
    if isinstance(value, LMap):
        return ("map", value.line, value.key_lines, {k: _located(v) for k, v in value.items()})
    if isinstance(value, LSeq):
        return ("seq", value.line, value.item_lines, [_located(v) for v in value])
    return value


def _pure(text: str) -> tuple[object, list[str]]:
    value, problems = yamlnodes._load(yamlnodes.RulesLoader(text), "f.yaml")
    return _located(value), [str(p) for p in problems]


YAML_FILES = sorted(
    p
    for root in (REPO / "tests" / "data", REPO / "examples", REPO / "rules")
    for p in root.rglob("*.y*ml")
)


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: str(p.relative_to(REPO)))
def test_libyaml_reads_every_file_as_the_pure_python_parser_does(path: Path) -> None:
    text = path.read_text(errors="replace")
    value, problems = load(text, "f.yaml")
    assert (_located(value), [str(p) for p in problems]) == _pure(text)


PIECES = ["a: 1\n", "- x\n", "  b: [1, 2]\n", "c: {d: e}\n", "'q'", '"\\u00e9 \\x41"', ": ", "\t"]
PIECES += ["&a ", "*a", "<<: *a\n", "!!int x", "# c\n", "---\n", "...\n", "? k\n", "|\n  t\n"]
PIECES += [">-\n  f\n", "k: 'it''s'\n", "%YAML 1.1\n", "- - y\n", "  ", "\n", "on: [x,\n", "]"]
PIECES += ["e: 007\n", "f: 1:30\n", "g: 2024-02-30\n", "h: .inf\n", "i: ~\n", "j: yes\n", "\ufeff"]
PIECES += ["[a, b", "{a: [", "- ? x\n", "!x y", "a:b\n", "'open", '"\\q"', "x: |+\n\n", "@"]
PIECES += ["- >\n a\n b\n", "`", "%", "k: v #c\n", "a: b: c\n", " - x\n", "- a\n - b\n", "\r\n"]
PIECES += ['k: "a\\\n  b"\n', "- {x: 1, x: 2}\n", "l: &m {n: 1}\n", "o: *m\n", ",", "{", "\x85"]


@settings(max_examples=500, deadline=None)
@given(st.lists(st.sampled_from(PIECES), max_size=10).map("".join))
def test_libyaml_and_the_pure_python_parser_agree(text: str) -> None:
    value, problems = load(text, "f.yaml")
    assert (_located(value), [str(p) for p in problems]) == _pure(text)
