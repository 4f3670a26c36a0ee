"""``responder explain``: why did this contact get this reply? Read back from the JSON logs.

Every webhook leaves one trace record (``"event": "webhook"``); every other line logged while
it was handled carries the same ``trace_id``. This command finds the traces of a contact (or
one trace by id) and tells each as a short story: what came in, what matched, what was
answered and sent, and what went wrong on the way.
"""

from __future__ import annotations

import json
import sys
from collections import OrderedDict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Final

from responder.printable import one_line
from responder.web.logs import mask_contact

DEFAULT_LAST: Final = 10
# Traces whose earlier records are held while reading (webhooks handled at the same time).
MAX_PENDING_TRACES: Final = 10_000


@dataclass
class Found:
    traces: list[dict[str, Any]] = field(default_factory=list)
    related: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    json_lines: int = 0
    other_lines: int = 0


def _lines(sources: Iterable[str]) -> Iterator[str]:
    for source in sources:
        if source == "-":
            yield from sys.stdin
        else:
            with Path(source).open(encoding="utf-8", errors="replace") as handle:
                yield from handle


def search(
    sources: Iterable[str], contact: str | None = None, trace_id: str | None = None
) -> Found:
    """The webhook traces of ``contact`` (full or masked in the log) or with ``trace_id``,
    and the other log records of those traces."""
    wanted = {contact, mask_contact(contact)} if contact else set()
    found = Found()
    # Records of a webhook are logged before its trace: hold those of recent traces.
    pending: OrderedDict[str, list[dict[str, Any]]] = OrderedDict()
    for line in _lines(sources):
        record = _record(line)
        if record is None:
            found.other_lines += bool(line.strip())
            continue
        found.json_lines += 1
        tid = str(record.get("trace_id") or "")
        if record.get("event") == "webhook":
            held = pending.pop(tid, [])
            if (trace_id and tid == trace_id) or (wanted and record.get("contact") in wanted):
                found.traces.append(record)
                found.related[tid] = held
        elif tid in found.related:
            found.related[tid].append(record)
        elif tid:
            pending.setdefault(tid, []).append(record)
            pending.move_to_end(tid)
            while len(pending) > MAX_PENDING_TRACES:
                pending.popitem(last=False)
    return found


def _record(line: str) -> dict[str, Any] | None:
    line = line.strip()
    if not line.startswith("{"):
        return None
    try:
        record = json.loads(line)
    except ValueError:
        return None
    return _printable(record) if isinstance(record, dict) else None


def _printable(value: Any) -> Any:
    """A record with every string in it on one line, control characters escaped: what a log
    holds came from webhooks, and explain prints it."""
    if isinstance(value, str):
        return one_line(value)
    if isinstance(value, dict):
        return {one_line(str(k)): _printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable(v) for v in value]
    return value


def tell(trace: dict[str, Any], related: list[dict[str, Any]], out: IO[str]) -> None:
    """One trace as a short story."""
    when = str(trace.get("time", "?")).replace("T", " ")
    out.write(f"{when}  trace {trace.get('trace_id', '-')}\n")
    what = f"{trace.get('channel')} {trace.get('kind')}"
    if trace.get("provider_event"):
        what += f" ({trace['provider_event']})"
    who = trace.get("contact") or trace.get("session") or "an unknown contact"
    said = ""
    if trace.get("text") is not None:
        said = f': "{trace["text"]}"'
    elif trace.get("digits"):
        said = f": pressed {trace['digits']}"
    out.write(f"  {what} from {who}{said}\n")
    if trace.get("duplicate"):
        out.write(
            "  a retried delivery: answered with the response stored for the first one; "
            "nothing ran again\n"
        )
    else:
        _decision(trace, out)
    for record in related:
        out.write(f"  log: {record.get('level', '')} {record.get('logger', '')}: ")
        out.write(f"{record.get('message', '')}\n")
    timings = trace.get("timings_ms") or {}
    if "total" in timings:
        out.write(f"  answered in {timings['total']} ms\n")


def _decision(trace: dict[str, Any], out: IO[str]) -> None:
    matched = [m for m in trace.get("matched") or [] if not str(m).startswith("dialogue:")]
    transition = trace.get("transition")
    for name in trace.get("limited") or []:
        out.write(f"  rule '{name}' matched but had reached its limit for this contact\n")
    for name in matched:
        if str(name).startswith("compliance:"):
            out.write(f"  answered by the {name.split(':', 1)[1].upper()} keyword\n")
        else:
            out.write(f"  rule '{name}' matched\n")
    if isinstance(transition, dict):
        source = transition.get("from")
        start = source == "(start)"
        out.write(
            f"  dialogue '{transition.get('dialogue')}': "
            + (f"started in state '{transition.get('to')}'" if start else "")
            + ("" if start else f"'{source}' -> '{transition.get('to')}'")
            + (f", ended ({transition['ended']})" if transition.get("ended") else "")
            + "\n"
        )
    if not matched and not transition and not trace.get("errors"):
        out.write(f"  no rule or dialogue took this {trace.get('kind')} event\n")
    for error in trace.get("errors") or []:
        out.write(f"  error: {error}\n")
    if trace.get("concurrent_duplicate"):
        out.write("  another copy of this webhook was answered first; its effects counted\n")
    effects = trace.get("effects") or {}
    reply = effects.get("reply")
    if reply:
        if "text" in reply:
            out.write(f'  replied: "{reply["text"]}"\n')
        if "json" in reply:
            out.write(f"  replied with flow variables: {', '.join(reply['json'])}\n")
    elif not trace.get("concurrent_duplicate"):
        out.write("  no reply in the webhook answer\n")
    for call in effects.get("calls") or []:
        params = json.dumps(call.get("params") or {}, ensure_ascii=False)
        rule = f" (rule {call['rule']})" if call.get("rule") else ""
        out.write(f"  queued: {call.get('provider')} {call.get('endpoint')} {params}{rule}\n")


def run(
    sources: list[str], contact: str | None, trace_id: str | None, last: int, out: IO[str]
) -> int:
    """The whole command: 0 when traces were found, 1 when none, 2 when the logs hold no
    JSON records at all (the server was not run with ``--log-format json``)."""
    try:
        found = search(sources, contact, trace_id)
    except OSError as exc:
        out.write(f"responder: cannot read {exc.filename}: {exc.strerror}\n")
        return 2
    if found.json_lines == 0:
        out.write(
            "responder: no JSON log records found; run the server with "
            "RESPONDER_LOG_FORMAT=json (or --log-format json)\n"
        )
        return 2
    if not found.traces:
        who = f"contact {contact}" if contact else f"trace {trace_id}"
        out.write(f"no webhook traces for {who}\n")
        return 1
    traces = found.traces[-last:] if last > 0 else found.traces
    if len(traces) < len(found.traces):
        out.write(f"(the last {len(traces)} of {len(found.traces)} traces; --last 0 for all)\n")
    for trace in traces:
        tell(trace, found.related.get(str(trace.get("trace_id")), []), out)
    return 0
