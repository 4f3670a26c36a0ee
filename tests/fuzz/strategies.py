"""Hypothesis strategies for webhook requests: real field names, hostile values, odd encodings."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, quote_from_bytes

from hypothesis import strategies as st

from responder.providers.base import MAX_FIELD_CHARS

PAYLOADS = Path(__file__).resolve().parents[1] / "data" / "payloads"

# Field names from the protocol references (shared/protocols/*.md) and the captured payloads.
TEXTIT_FIELDS = (
    "event", "relayer", "channel", "relayer_phone", "channel_phone", "sms", "call", "id",
    "phone", "urn", "contact", "contact_name", "text", "time", "status", "direction",
    "duration", "power_level", "battery", "power_status", "power_source", "network_type",
    "pending_message_count", "unsent", "retry_message_count", "last_seen", "flow", "flow_uuid",
    "flow_name", "flow_base_language", "step", "run", "values", "steps", "attachments",
    "input", "results", "path", "app_state", "secret", "password",
)  # fmt: skip
HOIIO_FIELDS = (
    "txn_ref", "msg", "from", "to", "dest", "dest1", "dest2", "date", "sms_status",
    "fax_status", "fax_url", "call_status_dest1", "call_status_dest2", "ivr_block",
    "call_state", "session", "digits", "record_url", "transfer_status", "dial_status", "tag",
    "app_state", "sig", "debit", "currency", "rate", "duration", "error", "secret", "password",
)  # fmt: skip
FIELDS = {"textit": TEXTIT_FIELDS, "hoiio": HOIIO_FIELDS}

# Values the adapters branch on, so random requests reach every branch.
KEYWORDS = (
    "mo_sms", "mt_sent", "mt_dlvd", "mt_fail", "mo_miss", "mo_call", "mt_call", "mt_miss",
    "alarm", "flow", "answer", "dial", "play", "gather", "record", "monitor", "unhold",
    "transfer", "hangup", "ringing", "ongoing", "ended", "queued", "delivered", "failed",
    "answered", "unanswered", "None", "STOP", "stop", "START", "HELP", "hours", "1", "2", "#",
    "+6591234567", "+250788123123", "tel:+250788123123", "tel:", ":", "twitter:joe",
    "2017-03-16T10:34:34.034000", "2017-03-16T10:34:34Z", "2013-01-31 10:27:49.0",
    "9999-99-99 99:99:99", "0000-00-00T00:00:00", "main-menu:menu:1",
    "survey:q1:2:0123456789abcdef",
    "{{ 7*7 }}", "{% for x in range(10**9) %}x{% endfor %}", "{{ ''.__class__ }}", "(a+)+$",
    "[]", "{}", "null", '[{"label": "Name"}]', '{"a": [1, {"b": null}]}', "\x00", "%zz", "%",
)  # fmt: skip


def _payload_files() -> list[tuple[str, str, bytes]]:
    out = []
    for provider in ("textit", "hoiio"):
        for path in sorted((PAYLOADS / provider).iterdir()):
            if path.is_file():
                out.append((provider, path.name, path.read_bytes().rstrip(b"\r\n")))
    return out


PAYLOAD_FILES = _payload_files()


def _payload_values() -> tuple[str, ...]:
    values: set[str] = set()
    for _, name, body in PAYLOAD_FILES:
        if name.endswith((".txt", ".query")):
            values.update(v for _, v in parse_qsl(body.decode("latin-1"), keep_blank_values=True))
    return tuple(sorted(values))


PAYLOAD_VALUES = _payload_values()

# Lengths around the per-field limit, and well past it.
HUGE = st.sampled_from(
    [MAX_FIELD_CHARS - 1, MAX_FIELD_CHARS, MAX_FIELD_CHARS + 1, 3 * MAX_FIELD_CHARS]
).flatmap(lambda n: st.sampled_from(["x", "é", "💥", "{{", "%", "1"]).map(lambda c: c * n))

# Text without lone surrogates: what a decoded query string or form body can hold.
TEXT = st.text(st.characters(exclude_categories=("Cs",)), max_size=40)
# Text with lone surrogates: what a JSON string with ``\udXXX`` escapes can hold (a sender
# that cuts a message between the two halves of an emoji writes one).
SURROGATES = st.sampled_from(["\ud83d", "\udca5", "x\ud800", "\udfff\ud800", "\ud83d\ud83d"])
ANY_TEXT = st.one_of(st.text(st.characters(), max_size=40), SURROGATES)


def values(text: st.SearchStrategy[str] = TEXT, *, huge: bool = True) -> st.SearchStrategy[str]:
    """A field value: real ones from payloads, branch keywords, random text, huge text."""
    common = st.one_of(
        st.sampled_from(PAYLOAD_VALUES), st.sampled_from(KEYWORDS), text, st.integers().map(str)
    )
    if not huge:
        return common
    # One value in twenty is huge: enough to reach every limit, few enough that most
    # requests with several fields stay under them.
    return st.integers(0, 19).flatmap(lambda n: HUGE if n == 0 else common)


def names(provider: str) -> st.SearchStrategy[str]:
    """A field name: mostly the provider's real ones, sometimes anything."""
    return st.one_of(st.sampled_from(FIELDS[provider]), st.sampled_from(FIELDS[provider]), TEXT)


