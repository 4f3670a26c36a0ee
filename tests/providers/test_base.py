"""Shared request parsing: query/body merge, decoding, JSON bodies, limits, hashing."""

from __future__ import annotations

import json
from urllib.parse import parse_qsl

import pytest
from hypothesis import given
from hypothesis import strategies as st

from responder.errors import BadRequest
from responder.providers import PROVIDERS
from responder.providers.base import (
    EMPTY_OK,
    MAX_FIELD_CHARS,
    MAX_PARAMS,
    HttpReply,
    WebhookRequest,
    _marked_form,
    _pairs,
    body_hash,
    decode,
    first,
    parse_params,
)
from responder.providers.hoiio import HoiioProvider
from responder.providers.textit import TextItProvider

from ._support import FORM, JSON


def request(
    body: bytes = b"", query: tuple[tuple[str, str], ...] = (), ctype: str = FORM
) -> WebhookRequest:
    return WebhookRequest(query=query, body=body, content_type=ctype)


# --------------------------------------------------------------------------- decode


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        (b"hello", "hello"),
        (b"caf\xc3\xa9", "café"),
        (b"caf\xe9", "café"),
        (b"\xa3100", "£100"),
        (b"\xf0\x9f\x91\x8d", "\U0001f44d"),
        (b"\xc3", "Ã"),
        (b"", ""),
    ],
)
def test_decode_utf8_then_latin1(raw: bytes, text: str) -> None:
    assert decode(raw) == text


# --------------------------------------------------------------------------- parse_params


def test_form_body() -> None:
    params = parse_params(request(b"a=1&b=two+words&c=%2B6511111111"))
    assert params.values == {"a": "1", "b": "two words", "c": "+6511111111"}
    assert params.pairs == (("a", "1"), ("b", "two words"), ("c", "+6511111111"))
    assert params.every("b") == ["two words"]
    assert params.document is None


def test_query_only() -> None:
    params = parse_params(request(query=(("a", "1"), ("b", "2")), ctype=""))
    assert params.values == {"a": "1", "b": "2"}
    assert params.document is None


def test_query_and_body_merge_and_body_wins() -> None:
    params = parse_params(request(b"b=body&c=3", query=(("a", "1"), ("b", "query"))))
    assert params.values == {"a": "1", "b": "body", "c": "3"}
    assert params.every("b") == ["query", "body"]


def test_duplicated_keys() -> None:
    params = parse_params(request(b"k=1&k=2&k=3&other=x"))
    assert params.values["k"] == "3"
    assert params.every("k") == ["1", "2", "3"]
    assert params.every("other") == ["x"]
    assert params.every("missing") == []


@pytest.mark.parametrize(
    ("body", "values"),
    [
        (b"a=&b", {"a": "", "b": ""}),
        (b"a=%zz", {"a": "%zz"}),
        (b"a=%", {"a": "%"}),
        (b"a=%4", {"a": "%4"}),
        (b"a=%E9", {"a": "é"}),
        (b"a=%C3%A9", {"a": "é"}),
        (b"a=\xe9", {"a": "é"}),
        (b"a=%C3", {"a": "Ã"}),
        (b"%E9t%E9=summer", {"été": "summer"}),
        (b"a=1+%2B+1", {"a": "1 + 1"}),
        (b"a=x%26y%3Dz", {"a": "x&y=z"}),
        (b"a=1&&b=2", {"a": "1", "b": "2"}),
    ],
    ids=[
        "blank",
        "bad-escape",
        "lone-percent",
        "short-escape",
        "latin1",
        "utf8",
        "raw-latin1",
        "broken-utf8",
        "latin1-key",
        "plus",
        "escaped-separators",
        "empty-pair",
    ],
)
def test_form_decoding(body: bytes, values: dict[str, str]) -> None:
    assert parse_params(request(body)).values == values


def test_each_value_decodes_on_its_own() -> None:
    # One value in UTF-8 and another in Latin-1 in the same body.
    params = parse_params(request(b"a=caf%C3%A9&b=caf%E9"))
    assert params.values == {"a": "café", "b": "café"}


def test_json_object_body() -> None:
    doc = {"s": "x", "i": 3, "f": 1.5, "t": True, "n": False, "z": None, "o": {"k": 1}, "l": [1]}
    params = parse_params(request(json.dumps(doc).encode(), ctype=JSON))
    assert params.values == {"s": "x", "i": "3", "f": "1.5", "t": "true", "n": "false"}
    assert params.document == doc


@pytest.mark.parametrize(
    "ctype", ["", FORM, "text/plain", "application/json; charset=utf-8", "application/ld+json"]
)
def test_json_body_whatever_the_content_type(ctype: str) -> None:
    params = parse_params(request(b'  {"event": "mo_sms", "sms": 1}', ctype=ctype))
    assert params.document == {"event": "mo_sms", "sms": 1}
    assert params.values == {"event": "mo_sms", "sms": "1"}


