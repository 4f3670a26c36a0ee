"""The outbox: pending, retrying and dead calls by provider, with their errors; a dead call
sent again (what ``responder outbox retry`` does), a POST behind the CSRF check."""

from __future__ import annotations

import io
from typing import Any, Final
from urllib.parse import urlencode

from aiohttp import web

from responder.console.views import console_of, render
from responder.outbound import OutboxItem
from responder.tools.outbox import as_record, requeue
from responder.web.server import CLOCK, DELIVERY, STORE

LIMIT: Final = 200  # items of each status shown
SENT: Final = 20  # the last sent ones


async def listing(request: web.Request) -> web.Response:
    console = console_of(request)
    store = request.config_dict[STORE]
    value = console.masking.value
    groups: dict[str, dict[str, list[dict[str, Any]]]] = {}
    counts = {"pending": 0, "retrying": 0, "dead": 0}
    for status in ("pending", "dead"):
        for item in await store.outbox(status, LIMIT):
            where = _where(item)
            counts[where] += 1
            by_provider = groups.setdefault(item.call.provider, {})
            by_provider.setdefault(where, []).append(_row(item, value))
    sent = [_row(item, value) for item in await store.outbox("sent", SENT)]
    return render(
        request,
        "outbox.html",
        page="outbox",
        groups=dict(sorted(groups.items())),
        counts=counts,
        sent=sent,
        limit=LIMIT,
        notice=request.query.get("notice", ""),
    )


def _where(item: OutboxItem) -> str:
    if item.status == "dead":
        return "dead"
    return "retrying" if item.attempts > 0 else "pending"


def _row(item: OutboxItem, value: Any) -> dict[str, Any]:
    record = as_record(item)
    record["contact"] = value(record["contact"])
    record["params"] = value(record["params"])
    record["created_at"] = item.created
    return record


async def retry(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    keys = [str(k) for k in form.getall("key", []) if str(k)]
    every = form.get("all") == "dead"
    if not keys and not every:
        return web.Response(status=303, headers={"Location": "/console/outbox"})
    store = request.config_dict[STORE]
    out, err = io.StringIO(), io.StringIO()
    await requeue(store, keys, out, err, all_dead=every, clock=request.config_dict[CLOCK])
    # The worker would find them within its poll; told, it sends them now.
    request.config_dict[DELIVERY].wake()
    notice = (err.getvalue() + out.getvalue()).strip().replace("\n", "; ")
    location = "/console/outbox?" + urlencode({"notice": notice})
    return web.Response(status=303, headers={"Location": location})