def pairs(provider: str, max_size: int = 12) -> st.SearchStrategy[list[tuple[str, str]]]:
    """Field combinations, keys drawn from a small set so duplicates are common."""
    return st.lists(st.tuples(names(provider), values()), max_size=max_size)


# How a pair list becomes a form body: the codec the sender used and how it escaped it.
CODECS = ("utf-8", "latin-1", "cp1252", "utf-16", "shift_jis", "utf-8-sig")


@st.composite
def form_body(draw: st.DrawFn, items: list[tuple[str, str]]) -> bytes:
    """``items`` form-encoded: any codec, escaped or raw, ``;`` or ``&`` separated."""
    codec = draw(st.sampled_from(CODECS))
    escape = draw(st.sampled_from(["quote", "plus", "raw"]))
    sep = draw(st.sampled_from([b"&", b"&", b";", b"&&"]))
    parts = []
    for key, value in items:
        k = key.encode(codec, "replace")
        v = value.encode(codec, "replace")
        if escape == "raw":
            parts.append(k + b"=" + v)
        else:
            quoted = quote_from_bytes(v, safe="" if escape == "quote" else " ")
            parts.append(quote_from_bytes(k).encode() + b"=" + quoted.replace(" ", "+").encode())
        if draw(st.integers(0, 9)) == 0:
            parts.append(draw(st.sampled_from([b"", b"=", b"novalue", b"%", b"a=%zz%2", b"=x"])))
    return sep.join(parts)


def json_values(text: st.SearchStrategy[str] = ANY_TEXT) -> st.SearchStrategy[Any]:
    """JSON of random shape: scalars, lists and objects, strings with lone surrogates."""
    scalars = st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=False, allow_infinity=False),
        values(text),
    )
    return st.recursive(
        scalars,
        lambda inner: st.one_of(
            st.lists(inner, max_size=4),
            st.dictionaries(st.one_of(st.sampled_from(TEXTIT_FIELDS), text), inner, max_size=5),
        ),
        max_leaves=20,
    )


def _replace_in(document: Any, path: list[int], new: Any) -> Any:
    """``document`` with the node reached by following ``path`` (indices) replaced."""
    if not path or not isinstance(document, dict | list) or not document:
        return new
    if isinstance(document, dict):
        keys = list(document)
        key = keys[path[0] % len(keys)]
        return {**document, key: _replace_in(document[key], path[1:], new)}
    i = path[0] % len(document)
    return [*document[:i], _replace_in(document[i], path[1:], new), *document[i + 1 :]]


JSON_PAYLOADS = [json.loads(body) for _, name, body in PAYLOAD_FILES if name.endswith(".json")]


@st.composite
def json_body(draw: st.DrawFn) -> bytes:
    """A JSON body: a real flow webhook with one subtree replaced, or any JSON at all."""
    if draw(st.booleans()):
        document = draw(st.sampled_from(JSON_PAYLOADS))
        for _ in range(draw(st.integers(1, 3))):
            path = draw(st.lists(st.integers(0, 50), max_size=4))
            document = _replace_in(document, path, draw(json_values()))
    else:
        document = draw(json_values())
    text = json.dumps(document, ensure_ascii=draw(st.booleans()))
    return text.encode("utf-8", "surrogatepass")


@st.composite
def mutated_payload(draw: st.DrawFn, provider: str | None = None) -> bytes:
    """A captured payload with a few bytes flipped, inserted or cut out."""
    files = [f for f in PAYLOAD_FILES if provider is None or f[0] == provider]
    body = bytearray(draw(st.sampled_from(files))[2])
    for _ in range(draw(st.integers(0, 4))):
        at = draw(st.integers(0, len(body)))
        action = draw(st.sampled_from(["flip", "insert", "cut"]))
        if action == "flip" and at < len(body):
            body[at] = draw(st.integers(0, 255))
        elif action == "insert":
            body[at:at] = draw(st.binary(max_size=8))
        else:
            del body[at : at + draw(st.integers(1, 20))]
    return bytes(body)


def body(provider: str) -> st.SearchStrategy[bytes]:
    """Any request body a sender (or an attacker) could post."""
    return st.one_of(
        pairs(provider).flatmap(form_body),
        json_body(),
        mutated_payload(provider),
        st.binary(max_size=200),
        st.just(b""),
    )


CONTENT_TYPES = (
    "", "application/x-www-form-urlencoded", "application/x-www-form-urlencoded; charset=latin-1",
    "application/json", "application/json; charset=utf-16", "application/vnd.api+json",
    "text/plain", "multipart/form-data; boundary=xyz", "application/xml", ";", "json",
)  # fmt: skip
content_types = st.one_of(st.sampled_from(CONTENT_TYPES), TEXT)


def query_string(items: list[tuple[str, str]]) -> str:
    """``items`` as a percent-encoded URL query string (UTF-8)."""
    return "&".join(f"{quote(k, safe='')}={quote(v, safe='')}" for k, v in items)