def test_json_body_merges_with_query() -> None:
    params = parse_params(request(b'{"a": "body"}', query=(("a", "query"), ("q", "1")), ctype=JSON))
    assert params.values == {"a": "body", "q": "1"}


def test_latin1_json_body() -> None:
    params = parse_params(request(b'{"msg": "caf\xe9"}', ctype=JSON))
    assert params.values == {"msg": "café"}


@pytest.mark.parametrize(
    ("body", "ctype"),
    [
        (b"{not json", JSON),
        (b"a=1&b=2", JSON),
        (b'{"a": 1', "application/json; charset=utf-8"),
        (b"{'a': 1}", "APPLICATION/JSON"),
        (b"nope", "application/problem+json"),
    ],
)
def test_invalid_json_with_json_content_type_is_bad_request(body: bytes, ctype: str) -> None:
    with pytest.raises(BadRequest) as info:
        parse_params(request(body, ctype=ctype))
    assert "not valid JSON" in info.value.reason


@pytest.mark.parametrize("body", [b"[1, 2]", b'["a"]', b"[]"])
def test_json_non_object_is_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest, match="must be an object"):
        parse_params(request(body, ctype=JSON))


@pytest.mark.parametrize("body", [b"{a=1&b=2", b"[x]=1&y=2"])
def test_json_looking_form_body_without_json_type_falls_back_to_form(body: bytes) -> None:
    params = parse_params(request(body, ctype=FORM))
    assert params.document is None
    assert len(params.values) == 2


@pytest.mark.parametrize("ctype", [JSON, FORM, ""])
def test_empty_body_is_not_an_error(ctype: str) -> None:
    params = parse_params(request(b"", ctype=ctype))
    assert params.values == {}
    assert params.pairs == ()
    assert params.document is None


def test_max_params_is_allowed() -> None:
    body = "&".join(f"k{i}=v" for i in range(MAX_PARAMS)).encode()
    assert len(parse_params(request(body)).values) == MAX_PARAMS


@pytest.mark.parametrize(
    ("n_query", "n_body"), [(0, MAX_PARAMS + 1), (MAX_PARAMS + 1, 0), (250, 251), (1, 5000)]
)
def test_too_many_params_is_bad_request(n_query: int, n_body: int) -> None:
    query = tuple((f"q{i}", "v") for i in range(n_query))
    body = "&".join(f"b{i}=v" for i in range(n_body)).encode()
    with pytest.raises(BadRequest, match="too many parameters"):
        parse_params(request(body, query=query))


def test_repeated_keys_count_towards_the_limit() -> None:
    body = b"&".join([b"k=v"] * (MAX_PARAMS + 1))
    with pytest.raises(BadRequest):
        parse_params(request(body))


def test_too_many_json_keys_is_bad_request() -> None:
    body = json.dumps({f"k{i}": i for i in range(MAX_PARAMS + 1)}).encode()
    with pytest.raises(BadRequest, match="too many parameters"):
        parse_params(request(body, ctype=JSON))


def test_field_at_the_length_limit_is_fine() -> None:
    text = "é" * MAX_FIELD_CHARS  # characters, not bytes
    body = f"msg={text}&from=1".encode()
    assert parse_params(request(body)).values["msg"] == text
    query = (("text", "x" * MAX_FIELD_CHARS),)
    assert len(parse_params(request(b"", query=query)).values["text"]) == MAX_FIELD_CHARS


@pytest.mark.parametrize("where", ["body", "query"])
def test_field_over_the_length_limit_names_the_field(where: str) -> None:
    long = "x" * (MAX_FIELD_CHARS + 1)
    body = f"from=1&msg={long}".encode() if where == "body" else b""
    query = (("msg", long),) if where == "query" else ()
    with pytest.raises(BadRequest) as exc:
        parse_params(request(body, query=query))
    assert exc.value.reason == f"field 'msg' is {MAX_FIELD_CHARS + 1} characters long (limit 10000)"


def test_long_field_name_is_refused_without_repeating_it() -> None:
    with pytest.raises(BadRequest) as exc:
        parse_params(request(("k" * (MAX_FIELD_CHARS + 1)).encode() + b"=v"))
    assert exc.value.reason == "a field name is 10001 characters long (limit 10000)"


def test_structured_flow_fields_are_bounded_by_the_body_only() -> None:
    values = json.dumps([{"label": f"L{i}", "value": "v" * 100} for i in range(200)])
    assert len(values) > MAX_FIELD_CHARS
    body = "event=flow&" + "&".join(f"{k}={values}" for k in ("values", "steps"))
    parsed = parse_params(request(body.encode()))
    assert parsed.values["values"] == parsed.values["steps"] == values


