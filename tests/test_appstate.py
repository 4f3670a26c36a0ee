"""The signed Hoiio pass-on state: ``dialogue:state:seq`` bound to the IVR session."""

from __future__ import annotations

import hashlib
import hmac
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from responder.appstate import MAX_NOTIFY_URL, SIG_CHARS, AppState, Signer, looks_like_ours
from responder.errors import AppStateError

KEY = b"k" * 32
SESSION = "S-100"
STATE = AppState("main-menu", "menu", 1)
BASE = "https://ivr.example.org/webhooks/hoiio"


@pytest.fixture
def signer() -> Signer:
    return Signer(KEY)


def signed(signer: Signer, state: AppState = STATE, session: str = SESSION) -> tuple[str, str]:
    """The app_state and sig query parameters Hoiio would post back."""
    query = parse_qs(urlsplit(signer.notify_url(BASE, session, state)).query)
    return query["app_state"][0], query["sig"][0]


# -- round trip --------------------------------------------------------------------------------


def test_encode_decode_round_trip() -> None:
    assert STATE.encode() == "main-menu:menu:1"
    assert AppState.decode("main-menu:menu:1") == STATE
    odd = AppState("a.b_c-D9", "x" * 100, 999_999_999)
    assert AppState.decode(odd.encode()) == odd


def test_sign_verify_round_trip(signer: Signer) -> None:
    app_state, sig = signed(signer)
    assert app_state == "main-menu:menu:1"
    assert len(sig) == SIG_CHARS
    assert signer.verify(SESSION, app_state, sig) == STATE


def test_signature_is_deterministic_and_case_insensitive(signer: Signer) -> None:
    sig = signer.sign(SESSION, STATE)
    assert sig == Signer(KEY).sign(SESSION, STATE)
    assert signer.verify(SESSION, STATE.encode(), sig.upper()) == STATE


@pytest.mark.parametrize(
    ("state", "session"),
    [
        (STATE, SESSION),
        (AppState("a.b_c-D9", "x" * 100, 999_999_999, "0123456789abcdef"), ""),
        # Names the decoder refuses still go out spelled as urlencode() spells them.
        (AppState("mén u", "a&b=c+d/é", 3), "S 1&2"),
    ],
)
def test_notify_url_is_the_urlencoded_hmac(signer: Signer, state: AppState, session: str) -> None:
    message = f"{session}|{state.encode()}".encode()
    sig = hmac.new(KEY, message, hashlib.sha256).hexdigest()[:SIG_CHARS]
    expected = BASE + "?" + urlencode({"app_state": state.encode(), "sig": sig})
    assert signer.notify_url(BASE, session, state) == expected
    assert signer.sign(session, state) == sig
    # The keyed hash is copied per signature, never advanced: the same answer twice.
    assert signer.notify_url(BASE, session, state) == expected


def test_notify_url_keeps_an_existing_query(signer: Signer) -> None:
    url = signer.notify_url(f"{BASE}?secret=abc", SESSION, STATE)
    parts = urlsplit(url)
    query = parse_qs(parts.query)
    assert query["secret"] == ["abc"]
    assert query["app_state"] == [STATE.encode()]
    assert url.count("?") == 1
    assert signer.verify(SESSION, query["app_state"][0], query["sig"][0]) == STATE


def test_short_key_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Signer(b"short")


# -- tampering --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "forged",
    [
        AppState("other-dialogue", "menu", 1),
        AppState("main-menu", "sales", 1),
        AppState("main-menu", "menu", 2),
        AppState("main-menu", "menu", 0),
    ],
    ids=["dialogue", "state", "seq-up", "seq-down"],
)
def test_tampering_any_part_is_refused(signer: Signer, forged: AppState) -> None:
    _, sig = signed(signer)
    with pytest.raises(AppStateError, match="does not match"):
        signer.verify(SESSION, forged.encode(), sig)


def test_tampered_signature_is_refused(signer: Signer) -> None:
    app_state, sig = signed(signer)
    flipped = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    for bad in (flipped, sig[:-1], sig + "0", "0" * SIG_CHARS, "zz" + sig[2:]):
        with pytest.raises(AppStateError):
            signer.verify(SESSION, app_state, bad)


