"""The ``calendars:`` block and the ``open:`` / ``closed:`` conditions: what they compile to,
and every problem reported at check time with its file and line."""

from __future__ import annotations

import textwrap
from datetime import date, datetime, time
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from responder.errors import RulesError
from responder.matching.calendars import END_OF_DAY, Calendar
from responder.matching.conditions import CalendarCondition
from responder.rules.file import FILE
from responder.rules.language import WHEN
from responder.rules.loader import load_rules
from responder.rules.model import RuleSet

SGT = ZoneInfo("Asia/Singapore")

OFFICE = """\
calendars:
  office:
    description: Head office
    timezone: Asia/Singapore
    hours:
      mon-fri: 09:00-12:00, 13:00-18:00
      sat: [10:00-14:00]
      sun: closed
    holidays:
      - 2026-12-25
      - {date: 2027-01-01, name: New Year's Day}
    special:
      2026-12-24: 09:00-12:00
      2026-12-31: closed
"""

RULE = """\
rules:
  - name: closed
    on: sms.received
    when: {closed: office}
    reply: {text: "closed"}
"""


def write(directory: Path, name: str, text: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text(textwrap.dedent(text))
    return path


def load(tmp_path: Path, text: str) -> RuleSet:
    write(tmp_path, "rules.yaml", text)
    return load_rules([tmp_path])


def problems(tmp_path: Path, text: str) -> list[str]:
    write(tmp_path, "rules.yaml", text)
    with pytest.raises(RulesError) as exc:
        load_rules([tmp_path])
    return [f"{p.line}: {p.message}" for p in exc.value.problems]


def test_a_calendar_compiles(tmp_path: Path) -> None:
    rules = load(tmp_path, OFFICE + RULE)
    office = rules.calendars["office"]
    weekday = ((time(9), time(12)), (time(13), time(18)))
    assert office == Calendar(
        "office",
        SGT,
        (weekday,) * 5 + (((time(10), time(14)),), ()),
        {date(2026, 12, 25): "", date(2027, 1, 1): "New Year's Day"},
        {date(2026, 12, 24): ((time(9), time(12)),), date(2026, 12, 31): ()},
        office.file,
        3,
    )
    assert office.file.endswith("rules.yaml")
    assert rules.rules[0].when.conditions == (CalendarCondition("office", False),)


def test_hours_shapes(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        """\
        calendars:
          shop:
            timezone: Europe/London
            hours:
              mon, wed: "08:30-12:00,12:00-17:30"   # touching ranges are one period
              tue: ["13:00-17:00", "08:00-10:00"]   # any order
              fri-sun: 20:00-24:00
              thu: CLOSED
        """,
    )
    shop = rules.calendars["shop"]
    assert shop.week == (
        ((time(8, 30), time(17, 30)),),
        ((time(8), time(10)), (time(13), time(17))),
        ((time(8, 30), time(17, 30)),),
        (),
        ((time(20), END_OF_DAY),),
        ((time(20), END_OF_DAY),),
        ((time(20), END_OF_DAY),),
    )


def test_days_not_listed_are_closed(tmp_path: Path) -> None:
    rules = load(tmp_path, "calendars:\n  c: {timezone: UTC, hours: {wed: 10:00-11:00}}\n")
    assert [bool(day) for day in rules.calendars["c"].week] == [False, False, True] + [False] * 4


def test_a_calendar_may_live_in_another_file(tmp_path: Path) -> None:
    write(tmp_path, "a-rules.yaml", RULE)
    write(tmp_path, "z-calendars.yaml", OFFICE)
    rules = load_rules([tmp_path])
    assert set(rules.calendars) == {"office"}


def test_conditions_in_not_any_and_dialogues(tmp_path: Path) -> None:
    rules = load(
        tmp_path,
        OFFICE
        + textwrap.dedent(
            """\
        rules:
          - name: r
            on: sms.received
            when: {any: [{open: office}, {not: {closed: office}}]}
            reply: {text: "{{ calendars.office.open }} {{ calendars.office.next_open }}"}
        dialogues:
          - name: d
            mode: sms
            start: {on: sms.received, when: {open: office, text: {keyword: [menu]}}}
            states:
              a:
                say: "hi"
                on:
                  - {closed: office, goto: b}
                  - {otherwise: true, goto: a}
              b: {say: "bye", end: true}
        """
        ),
    )
    assert rules.dialogues["d"].states["a"].on[0].when.conditions == (
        CalendarCondition("office", False),
    )


@pytest.mark.parametrize(
    ("hours", "expected"),
    [
        ("mon: 9-17", "6: calendars.c.hours.mon: '9-17' is not hours like 09:00-18:00 or closed"),
        ("mon: 09:00-25:00", "6: calendars.c.hours.mon: '09:00-25:00' is not a time of day"),
        ("mon: 09:60-10:00", "6: calendars.c.hours.mon: '09:60-10:00' is not a time of day"),
        (
            "mon: 18:00-09:00",
            "6: calendars.c.hours.mon: '18:00-09:00' does not end after it starts (to open "
            "past midnight, end at 24:00 and open the next day at 00:00)",
        ),
        (
            "mon: 09:00-12:00, 11:00-13:00",
            "6: calendars.c.hours.mon: 09:00-12:00 and 11:00-13:00 overlap",
        ),
        (
            "mon: [09:00-10:00, 08:00-24:00]",
            "6: calendars.c.hours.mon: 08:00-24:00 and 09:00-10:00 overlap",
        ),
        ("mon: ''", "6: calendars.c.hours.mon: no hours given (write 'closed' for a closed day)"),
        (
            "mon: closed, 09:00-10:00",
            "6: calendars.c.hours.mon: 'closed' is not hours like 09:00-18:00 or closed",
        ),
        (
            "monday: 09:00-10:00",
            "6: calendars.c.hours.monday: 'monday' is not a day or range like mon-fri",
        ),
        (
            "mon-fri: 09:00-10:00\n      wed: 12:00-13:00",
            "7: calendars.c.hours.wed: wed already has hours (line 6)",
        ),
    ],
)
def test_bad_hours(tmp_path: Path, hours: str, expected: str) -> None:
    text = f"calendars:\n  c:\n    timezone: UTC\n    hours:\n      sun: closed\n      {hours}\n"
    found = problems(tmp_path, text)
    assert expected in found, found


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ("timezone: Asia/Singapur", "3: calendars.c.timezone: unknown timezone 'Asia/Singapur'"),
        ("timezone: ''", "3: calendars.c.timezone: unknown timezone ''"),
        (
            "holidays: [2026-02-30]",
            "5: calendars.c.holidays[0]: '2026-02-30' is not a date on the calendar",
        ),
        ("holidays: [26-12-25]", "5: calendars.c.holidays[0]: '26-12-25' is not a date YYYY-MM-DD"),
        ("holidays: [{name: Xmas}]", "5: calendars.c.holidays[0]: missing required key 'date'"),
        (
            "holidays: [2026-12-25, 2026-12-25]",
            "5: calendars.c.holidays: 2026-12-25 is listed twice",
        ),
        (
            "special: {2026-13-01: closed}",
            "5: calendars.c.special.2026-13-01: '2026-13-01' is not a date on the calendar",
        ),
        (
            "special: {2026-12-24: 12:00-09:00}",
            "5: calendars.c.special.2026-12-24: '12:00-09:00' does not end after it starts",
        ),
        ("opening: {}", "5: calendars.c: unknown key 'opening'"),
    ],
)
def test_bad_calendars(tmp_path: Path, body: str, expected: str) -> None:
    if body.startswith("timezone"):
        text = f"calendars:\n  c:\n    {body}\n    hours: {{mon: 09:00-10:00}}\n"
    else:
        text = f"calendars:\n  c:\n    timezone: UTC\n    hours: {{mon: 09:00-10:00}}\n    {body}\n"
    found = problems(tmp_path, text)
    assert any(p.startswith(expected) for p in found), found