@pytest.mark.parametrize(
    ("document", "path"),
    [
        ({"input": "x" * (MAX_FIELD_CHARS + 1)}, "input"),
        ({"results": {"order": {"value": "x" * (MAX_FIELD_CHARS + 1)}}}, "results.order.value"),
        ({"path": [{"a": 1}, {"text": "x" * (MAX_FIELD_CHARS + 1)}]}, "path[1].text"),
    ],
)
def test_long_strings_anywhere_in_json_name_their_path(document: object, path: str) -> None:
    with pytest.raises(BadRequest) as exc:
        parse_params(request(json.dumps(document).encode(), ctype=JSON))
    assert exc.value.reason.startswith(f"field {path!r} is 10001 characters long")


def test_long_json_key_is_refused() -> None:
    body = json.dumps({"results": {"k" * (MAX_FIELD_CHARS + 1): 1}}).encode()
    with pytest.raises(BadRequest, match="a field name is 10001 characters"):
        parse_params(request(body, ctype=JSON))


@pytest.mark.parametrize("ctype", [JSON, FORM])
def test_deeply_nested_json_is_bad_request(ctype: str) -> None:
    with pytest.raises(BadRequest, match="nested too deeply"):
        parse_params(request(b"[" * 100_000, ctype=ctype))


def test_deep_json_that_parses_is_walked_without_recursion() -> None:
    body = ('{"a": ' + "[" * 900 + '"' + "x" * 10 + '"' + "]" * 900 + "}").encode()
    assert parse_params(request(body, ctype=JSON)).document is not None


# --------------------------------------------------------------------------- helpers


def test_body_hash_is_stable_and_order_independent_in_the_query() -> None:
    a = request(b"x=1", query=(("a", "1"), ("b", "2")))
    b = request(b"x=1", query=(("b", "2"), ("a", "1")))
    assert body_hash(a) == body_hash(b)
    assert len(body_hash(a)) == 32
    assert body_hash(a) != body_hash(request(b"x=2", query=(("a", "1"), ("b", "2"))))
    assert body_hash(a) != body_hash(request(b"x=1", query=(("a", "1"),)))


def test_body_hash_separates_query_from_body() -> None:
    assert body_hash(request(b"", query=(("a", "1"),))) != body_hash(request(b"a=1&"))


@pytest.mark.parametrize(
    ("values", "names", "want"),
    [
        ({"sms": "1", "id": "2"}, ("sms", "id"), "1"),
        ({"id": "2"}, ("sms", "id"), "2"),
        ({"sms": "", "id": "2"}, ("sms", "id"), "2"),
        ({"sms": "   ", "id": "2"}, ("sms", "id"), "2"),
        ({"sms": " 7 "}, ("sms",), "7"),
        ({}, ("sms", "id"), None),
        ({"sms": ""}, ("sms",), None),
    ],
)
def test_first(values: dict[str, str], names: tuple[str, ...], want: str | None) -> None:
    assert first(values, *names) == want


def test_empty_ok_reply() -> None:
    assert HttpReply(status=200, content_type="text/plain", body=b"") == EMPTY_OK


def test_registry() -> None:
    assert set(PROVIDERS) == {"textit", "hoiio"}
    assert isinstance(PROVIDERS["textit"], TextItProvider)
    assert isinstance(PROVIDERS["hoiio"], HoiioProvider)
    assert all(provider.name == name for name, provider in PROVIDERS.items())


def _pairs_by_value(raw: bytes) -> list[tuple[str, str]]:
    """Every key and value decoded on its own: UTF-8, else Latin-1."""
    pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="latin-1")
    return [(decode(k.encode("latin-1")), decode(v.encode("latin-1"))) for k, v in pairs]


FORM_PIECES = [b"a", b"=", b"&", b"%", b"%C3", b"%A9", b"\xc3", b"\xa9", b"+", b"%2B", b";"]
FORM_PIECES += [b"%E2%82%AC", b"\xe2\x82\xac", b"%zz", b"\xff", b"%FF", b"text", b"%00"]
FORM_PIECES += [b"\x00", b"\x01", b"%01", b"%3D", b"%26", b"%2", b"=="]
# Lower-case escapes, line breaks (soft line breaks to quoted-printable) and loose percents.
FORM_PIECES += [b"%e2%82%ac", b"%3d", b"%0a", b"\n", b"\r\n", b"%\n", b"%a", b"%%41"]


@given(st.lists(st.sampled_from(FORM_PIECES), max_size=12).map(b"".join))
def test_form_bodies_decode_each_value_utf8_else_latin1(raw: bytes) -> None:
    # The one-pass UTF-8 reading of a whole body gives what decoding value by value gives.
    assert _pairs(raw) == _pairs_by_value(raw)


@given(st.lists(st.sampled_from(FORM_PIECES) | st.binary(max_size=3), max_size=12).map(b"".join))
def test_one_pass_decoding_reads_what_value_by_value_decoding_reads(raw: bytes) -> None:
    marked = any(mark in raw for mark in (b"\x00", b"\x01", b"%00", b"%01"))
    try:
        got = _marked_form(raw)
    except UnicodeDecodeError:
        assert not marked
        return  # not UTF-8 once decoded: read value by value (the test above)
    if marked:
        assert got is None
    else:
        assert got == _pairs_by_value(raw)
