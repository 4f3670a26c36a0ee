"""load_rules: ordering, kind globs, the by_kind index and the compiled rule model."""

from __future__ import annotations

import gc
import textwrap
from pathlib import Path
from typing import Any

import pytest

from responder.actions.model import Hangup, Http, Reply, Sms
from responder.errors import Problem, RulesError
from responder.events import KINDS
from responder.matching.conditions import AllOf
from responder.rules import loader
from responder.rules.loader import MAX_FILE_BYTES, load_rules, rule_files
from responder.rules.model import Limit, Rule, RuleSet
from responder.templating.templates import Template

DATA = Path(__file__).resolve().parent.parent / "data" / "rules"
VALID = DATA / "valid"

SMS_KINDS = {"sms.received", "sms.sent", "sms.delivered", "sms.failed"}


def write(directory: Path, name: str, text: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def rule_yaml(name: str, *, on: str = "sms.received", extra: str = "") -> str:
    body = f"  - name: {name}\n    on: {on}\n"
    body += "".join(f"    {line}\n" for line in textwrap.dedent(extra).splitlines() if line)
    if "reply:" not in extra and "sms:" not in extra and "hangup:" not in extra:
        body += "    reply: {text: ok}\n"
    return body


def rules_file(directory: Path, name: str, *rules: str) -> Path:
    path = directory / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("rules:\n" + "".join(rules))
    return path


def load_one(tmp_path: Path, text: str) -> Rule:
    write(tmp_path, "rules.yaml", text)
    [rule] = load_rules([tmp_path]).rules
    return rule


def names(rules: tuple[Rule, ...]) -> list[str]:
    return [rule.name for rule in rules]


def problems_of(paths: list[Path]) -> list[Problem]:
    with pytest.raises(RulesError) as exc:
        load_rules(paths)
    return exc.value.problems


# --------------------------------------------------------------------------- ordering


def test_higher_priority_first_ties_in_file_order(tmp_path: Path) -> None:
    rules_file(
        tmp_path,
        "rules.yaml",
        rule_yaml("low", extra="priority: -10"),
        rule_yaml("plain-1"),
        rule_yaml("high", extra="priority: 50"),
        rule_yaml("plain-2"),
        rule_yaml("medium", extra="priority: 5"),
        rule_yaml("plain-3", extra="priority: 0"),
    )
    ruleset = load_rules([tmp_path])
    assert names(ruleset.rules) == ["high", "medium", "plain-1", "plain-2", "plain-3", "low"]
    assert [r.priority for r in ruleset.rules] == [50, 5, 0, 0, 0, -10]


def test_files_are_read_in_sorted_path_order(tmp_path: Path) -> None:
    # Created out of order; subdirectories sort by path component like everything else.
    rules_file(tmp_path, "b.yaml", rule_yaml("b1"), rule_yaml("b2"))
    rules_file(tmp_path, "sub/a.yml", rule_yaml("sub-a"))
    rules_file(tmp_path, "a.yaml", rule_yaml("a1"), rule_yaml("a-top", extra="priority: 1"))
    rules_file(tmp_path, "z.yaml", rule_yaml("z1"))
    ruleset = load_rules([tmp_path])
    assert names(ruleset.rules) == ["a-top", "a1", "b1", "b2", "sub-a", "z1"]
    assert ruleset.files == tuple(
        str(tmp_path / n) for n in ("a.yaml", "b.yaml", "sub/a.yml", "z.yaml")
    )
    # order is the position in the files' reading order, before sorting by priority
    assert {r.name: r.order for r in ruleset.rules} == {
        "a1": 0,
        "a-top": 1,
        "b1": 2,
        "b2": 3,
        "sub-a": 4,
        "z1": 5,
    }


def test_non_rule_files_are_ignored(tmp_path: Path) -> None:
    rules_file(tmp_path, "rules.yaml", rule_yaml("one"))
    (tmp_path / "README.md").write_text("rules: [not, yaml, rules]\n")
    (tmp_path / "old.yaml.bak").write_text("garbage: [\n")
    files, problems = rule_files([tmp_path])
    assert files == [tmp_path / "rules.yaml"]
    assert problems == []


def test_rule_records_file_line_and_description(tmp_path: Path) -> None:
    rule = load_one(
        tmp_path,
        """\
        # leading comment
        rules:

          - name: documented
            description: What this is for.
            on: sms.received
            reply: {text: hi}
        """,
    )
    assert rule.file == str(tmp_path / "rules.yaml")
    assert rule.line == 4
    assert rule.description == "What this is for."


# --------------------------------------------------------------------------- kinds


@pytest.mark.parametrize(
    ("on", "kinds"),
    [
        ("sms.received", {"sms.received"}),
        ("sms.*", SMS_KINDS),
        ("'*'", set(KINDS)),
        ("[sms.received, call.*]", {"sms.received"} | {k for k in KINDS if k[:5] == "call."}),
        ("ivr.?nswer", {"ivr.answer"}),
        ("'*.failed'", {"sms.failed"}),
        ("unknown", {"unknown"}),
    ],
)
def test_kind_globs(tmp_path: Path, on: str, kinds: set[str]) -> None:
    rule = load_one(tmp_path, "rules:\n" + rule_yaml("r", on=on))
    assert rule.kinds == frozenset(kinds)


@pytest.mark.parametrize("on", ["sms.recieved", "SMS.received", "sms", "'sms.*.x'", "''"])
def test_bad_kinds(tmp_path: Path, on: str) -> None:
    path = rules_file(tmp_path, "rules.yaml", rule_yaml("r", on=on))
    [problem] = problems_of([path])
    assert problem.line == 3
    assert "event kind" in problem.message


def test_by_kind_index(tmp_path: Path) -> None:
    rules_file(
        tmp_path,
        "rules.yaml",
        rule_yaml("received", on="sms.received"),
        rule_yaml("any-sms", on="sms.*", extra="priority: 10"),
        rule_yaml("everything", on="'*'", extra="priority: -1"),
        rule_yaml("ivr", on="ivr.answer", extra="hangup: {}"),
    )
    ruleset = load_rules([tmp_path])
    assert set(ruleset.by_kind) == set(KINDS)
    assert names(ruleset.candidates("sms.received")) == ["any-sms", "received", "everything"]
    assert names(ruleset.candidates("sms.failed")) == ["any-sms", "everything"]
    assert names(ruleset.candidates("ivr.answer")) == ["ivr", "everything"]
    assert names(ruleset.candidates("flow.step")) == ["everything"]
    assert ruleset.candidates("no.such.kind") == ()
    # every index entry keeps the global evaluation order
    for kind, rules in ruleset.by_kind.items():
        assert list(rules) == [r for r in ruleset.rules if kind in r.kinds]


def test_index_has_no_entry_for_kinds_without_rules(tmp_path: Path) -> None:
    rules_file(tmp_path, "rules.yaml", rule_yaml("only", on="call.missed"))
    ruleset = load_rules([tmp_path])
    assert set(ruleset.by_kind) == {"call.missed"}
    assert ruleset.candidates("sms.received") == ()


def test_ruleset_build_directly() -> None:
    def rule(name: str, priority: int, order: int) -> Rule:
        return Rule(name, "f", 1, order, frozenset({"sms.received"}), AllOf(()), priority)

    ruleset = RuleSet.build([rule("a", 0, 0), rule("b", 1, 1), rule("c", 0, 2)], ["f"])
    assert names(ruleset.rules) == ["b", "a", "c"]
    assert ruleset.files == ("f",)


# --------------------------------------------------------------------------- fields


def test_continue_flag(tmp_path: Path) -> None:
    rules_file(
        tmp_path,
        "rules.yaml",
        rule_yaml("goes-on", extra="continue: true"),
        rule_yaml("stops", extra="continue: false"),
        rule_yaml("default"),
    )
    cont = {r.name: r.cont for r in load_rules([tmp_path]).rules}
    assert cont == {"goes-on": True, "stops": False, "default": False}


@pytest.mark.parametrize("value", ["yes", "on", "1", "'true'"])
def test_continue_must_be_a_real_boolean(tmp_path: Path, value: str) -> None:
    path = rules_file(tmp_path, "rules.yaml", rule_yaml("r", extra=f"continue: {value}"))
    [problem] = problems_of([path])
    got = "a number" if value == "1" else "a string"
    assert (problem.line, problem.message) == (
        4,
        f"rules[0].continue: expected true or false, got {got}",
    )


def test_on_stays_a_key(tmp_path: Path) -> None:
    # With YAML 1.1 booleans `on:` would be the key True; here it is the string "on".
    rule = load_one(tmp_path, "rules:\n" + rule_yaml("r", on="call.missed"))
    assert rule.kinds == {"call.missed"}


@pytest.mark.parametrize(
    ("every", "seconds"),
    [
        ("6h", 21600.0),
        ("90s", 90.0),
        ("15m", 900.0),
        ("1d", 86400.0),
        ("1h30m", 5400.0),
        ("1d 2h", 93600.0),
        ("45", 45.0),
        ("2.5", 2.5),
    ],
)
def test_limit_durations(tmp_path: Path, every: str, seconds: float) -> None:
    rule = load_one(
        tmp_path, "rules:\n" + rule_yaml("r", extra=f"limit: {{per_contact: 2, every: {every}}}")
    )
    assert rule.limit == Limit(count=2, every=seconds)


@pytest.mark.parametrize(
    ("limit", "fragment"),
    [
        ("{per_contact: 1, every: 6 hours}", "'6 hours' is not a duration"),
        ("{per_contact: 1, every: 1:30}", "'1:30' is not a duration"),
        ("{per_contact: 1, every: 0}", "duration must be between 1s and"),
        ("{per_contact: 1, every: 400d}", "duration must be between 1s and"),
        ("{per_contact: 1, every: -5}", "duration must be between 1s and"),
        ("{per_contact: 0, every: 6h}", "per_contact: must be at least 1"),
        ("{per_contact: 1}", "missing required key 'every'"),
        ("{every: 6h}", "missing required key 'per_contact'"),
        ("{per_contact: 1, every: 6h, per_channel: 2}", "unknown key 'per_channel'"),
    ],
)
def test_bad_limits(tmp_path: Path, limit: str, fragment: str) -> None:
    path = rules_file(tmp_path, "rules.yaml", rule_yaml("r", extra=f"limit: {limit}"))
    [problem] = problems_of([path])
    assert problem.line == 4
    assert fragment in problem.message


def test_no_limit_no_when(tmp_path: Path) -> None:
    rule = load_one(tmp_path, "rules:\n" + rule_yaml("r"))
    assert rule.limit is None
    assert rule.when == AllOf(())
    assert rule.priority == 0


def test_reply_text_is_a_compiled_template(tmp_path: Path) -> None:
    rule = load_one(
        tmp_path, "rules:\n" + rule_yaml("r", extra="reply: {text: 'Hi {{ contact }}'}")
    )
    assert isinstance(rule.reply, Reply)
    assert isinstance(rule.reply.text, Template)
    assert rule.reply.json is None
    assert rule.reply.text.render({"contact": "+6591234567"}) == "Hi +6591234567"


def test_reply_number_text_becomes_a_template(tmp_path: Path) -> None:
    rule = load_one(tmp_path, "rules:\n" + rule_yaml("r", extra="reply: {text: 42}"))
    assert rule.reply is not None
    assert rule.reply.text is not None
    assert rule.reply.text.render({}) == "42"


def render_tree(value: object, context: dict[str, object]) -> object:
    if isinstance(value, Template):
        return value.render(context)
    if isinstance(value, dict):
        return {k: render_tree(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [render_tree(v, context) for v in value]
    return value


def test_json_tree_reply(tmp_path: Path) -> None:
    rule = load_one(
        tmp_path,
        """\
        rules:
          - name: flow-vars
            on: flow.step
            reply:
              json:
                greeting: "Hello {{ contact_name }}"
                nested:
                  items: ["{{ text | upper }}", 2, 2.5, true, null]
                  deeper: {kind: "{{ kind }}"}
                count: 3
                flag: false
                empty: null
        """,
    )
    assert rule.reply is not None
    assert rule.reply.text is None
    tree = rule.reply.json
    assert isinstance(tree["greeting"], Template)
    assert isinstance(tree["nested"]["items"][0], Template)
    assert tree["count"] == 3
    assert tree["flag"] is False
    assert tree["empty"] is None
    context = {"contact_name": "Ann", "text": "yes", "kind": "flow.step"}
    assert render_tree(tree, context) == {
        "greeting": "Hello Ann",
        "nested": {"items": ["YES", 2, 2.5, True, None], "deeper": {"kind": "flow.step"}},
        "count": 3,
        "flag": False,
        "empty": None,
    }


@pytest.mark.parametrize(
    ("json", "fragment"),
    [
        ("'{{ text }}'", "reply.json: must be a mapping of flow variables"),
        ("[a, b]", "reply.json: must be a mapping of flow variables"),
        ("{a: '{{ nope }}'}", "rules[0].reply.json.a: unknown variable 'nope'"),
        ("{a: [1, '{% if %}']}", "rules[0].reply.json.a[1]: template syntax error"),
    ],
)
def test_bad_json_replies(tmp_path: Path, json: str, fragment: str) -> None:
    path = rules_file(
        tmp_path, "rules.yaml", rule_yaml("r", on="flow.step", extra=f"reply: {{json: {json}}}")
    )
    [problem] = problems_of([path])
    assert fragment in problem.message


def test_reply_json_needs_a_flow_step_only_rule(tmp_path: Path) -> None:
    path = rules_file(
        tmp_path,
        "rules.yaml",
        rule_yaml("r", on="[flow.step, sms.received]", extra="reply: {json: {a: 1}}"),
    )
    [problem] = problems_of([path])
    assert problem.line == 4  # the reply: key
    assert problem.message == (
        "rules[0].reply.json: flow variables need a rule that is only 'on: flow.step'"
    )


def test_sms_as_object_or_list(tmp_path: Path) -> None:
    rules_file(
        tmp_path,
        "rules.yaml",
        rule_yaml("one", extra="sms: {text: 'Hi {{ contact }}'}"),
        rule_yaml(
            "two",
            extra="""\
            sms:
              - text: first
              - text: second
                to: "+6560000000"
                via: hoiio
            """,
        ),
    )
    rules = {r.name: r for r in load_rules([tmp_path]).rules}
    [one] = rules["one"].sms
    assert isinstance(one, Sms)
    assert one.text.render({"contact": "+65"}) == "Hi +65"
    assert (one.to, one.via) == (None, None)
    first, second = rules["two"].sms
    assert first.text.render({}) == "first"
    assert second.to is not None
    assert second.to.render({}) == "+6560000000"
    assert second.via == "hoiio"
    assert rules["one"].reply is None


@pytest.mark.parametrize(
    ("sms", "fragment"),
    [
        ("{to: '+65'}", "rules[0].sms[0]: missing required key 'text'"),
        ("[]", "has no action"),
        ("{text: hi, via: twilio}", "rules[0].sms[0].via: 'twilio' is not one of textit, hoiio"),
        ("{text: hi, too: x}", "unknown key 'too' (did you mean 'to'?)"),
        ("{text: " + "x" * 641 + "}", "text is 641 characters; the limit is 640"),
    ],
)
def test_bad_sms(tmp_path: Path, sms: str, fragment: str) -> None:
    path = rules_file(tmp_path, "rules.yaml", rule_yaml("r", extra=f"sms: {sms}"))
    [problem] = problems_of([path])
    assert fragment in problem.message


def test_http_defaults_and_values(tmp_path: Path) -> None:
    rules_file(
        tmp_path,
        "rules.yaml",
        rule_yaml("plain", extra="http: {url: 'https://example.com/{{ contact }}'}"),
        rule_yaml(
            "full",
            extra="""\
            http:
              - url: https://example.com/a
                method: PUT
                json: {who: "{{ contact }}", n: 1}
                headers: {X-Token: "t-{{ rule }}"}
                timeout: 2.5
            """,
        ),
    )
    rules = {r.name: r for r in load_rules([tmp_path]).rules}
    [plain] = rules["plain"].http
    assert isinstance(plain, Http)
    assert (plain.method, plain.json, dict(plain.headers)) == ("POST", None, {})
    assert plain.timeout == 10.0
    # A value in a URL is percent-encoded: it cannot add a query, path or fragment of its own.
    assert plain.url.render({"contact": "+65"}) == "https://example.com/%2B65"
    assert plain.url.render({"contact": "1?a=b#c"}) == "https://example.com/1%3Fa%3Db%23c"
    [full] = rules["full"].http
    assert (full.method, full.timeout) == ("PUT", 2.5)
    assert render_tree(full.json, {"contact": "c"}) == {"who": "c", "n": 1}
    assert full.headers["X-Token"].render({"rule": "r\r\nX: y"}) == "t-r\\r\\nX: y"
    assert full.headers["X-Token"].render({"rule": "full"}) == "t-full"


def test_fractional_duration_string_is_rejected(tmp_path: Path) -> None:
    path = rules_file(
        tmp_path, "rules.yaml", rule_yaml("r", extra="http: {url: 'https://x', timeout: 2.5s}")
    )
    [problem] = problems_of([path])
    assert "rules[0].http[0].timeout: '2.5s' is not a duration" in problem.message


def test_hangup(tmp_path: Path) -> None:
    rules_file(
        tmp_path,
        "rules.yaml",
        rule_yaml("bare", on="ivr.answer", extra="hangup: {}"),
        rule_yaml("says", on="ivr.*", extra="hangup: {say: 'Bye {{ contact }}'}"),
    )
    rules = {r.name: r for r in load_rules([tmp_path]).rules}
    assert rules["bare"].hangup == Hangup(None)
    say = rules["says"].hangup
    assert say is not None
    assert say.say is not None
    assert say.say.render({"contact": "x"}) == "Bye x"


def test_hangup_needs_ivr_only_rule(tmp_path: Path) -> None:
    path = rules_file(tmp_path, "rules.yaml", rule_yaml("r", on="'*'", extra="hangup: {}"))
    [problem] = problems_of([path])
    assert (problem.line, problem.message) == (
        4,
        "rules[0].hangup: hangup needs a rule that is only on ivr.* kinds",
    )


def test_reply_json_and_hangup_problems_are_both_reported(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "rules.yaml",
        """\
        rules:
          - name: two-problems
            on: sms.received
            reply:
              json: {a: 1}
            hangup: {}
        """,
    )
    problems = problems_of([path])
    assert [(p.line, p.message.split(":")[0]) for p in problems] == [
        (4, "rules[0].reply.json"),
        (6, "rules[0].hangup"),
    ]


def test_rule_needs_an_action(tmp_path: Path) -> None:
    path = write(tmp_path, "rules.yaml", "rules:\n  - name: idle\n    on: sms.received\n")
    [problem] = problems_of([path])
    assert problem == Problem(
        str(path), 2, "rules[0]: rule 'idle' has no action (reply, hangup, sms, http, start)"
    )


def test_yaml_merge_keys_override_instead_of_duplicating(tmp_path: Path) -> None:
    rules_file(
        tmp_path,
        "rules.yaml",
        rule_yaml("first", extra="when: &office {channel: [main], provider: [textit]}"),
        rule_yaml("second", extra="when: {<<: *office, provider: [hoiio]}"),
    )
    rules = {r.name: r for r in load_rules([tmp_path]).rules}
    assert len(rules["second"].when.conditions) == 2  # channel from the anchor, own provider
    provider = rules["second"].when.conditions[1]
    assert provider.values == frozenset({"hoiio"})  # type: ignore[attr-defined]


def test_empty_rules_list_is_fine(tmp_path: Path) -> None:
    write(tmp_path, "rules.yaml", "rules: []\n")
    ruleset = load_rules([tmp_path])
    assert ruleset.rules == ()
    assert ruleset.by_kind == {}


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("# nothing here\n", 1, "empty rule file (expected a 'rules:' list)"),
        ("{}\n", 1, "expected a 'rules:' or 'dialogues:' list"),
        ("rules:\n", 1, "rules: expected a list, got null"),
        ("rules: {name: x}\n", 1, "rules: expected a list, got a mapping"),
        (
            "rules: []\n---\nrules: []\n",
            2,
            "YAML syntax error: expected a single document in the stream on line 1,"
            " but found another document",
        ),
        ("rules: []\nextra: 1\n", 2, "unknown key 'extra'"),
    ],
)
def test_file_level_problems(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = write(tmp_path, "rules.yaml", text)
    [problem] = problems_of([path])
    assert problem.line == line
    assert message in problem.message


def test_too_large_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(b"#" * (MAX_FILE_BYTES + 1))
    [problem] = problems_of([path])
    assert problem == Problem(str(path), 0, f"file is larger than {MAX_FILE_BYTES} bytes")


def test_a_broken_rule_does_not_hide_duplicate_names(tmp_path: Path) -> None:
    path = rules_file(
        tmp_path,
        "rules.yaml",
        rule_yaml("twice"),
        rule_yaml("broken", extra="priority: high"),
        rule_yaml("twice"),
    )
    problems = problems_of([path])
    assert [(p.line, p.message) for p in problems] == [
        (7, "rules[1].priority: expected an integer, got a string"),
        (9, f"duplicate rule name 'twice' (first at {path}:2)"),
    ]


def test_rules_error_lists_problems_sorted(tmp_path: Path) -> None:
    rules_file(tmp_path, "b.yaml", rule_yaml("b", extra="priority: x"))
    rules_file(tmp_path, "a.yaml", rule_yaml("a", extra="continue: x"))
    problems = problems_of([tmp_path])
    assert problems == sorted(problems)
    assert [Path(p.file).name for p in problems] == ["a.yaml", "b.yaml"]
    with pytest.raises(RulesError) as exc:
        load_rules([tmp_path])
    assert str(exc.value).splitlines() == [str(p) for p in problems]


def test_valid_data_directory(tmp_path: Path) -> None:
    ruleset = load_rules([VALID])
    assert names(ruleset.rules) == [
        "stop",
        "order-status",
        "office-hours",
        "press-007",
        "survey-water",
        "any-ivr",
    ]
    rules = {r.name: r for r in ruleset.rules}
    assert rules["order-status"].kinds == SMS_KINDS
    assert rules["order-status"].limit == Limit(3, 5400.0)
    assert rules["order-status"].cont is True
    assert rules["office-hours"].kinds == {"sms.received", "call.missed"}
    assert len(rules["office-hours"].sms) == 2
    assert rules["survey-water"].kinds == {"flow.step"}
    assert [Path(f).name for f in ruleset.files] == ["10_sms.yaml", "20_ivr.yml", "30_survey.yaml"]


def test_directories_skip_transcript_tests(tmp_path: Path) -> None:
    rules_file(tmp_path, "rules.yaml", rule_yaml("one"))
    write(tmp_path, "rules.test.yaml", "tests: [not, rules]\n")
    write(tmp_path, "more/other.test.yml", "tests: []\n")
    files, problems = rule_files([tmp_path])
    assert files == [tmp_path / "rules.yaml"]
    assert problems == []
    assert [r.name for r in load_rules([tmp_path]).rules] == ["one"]


def test_the_collector_is_paused_while_loading_and_restored_after(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "r.yaml").write_text(
        "rules:\n  - name: a\n    on: sms.received\n    reply: {text: hi}\n"
    )
    seen: list[bool] = []
    real = loader._load_rules

    def spy(*args: Any) -> Any:
        seen.append(gc.isenabled())
        return real(*args)

    monkeypatch.setattr(loader, "_load_rules", spy)
    assert gc.isenabled()
    load_rules([tmp_path])
    assert gc.isenabled()
    gc.disable()  # a caller that keeps it off finds it off afterwards
    try:
        load_rules([tmp_path])
        assert not gc.isenabled()
    finally:
        gc.enable()
    (tmp_path / "bad.yaml").write_text("rules: [")
    with pytest.raises(RulesError):
        load_rules([tmp_path])
    assert gc.isenabled()  # also after a refused load
    assert seen == [False, False, False]
