"""Hypothesis strategies for whole HTTP requests: method, target, headers and body."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import zlib
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st

from tests.fuzz import strategies as s
from tests.fuzz.harness import MAX_BODY

PATHS = (
    "/webhooks/textit", "/webhooks/hoiio", "/webhooks/textit", "/webhooks/hoiio",
    "/webhooks/unknown", "/webhooks/", "/webhooks/textit/", "/webhooks/TEXTIT", "/healthz",
    "/metrics", "/webhooks/%00", "//webhooks/hoiio", "/webhooks/hoiio?", "/",
)  # fmt: skip
METHODS = ("POST", "POST", "POST", "POST", "GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS")
SIGNATURE = "X-Hoiio-Signature"

TOKEN_CHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
token = st.text(TOKEN_CHARS, min_size=1, max_size=12)
# Any byte a header value may hold on the wire (no CR, LF or NUL).
plain_value = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=60).map(
    str.encode
)
header_value = st.one_of(
    plain_value,
    st.binary(max_size=60).map(lambda b: bytes(c for c in b if c not in b"\r\n\x00")),
)
address = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(["10.1.2.3", "127.0.0.1", "10.0.0.1:443", "[::1]:80", "unknown", ""]),
)


@dataclass(frozen=True, slots=True)
class Request:
    method: bytes
    path: str
    query: list[tuple[str, str]]
    raw_query: bytes | None  # when set, sent instead of ``query``, byte for byte
    headers: list[tuple[bytes, bytes]]
    body: bytes

    def __repr__(self) -> str:
        # Huge values are long runs of one character: show their shape, not all of them.
        headers = [(n, _short(v)) for n, v in self.headers]
        return (
            f"Request({self.method!r}, {_short(self.target)}, headers={headers!r}, "
            f"body={_short(self.body)})"
        )

    def _repr_pretty_(self, printer: Any, cycle: bool) -> None:
        printer.text(repr(self))  # hypothesis prints dataclasses field by field otherwise

    @property
    def target(self) -> bytes:
        if self.raw_query is not None:
            return self.path.encode() + b"?" + self.raw_query
        if not self.query:
            return self.path.encode()
        return (self.path + "?" + s.query_string(self.query)).encode()

    @property
    def provider(self) -> str:
        return "hoiio" if "hoiio" in self.path.lower() else "textit"


def _short(data: bytes) -> str:
    if len(data) <= 1000:
        return repr(data)
    return f"{data[:300]!r}...{data[-100:]!r} ({len(data)} bytes)"


def signature(token_: str, body: bytes) -> bytes:
    return hmac.new(token_.encode(), body, hashlib.sha256).hexdigest().encode()


@st.composite
def encoded(draw: st.DrawFn, body: bytes) -> tuple[list[tuple[bytes, bytes]], bytes]:
    """A Content-Encoding header, with the body compressed to match it or not."""
    choice = draw(st.sampled_from(["none"] * 6 + ["gzip", "deflate", "br", "lie", "junk"]))
    if choice == "gzip":
        return [(b"Content-Encoding", b"gzip")], gzip.compress(body)
    if choice == "deflate":
        return [(b"Content-Encoding", b"deflate")], zlib.compress(body)
    if choice == "br":  # claimed but not compressed
        return [(b"Content-Encoding", b"br")], body
    if choice == "lie":
        return [(b"Content-Encoding", draw(st.sampled_from([b"gzip", b"deflate"])))], body
    if choice == "junk":
        return [(b"Content-Encoding", draw(header_value))], body
    return [], body


@st.composite
def requests(
    draw: st.DrawFn,
    *,
    secret: str | None = None,
    token_: str | None = None,
    encodings: bool = True,
) -> Request:
    """Any request: mostly POSTs to a webhook with plausible fields, one in five anything.

    With ``secret`` and ``token_`` the right credentials are offered often enough that many
    requests get through; wrong, missing and duplicated ones are drawn as well.
    """
    wild = draw(st.integers(0, 4)) == 0
    path = draw(st.sampled_from(PATHS if wild else PATHS[:2]))
    odd_method = wild and draw(st.integers(0, 3)) == 0
    method = draw(token if odd_method else st.sampled_from(METHODS if wild else ("POST",)))
    provider = "hoiio" if "hoiio" in path.lower() else "textit"
    # aiohttp refuses a request line over 8 KiB before responder sees it: keep most under.
    query = draw(st.lists(st.tuples(s.names(provider), s.values(huge=False)), max_size=4))
    if secret is not None:
        offered = st.integers(0, 4).flatmap(
            lambda n: (
                s.TEXT if n == 0 else st.sampled_from([secret, secret, "", "guess", secret + "x"])
            )
        )
        for value in draw(st.lists(offered, min_size=draw(st.integers(0, 3)) and 1, max_size=3)):
            name = draw(st.sampled_from(["secret", "password"]))
            query.insert(draw(st.integers(0, len(query))), (name, value))
    raw_query = None
    if wild and draw(st.booleans()):
        prefix = draw(st.sampled_from([b"", b"secret=", b"password=", b"app_state="]))
        raw_query = prefix + draw(st.binary(max_size=40)).replace(b" ", b"%20")
    body = draw(s.body(provider))
    values = header_value if wild else plain_value
    headers: list[tuple[bytes, bytes]] = []
    if draw(st.integers(0, 4)) > 0:
        ctype = draw(st.one_of(st.sampled_from(s.CONTENT_TYPES).map(str.encode), values))
        headers.append((b"Content-Type", ctype))
    for _ in range(draw(st.integers(0, 2))):
        hops = draw(st.lists(address, max_size=3))
        forwarded = ", ".join(hops).encode()
        headers.append((b"X-Forwarded-For", draw(values) if wild else forwarded))
    if draw(st.integers(0, 3)) == 0:
        headers.append((b"X-Request-Id", draw(values)))
    if draw(st.integers(0, 5)) == 0:
        headers.append((draw(token).encode(), draw(values)))
    if draw(st.integers(0, 19)) == 0:  # past the body limit
        body += b"x" * draw(st.integers(MAX_BODY, MAX_BODY + 1024))
    if token_ is not None:
        good = signature(token_, body)
        candidates = [good, good, good.upper(), b" " + good, b"00" * 32, b"zz", good[:-1]]
        sigs = st.integers(0, 4).flatmap(
            lambda n: header_value if n == 0 else st.sampled_from(candidates)
        )
        for sig in draw(st.lists(sigs, max_size=2)):
            headers.append((SIGNATURE.encode(), sig))
    elif draw(st.integers(0, 4)) == 0:
        headers.append((SIGNATURE.encode(), draw(values)))
    if encodings and wild:
        extra, body = draw(encoded(body))
        headers += extra
    order = draw(st.permutations(range(len(headers))))
    return Request(method.encode(), path, query, raw_query, [headers[i] for i in order], body)
