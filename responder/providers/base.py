"""What every provider adapter takes and gives, and the request parsing they share."""

from __future__ import annotations

import hashlib
import json
import re
from binascii import a2b_qp
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import parse_qsl, unquote_to_bytes

from responder.errors import BadRequest
from responder.events import Event
from responder.frozen import quick_init

# Every limit has a number: how many parameters one webhook may carry, and how long one
# parameter (or a string anywhere in a JSON body) may be.
MAX_PARAMS = 500
MAX_FIELD_CHARS = 10_000
# TextIt's legacy flow fields hold the whole run as JSON; only the body size bounds them.
STRUCTURED_FIELDS = frozenset({"values", "steps"})
# A JSON ``\ud83d`` escape without its other half decodes to a lone surrogate, which no UTF-8
# text (a reply, a log line, the store) can hold. Senders that cut a message between the two
# halves of an emoji write them; the half becomes U+FFFD and the event goes on.
_SURROGATE_ESCAPE = re.compile(r"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")
REPLACED_SURROGATES = "unpaired UTF-16 surrogates in the JSON body replaced by U+FFFD"


@quick_init
@dataclass(frozen=True, slots=True)
class WebhookRequest:
    """The parts of an HTTP request an adapter may look at; plain data, no I/O."""

    query: tuple[tuple[str, str], ...]
    body: bytes
    content_type: str = ""
    headers: Mapping[str, str] = field(default_factory=dict)
    method: str = "POST"


@quick_init
@dataclass(frozen=True, slots=True)
class Params:
    """Request parameters merged from the query string and the body."""

    values: dict[str, str]  # the last value of each name
    pairs: tuple[tuple[str, str], ...] = ()  # every name and value, in order
    document: dict[str, Any] | None = None  # a JSON object body, when there was one
    notes: tuple[str, ...] = ()  # what was repaired while reading

    def every(self, name: str) -> list[str]:
        """Every value given for ``name``, in order (a repeated field keeps them all)."""
        return [value for key, value in self.pairs if key == name]


@quick_init
@dataclass(frozen=True, slots=True)
class HttpReply:
    """What a webhook answers: status, content type and the exact body bytes."""

    status: int = 200
    content_type: str = "text/plain"
    body: bytes = b""


EMPTY_OK = HttpReply()


class Provider(Protocol):
    """A webhook dialect: parse requests, key them for idempotency, render replies."""

    name: str
    # The HTTP methods this provider's senders use; any other is answered 405.
    methods: frozenset[str]
    # The event kinds this provider's webhooks can become.
    kinds: frozenset[str]

    def parse(self, channel: str, request: WebhookRequest) -> Event:
        """Turn a request into one Event; raise BadRequest only when nothing is readable."""
        ...

    def idempotency_key(self, event: Event, request: WebhookRequest) -> str:
        """A key that is equal for a retried delivery of the same notification, and that no
        other notification has."""
        ...

    def reply(
        self, event: Event, text: str | None, variables: Mapping[str, Any] | None
    ) -> HttpReply:
        """The HTTP answer for this event given the reply a rule produced (if any)."""
        ...


def decode(raw: bytes) -> str:
    """Decode provider text: UTF-8, falling back to Latin-1 (Hoiio accepts Latin-1 SMS)."""
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        return raw.decode("latin-1")


# Stand-ins for the separators while a whole body is percent-decoded at once: bytes no form
# body needs, so one that holds them (raw or escaped) is read the slower way.
_PAIR, _NAME = b"\x00", b"\x01"
# A ``%`` that starts no escape (kept as it is by percent-decoding).
_LOOSE_PERCENT = re.compile(rb"%(?![0-9A-Fa-f]{2})")


def _marked_form(raw: bytes) -> list[tuple[str, str]] | None:
    """``parse_qsl(raw.decode(), keep_blank_values=True, errors="strict")`` with the whole
    body percent-decoded in one pass rather than part by part; None for a body holding the
    stand-ins. UnicodeDecodeError, as parse_qsl, when the decoded body is not UTF-8."""
    if _PAIR in raw or _NAME in raw or b"%00" in raw or b"%01" in raw:
        return None
    marked = raw.replace(b"+", b" ").replace(b"&", _PAIR).replace(b"=", _NAME)
    if _LOOSE_PERCENT.search(marked):
        text = unquote_to_bytes(marked).decode("utf-8")
    else:
        # Every ``%`` starts an escape and no ``=`` is left: quoted-printable decoding of
        # ``=XX``, in C, is then exactly the percent-decoding (unquote_to_bytes loops in
        # Python over every escape).
        text = a2b_qp(marked.replace(b"%", b"=")).decode("utf-8")
    pairs = []
    for piece in text.split("\x00"):
        if piece:
            name, _, value = piece.partition("\x01")
            pairs.append((name, value.replace("\x01", "=") if "\x01" in value else value))
    return pairs


