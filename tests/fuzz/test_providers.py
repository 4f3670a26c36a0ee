"""Every provider adapter answers any request with an Event or a BadRequest, nothing else."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from responder.errors import BadRequest
from responder.events import Event
from responder.providers import PROVIDERS
from responder.providers.base import WebhookRequest
from tests.fuzz import strategies as s

PROVIDER_NAMES = sorted(PROVIDERS)


def check(provider_name: str, request: WebhookRequest) -> Event | None:
    """Parse ``request``; the event must key, render and serialise without error."""
    provider = PROVIDERS[provider_name]
    try:
        event = provider.parse(provider_name, request)
    except BadRequest as exc:
        refusal = exc.reason
    else:
        refusal = None
    if refusal is not None:
        # A clear, short reason: the caller reads it, the log keeps it.
        assert 0 < len(refusal) < 300
        return None
    assert isinstance(event, Event)
    key = provider.idempotency_key(event, request)
    assert isinstance(key, str)
    key.encode("utf-8")
    # A rule that echoes everything the sender gave: the answer must still be valid.
    variables = {"text": event.text, "raw": dict(event.raw), "contact": event.contact}
    for text in (None, event.text, json.dumps(dict(event.raw), ensure_ascii=False)):
        reply = provider.reply(event, text, variables)
        assert 200 <= reply.status < 300
        if reply.content_type == "application/json":
            json.loads(reply.body.decode("utf-8"))
    return event


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
@given(data=st.data())
def test_form_fields_in_query_and_body(
    provider: str, data: st.DataObject, count_case: Callable[[], None]
) -> None:
    items = data.draw(s.pairs(provider, max_size=16), label="fields")
    # Each field goes to the query string or the body; duplicates land in both.
    in_query = data.draw(st.lists(st.booleans(), min_size=len(items), max_size=len(items)))
    query = tuple(item for item, q in zip(items, in_query, strict=True) if q)
    rest = [item for item, q in zip(items, in_query, strict=True) if not q]
    body = data.draw(s.form_body(rest), label="body")
    ctype = data.draw(s.content_types, label="content type")
    count_case()  # after the draws: a case hypothesis drops while drawing does not count
    check(provider, WebhookRequest(query=query, body=body, content_type=ctype))


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
@given(
    query=st.lists(st.tuples(s.TEXT, s.values()), max_size=6),
    body=st.one_of(st.binary(max_size=400), s.mutated_payload()),
    ctype=s.content_types,
)
def test_arbitrary_bytes(
    provider: str,
    query: list[tuple[str, str]],
    body: bytes,
    ctype: str,
    count_case: Callable[[], None],
) -> None:
    count_case()
    check(provider, WebhookRequest(query=tuple(query), body=body, content_type=ctype))


@pytest.mark.parametrize("provider", PROVIDER_NAMES)
@given(
    body=s.json_body(),
    ctype=st.sampled_from(
        ["application/json", "", "text/plain", "application/x-www-form-urlencoded"]
    ),
    query=st.lists(st.tuples(st.sampled_from(s.TEXTIT_FIELDS), s.values()), max_size=3),
)
# Found by the fuzz run: a lone surrogate escape reached the UTF-8 encoding of the reply.
@example(body=b'{"\\ud800": false}', ctype="application/json", query=[("phone", "+1620")])
@example(body=b'{"text": "cut \\ud83d", "phone": "+1"}', ctype="", query=[("event", "mo_sms")])
# Found by the fuzz run: attachments that are not a list (true) raised TypeError.
@example(body=b'{"flow": {}, "input": {"attachments": true}}', ctype="", query=[])
def test_json_bodies(
    provider: str,
    body: bytes,
    ctype: str,
    query: list[tuple[str, str]],
    count_case: Callable[[], None],
) -> None:
    count_case()
    check(provider, WebhookRequest(query=tuple(query), body=body, content_type=ctype))
