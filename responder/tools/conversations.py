"""``responder conversations``: a contact's conversations as the store holds them now."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Final, TextIO

from responder.conversations import Conversation
from responder.printable import one_line
from responder.stores.base import Store

VARS_WIDTH: Final = 120


async def show(
    store: Store, contact: str | None, limit: int, out: TextIO, *, as_json: bool = False
) -> int:
    """Print the conversations (the last updated first), ``contact``'s only when given;
    0 when there is at least one, 1 when there is none."""
    found = await store.find_conversations(contact, limit)
    for conversation in found:
        timer = await store.get_timer(conversation.key)
        record = as_record(conversation, timer.due if timer is not None else None)
        if as_json:
            out.write(json.dumps(record, ensure_ascii=False, sort_keys=True) + "\n")
        else:
            out.write(_lines(record))
    if not found and not as_json:
        who = f" for {one_line(contact)}" if contact else ""
        out.write(f"no conversations{who}\n")
    return 0 if found else 1


def as_record(conversation: Conversation, timer_due: float | None) -> dict[str, object]:
    return {
        "key": conversation.key,
        "dialogue": conversation.dialogue,
        "state": conversation.state,
        "status": conversation.status,
        "outcome": conversation.outcome,
        "contact": conversation.contact,
        "session": conversation.session,
        "channel": conversation.channel,
        "provider": conversation.provider,
        "step": conversation.seq,
        "vars": conversation.vars,
        "visits": conversation.visits,
        "started": _when(conversation.started),
        "last_step": _when(conversation.updated),
        "expires": _when(conversation.expires),
        "timer": _when(timer_due),
    }


def _lines(record: dict[str, object]) -> str:
    def text(value: object) -> str:
        return one_line(str(value))

    head = (
        f"{text(record['key'])}  {text(record['dialogue'])} at {text(record['state'])}"
        f"  {text(record['status'])}"
    )
    if record["outcome"]:
        head += f" ({text(record['outcome'])})"
    rows = [
        head,
        f"  step {record['step']}, last {record['last_step']}, started {record['started']}",
        "  timer " + (f"due {record['timer']}" if record["timer"] else "none"),
        "  vars "
        + one_line(json.dumps(record["vars"], ensure_ascii=False, sort_keys=True), VARS_WIDTH),
        "  visits " + one_line(json.dumps(record["visits"], sort_keys=True), VARS_WIDTH),
    ]
    return "\n".join(rows) + "\n"


def _when(ts: float | None) -> str | None:
    if not ts:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%SZ")
