"""``responder outbox``: list outbound calls (dead letters above all) and send dead ones again."""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Final, TextIO

from responder.clients.sender import loggable_endpoint, redact
from responder.outbound import OutboxItem
from responder.printable import one_line
from responder.stores.base import Store

STATUSES: Final = ("pending", "sent", "dry_run", "dead")
# ``retry --all-dead`` requeues at most this many items per run (run it again for more).
MAX_REQUEUE: Final = 100_000
ERROR_WIDTH: Final = 80


def absent_store(url: str) -> str | None:
    """Why a store named for reading is not there (a typo must not create an empty one)."""
    if url.startswith("memory://"):
        return (
            "a memory:// store lives only inside the process that uses it; name the SQLite "
            "or Redis store responder serve uses with --store or RESPONDER_STORE"
        )
    if not url.startswith("sqlite:///"):
        return None
    path = Path(url[len("sqlite:///") :])
    if path.is_file():
        return None
    return (
        f"there is no SQLite store at {str(path)!r}; name the file responder serve uses "
        "with --store or RESPONDER_STORE (default sqlite:///responder.db, in the directory "
        "it was started in)"
    )


def tries(item: OutboxItem) -> int:
    """How many times the call was sent: ``attempts`` counts the failed tries that were
    followed by another one, so a finished item had one more."""
    return item.attempts if item.status == "pending" else item.attempts + 1


def as_record(item: OutboxItem) -> dict[str, object]:
    call = item.call
    return {
        "key": call.key,
        "status": item.status,
        "tries": tries(item),
        "provider": call.provider,
        "endpoint": loggable_endpoint(call),
        "contact": call.contact,
        "rule": call.rule,
        "created": _when(item.created),
        "last_error": item.last_error,
        "params": redact(call.params) if call.provider != "http" else None,
    }


def _when(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S")


def _cut(text: str | None, width: int) -> str:
    text = one_line(text or "")
    return text if len(text) <= width else text[: width - 1] + "…"


async def list_items(
    store: Store, status: str | None, limit: int, out: TextIO, *, as_json: bool = False
) -> int:
    """Print outbox items, newest first; returns the exit status (0)."""
    items = await store.outbox(status=status, limit=limit)
    if as_json:
        for item in items:
            out.write(json.dumps(as_record(item), ensure_ascii=False) + "\n")
        return 0
    if not items:
        out.write(f"no {status or 'outbox'} items\n")
        return 0
    rows = [
        (
            one_line(item.call.key),
            item.status,
            str(tries(item)),
            one_line(f"{item.call.provider} {loggable_endpoint(item.call)}"),
            one_line(item.call.contact or "-"),
            _when(item.created),
            _cut(item.last_error, ERROR_WIDTH),
        )
        for item in items
    ]
    head = ("KEY", "STATUS", "TRIES", "CALL", "CONTACT", "CREATED (UTC)", "LAST ERROR")
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head) - 1)]
    for row in [head, *rows]:
        cells = [cell.ljust(width) for cell, width in zip(row, widths, strict=False)]
        out.write("  ".join([*cells, row[-1]]).rstrip() + "\n")
    if len(items) == limit:
        out.write(f"(the newest {limit}; --limit shows more)\n")
    return 0


async def requeue(
    store: Store,
    keys: Sequence[str],
    out: TextIO,
    err: TextIO,
    *,
    all_dead: bool = False,
    clock: Callable[[], float] = time.time,
) -> int:
    """Make dead items pending again; returns 1 when a named key was not a dead item."""
    wanted = list(keys)
    if all_dead:
        wanted += [i.call.key for i in await store.outbox(status="dead", limit=MAX_REQUEUE)]
    done, status = 0, 0
    for key in dict.fromkeys(wanted):
        if await store.requeue_outbox(key, clock()):
            done += 1
        else:
            err.write(f"{one_line(key)}: no dead item with this key\n")
            status = 1
    out.write(
        f"requeued {done} dead item(s); a running responder sends them within a second\n"
        if done
        else "nothing to requeue\n"
    )
    return status