def test_another_session_is_refused(signer: Signer) -> None:
    app_state, sig = signed(signer)
    with pytest.raises(AppStateError, match="does not match"):
        signer.verify("S-OTHER", app_state, sig)
    # ...and the other session's own signature does not work for this one.
    _, other_sig = signed(signer, session="S-OTHER")
    assert other_sig != sig
    with pytest.raises(AppStateError):
        signer.verify(SESSION, app_state, other_sig)


def test_another_key_is_refused(signer: Signer) -> None:
    app_state, sig = signed(signer)
    with pytest.raises(AppStateError, match="does not match"):
        Signer(b"x" * 32).verify(SESSION, app_state, sig)


@pytest.mark.parametrize("sig", [None, ""])
def test_missing_signature(signer: Signer, sig: str | None) -> None:
    with pytest.raises(AppStateError, match="without signature"):
        signer.verify(SESSION, STATE.encode(), sig)


@pytest.mark.parametrize("app_state", [None, ""])
def test_missing_app_state(signer: Signer, app_state: str | None) -> None:
    with pytest.raises(AppStateError, match="no app_state"):
        signer.verify(SESSION, app_state, signer.sign(SESSION, STATE))


@pytest.mark.parametrize("session", [None, ""])
def test_missing_session(signer: Signer, session: str | None) -> None:
    with pytest.raises(AppStateError, match="without session"):
        signer.verify(session, STATE.encode(), signer.sign(SESSION, STATE))


MALFORMED = [
    "main-menu:menu",
    "main-menu:menu:1:2",
    "main-menu",
    "::",
    ":menu:1",
    "main-menu::1",
    "main-menu:menu:",
    "main-menu:menu:-1",
    "main-menu:menu:1.5",
    "main-menu:menu:x",
    "main-menu:menu:1234567890",  # more than 9 digits
    "main menu:menu:1",
    "main-menu:me/nu:1",
    "main-menu:menu:\uff11",  # a fullwidth digit: str.isdigit() says yes
    "main-menu:menu:²",  # a superscript: isdigit() says yes, int() says no
    "main-menu:menu:٣",  # an Arabic-Indic digit
    "d" * 101 + ":menu:1",
    "main-menu:" + "s" * 101 + ":1",
    "<script>:menu:1",
    "mäin:menu:1",
]


@pytest.mark.parametrize("text", MALFORMED)
def test_malformed_app_state(signer: Signer, text: str) -> None:
    with pytest.raises(AppStateError, match="malformed"):
        AppState.decode(text)
    with pytest.raises(AppStateError, match="malformed"):
        signer.verify(SESSION, text, "0" * SIG_CHARS)
    assert not looks_like_ours(text)


def test_app_state_error_is_a_value_error() -> None:
    assert issubclass(AppStateError, ValueError)


# -- notify_url length ------------------------------------------------------------------------


def test_notify_url_at_the_limit_is_accepted(signer: Signer) -> None:
    tail = len(signer.notify_url("", SESSION, STATE))
    base = "https://ivr.example.org/" + "p" * (MAX_NOTIFY_URL - tail - 24)
    url = signer.notify_url(base, SESSION, STATE)
    assert len(url) == MAX_NOTIFY_URL == 4000


def test_notify_url_over_the_limit_is_refused(signer: Signer) -> None:
    tail = len(signer.notify_url("", SESSION, STATE))
    base = "https://ivr.example.org/" + "p" * (MAX_NOTIFY_URL - tail - 24 + 1)
    with pytest.raises(AppStateError, match="4001 characters"):
        signer.notify_url(base, SESSION, STATE)


def test_notify_url_of_longest_state_fits(signer: Signer) -> None:
    longest = AppState("d" * 100, "s" * 100, 999_999_999)
    url = signer.notify_url(BASE, "S" * 200, longest)
    assert len(url) <= MAX_NOTIFY_URL
    query = parse_qs(urlsplit(url).query)
    assert signer.verify("S" * 200, query["app_state"][0], query["sig"][0]) == longest


# -- looks_like_ours --------------------------------------------------------------------------


@pytest.mark.parametrize("text", ["main-menu:menu:1", "a:b:0", "x.y:z_1:123456789"])
def test_looks_like_ours(text: str) -> None:
    assert looks_like_ours(text)


@pytest.mark.parametrize(
    "text", ["", "hello", "order=123", "a:b", "a:b:c", "{json: 1}", "a:b:1:extra", "https://x/y"]
)
def test_foreign_app_state_does_not_look_like_ours(text: str) -> None:
    assert not looks_like_ours(text)