def test_a_calendar_that_never_opens(tmp_path: Path) -> None:
    found = problems(
        tmp_path, "calendars:\n  c:\n    timezone: UTC\n    hours: {mon-sun: closed}\n"
    )
    assert found == ["3: calendars.c: calendar 'c' is never open"]
    # A special day is enough.
    load(
        tmp_path,
        "calendars:\n  c: {timezone: UTC, hours: {}, special: {2026-06-01: 10:00-12:00}}\n",
    )


def test_missing_keys_and_bad_names(tmp_path: Path) -> None:
    found = problems(tmp_path, "calendars:\n  c: {timezone: UTC}\n  'bad name': {}\n")
    assert "2: calendars.c: missing required key 'hours'" in found
    assert "3: calendars.bad name: 'bad name' is not a name of letters, digits, _ . -" in found


def test_unknown_calendars_are_reported_where_they_are_used(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        OFFICE
        + textwrap.dedent(
            """\
        rules:
          - name: r
            on: sms.received
            when: {open: offce}
            reply: {text: x}
          - name: s
            on: sms.received
            when: {not: {closed: shop}}
            reply: {text: x}
        dialogues:
          - name: d
            mode: sms
            start: {on: sms.received}
            states:
              a:
                say: hi
                on: [{open: warehouse, goto: a}]
                wait: {timeout: 1h, goto: a}
        """
        ),
    )
    assert found == [
        "18: rules[0].when.open: unknown calendar 'offce' (did you mean 'office'?)",
        "22: rules[1].when.not.closed: unknown calendar 'shop' (known: office)",
        "31: dialogues[0].states.a.on[0].open: unknown calendar 'warehouse' (known: office)",
    ]