def _pairs(raw: bytes) -> list[tuple[str, str]]:
    try:
        # The common case, in one pass: the body and every percent-escaped run are UTF-8.
        pairs = _marked_form(raw)
        if pairs is not None:
            return pairs
        return parse_qsl(raw.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        pass
    # Latin-1 maps every byte to one character and back, so percent-decoded bytes survive
    # intact and decode() can apply the UTF-8-else-Latin-1 rule to each value on its own.
    text = raw.decode("latin-1")
    pairs = parse_qsl(text, keep_blank_values=True, encoding="latin-1", errors="strict")
    return [(decode(k.encode("latin-1")), decode(v.encode("latin-1"))) for k, v in pairs]


def parse_params(request: WebhookRequest) -> Params:
    """Merge query-string and body parameters; body values win over query values.

    Accepts form-encoded bodies, JSON object bodies and empty bodies. A body that
    claims to be JSON but is not, or that carries too many parameters, is a BadRequest.
    """
    pairs: list[tuple[str, str]] = list(request.query)
    document: dict[str, Any] | None = None
    notes: tuple[str, ...] = ()
    ctype = request.content_type.split(";")[0].strip().lower()
    body = request.body
    stripped = body.lstrip()
    looks_json = stripped[:1] in (b"{", b"[")
    if body and (ctype == "application/json" or ctype.endswith("+json") or looks_json):
        text = decode(body)
        try:
            loaded = json.loads(text)
        except ValueError as exc:
            if ctype == "application/json" or ctype.endswith("+json"):
                raise BadRequest(f"body is not valid JSON: {exc}") from None
            loaded = None
        except RecursionError:
            raise BadRequest("JSON body is nested too deeply") from None
        if isinstance(loaded, dict):
            document = loaded
            if _SURROGATE_ESCAPE.search(text) and _replace_surrogates(document):
                notes = (REPLACED_SURROGATES,)
            for key, value in loaded.items():
                if isinstance(value, str | int | float | bool) and not isinstance(value, bool):
                    pairs.append((str(key), str(value)))
                elif isinstance(value, bool):
                    pairs.append((str(key), "true" if value else "false"))
        elif loaded is not None:
            raise BadRequest("JSON body must be an object")
        else:
            pairs.extend(_pairs(body))
    elif body:
        pairs.extend(_pairs(body))
    if len(pairs) > MAX_PARAMS:
        raise BadRequest(f"too many parameters ({len(pairs)} > {MAX_PARAMS})")
    # A form body's names and values are never longer than the body itself.
    if request.query or document is not None or len(body) > MAX_FIELD_CHARS:
        for key, value in pairs:
            if len(key) > MAX_FIELD_CHARS or len(value) > MAX_FIELD_CHARS:
                _check_length(key, value)
    if document is not None:
        _check_document(document)
    return Params(values=dict(pairs), pairs=tuple(pairs), document=document, notes=notes)


def _replace_surrogates(document: dict[str, Any]) -> bool:
    """Replace every lone surrogate in keys and strings by U+FFFD, in place; True if any."""
    found = False
    stack: list[dict[str, Any] | list[Any]] = [document]
    while stack:  # iterative: a body may nest as deep as the JSON parser allowed
        node = stack.pop()
        if isinstance(node, dict):
            if any(_SURROGATE.search(key) for key in node):
                found = True
                items = list(node.items())
                node.clear()
                node.update((_SURROGATE.sub("\ufffd", key), value) for key, value in items)
            slots: list[tuple[Any, Any]] = list(node.items())
        else:
            slots = list(enumerate(node))
        for slot, value in slots:
            if isinstance(value, str) and _SURROGATE.search(value):
                node[slot] = _SURROGATE.sub("\ufffd", value)
                found = True
            elif isinstance(value, dict | list):
                stack.append(value)
    return found


def _field_name(name: str) -> str:
    return repr(name if len(name) <= 60 else name[:60] + "...")


def _check_length(name: str, value: str) -> None:
    """Refuse a parameter name or value over MAX_FIELD_CHARS, naming the field."""
    if len(name) > MAX_FIELD_CHARS:
        raise BadRequest(f"a field name is {len(name)} characters long (limit {MAX_FIELD_CHARS})")
    if len(value) > MAX_FIELD_CHARS and name not in STRUCTURED_FIELDS:
        raise BadRequest(
            f"field {_field_name(name)} is {len(value)} characters long (limit {MAX_FIELD_CHARS})"
        )


def _check_document(document: dict[str, Any]) -> None:
    """Every key and string inside a JSON body obeys the field limit (path in the message)."""
    stack: list[tuple[str, Any]] = [("", document)]
    while stack:  # iterative: a body may nest as deep as the JSON parser allowed
        path, node = stack.pop()
        if isinstance(node, dict):
            for key, value in node.items():
                name = f"{path}.{key}" if path else str(key)
                if len(key) > MAX_FIELD_CHARS:
                    _check_length(key, "")
                stack.append((name, value))
        elif isinstance(node, list):
            stack.extend((f"{path}[{i}]", item) for i, item in enumerate(node))
        elif isinstance(node, str) and len(node) > MAX_FIELD_CHARS:
            _check_length(path, node)


def body_hash(request: WebhookRequest) -> str:
    """A digest of the whole request (query and body), the idempotency key of last resort."""
    digest = hashlib.sha256()
    for key, value in sorted(request.query):
        digest.update(f"{key}={value}&".encode())
    digest.update(b"\0")
    digest.update(request.body)
    return digest.hexdigest()[:32]


def first(values: Mapping[str, str], *names: str) -> str | None:
    """The first non-empty value among ``names`` (aliases of one field)."""
    for name in names:
        value = values.get(name)
        if value:
            value = value.strip()
            if value:
                return value
    return None


def key_part(text: str) -> str:
    """``text`` as one part of a ``:``-separated store key: ``%`` and ``:`` percent-encoded,
    so no value from a webhook can pass for two parts (``a:b`` + ``c`` and ``a`` + ``b:c``
    made the same key). Ids without either character are left as they are."""
    if "%" in text or ":" in text:
        return text.replace("%", "%25").replace(":", "%3A")
    return text