def test_unknown_calendar_without_any_calendars(tmp_path: Path) -> None:
    found = problems(tmp_path, RULE)
    assert found == [
        "4: rules[0].when.closed: unknown calendar 'office' (no 'calendars:' block defines it)"
    ]


def test_a_calendar_name_twice_names_the_first(tmp_path: Path) -> None:
    write(tmp_path, "a.yaml", OFFICE)
    write(tmp_path, "b.yaml", "\n" + OFFICE)
    with pytest.raises(RulesError) as exc:
        load_rules([tmp_path])
    [problem] = exc.value.problems
    assert problem.file.endswith("b.yaml")
    assert problem.line == 4
    assert problem.message.startswith("duplicate calendar name 'office' (first at ")
    assert problem.message.endswith("a.yaml:3)")


def test_the_schema_includes_calendars_and_the_conditions() -> None:
    schema = FILE.schema()
    calendars = schema["properties"]["calendars"]
    assert calendars["type"] == "object"
    calendar = calendars["additionalProperties"]
    assert set(calendar["properties"]) == {
        "description",
        "timezone",
        "hours",
        "holidays",
        "special",
    }
    assert calendar["required"] == ["timezone", "hours"]
    assert calendar["properties"]["special"]["propertyNames"]["pattern"]
    when = schema["$defs"]["when"]["properties"]
    assert when["open"]["type"] == when["closed"]["type"] == "string"
    assert {"open", "closed"} <= set(WHEN.fields)


def test_the_docs_calendar_example_loads(tmp_path: Path) -> None:
    page = (Path(__file__).resolve().parents[2] / "docs" / "rules.md").read_text()
    section = page.split("## Calendars\n", 1)[1]
    example = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    rules = load(tmp_path, example)
    assert rules.calendars
    assert rules.rules


def test_fixed_times_are_what_they_say() -> None:
    assert datetime(2026, 12, 25, tzinfo=SGT).strftime("%A") == "Friday"


def test_calendars_read_by_templates_and_expressions_are_checked(tmp_path: Path) -> None:
    found = problems(
        tmp_path,
        OFFICE
        + textwrap.dedent(
            """\
        rules:
          - name: r
            on: sms.received
            when: {expr: "calendars['shop'].open"}
            reply: {text: "{{ calendars.office.open }} {{ calendars.ofice.next_open }}"}
          - name: s
            on: sms.received
            reply: {text: "{{ calendars | length }} {{ calendars.office['open'] }}"}
        dialogues:
          - name: d
            mode: sms
            start: {on: sms.received}
            states:
              a: {say: "{{ calendars.warehouse.open }}", end: true}
        """
        ),
    )
    assert found == [
        "18: rules[0].when.expr: unknown calendar 'shop' (known: office)",
        "19: rules[0].reply.text: unknown calendar 'ofice' (did you mean 'office'?)",
        "28: dialogues[0].states.a.say: unknown calendar 'warehouse' (known: office)",
    ]
