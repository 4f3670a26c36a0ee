"""Signed pass-on state for Hoiio ``notify_url``: which dialogue, state and step a call is in.

The signature binds the state to the IVR session, so a state copied from another call, or
edited, is refused.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass
from typing import Final
from urllib.parse import quote_plus

from responder.errors import AppStateError

# Hoiio refuses a notify_url over 4,000 characters.
MAX_NOTIFY_URL: Final = 4000
_PART = re.compile(r"[A-Za-z0-9_.-]{1,100}")
# ASCII digits only: str.isdigit() also accepts superscripts (which int() refuses) and
# other scripts' digits.
_SEQ = re.compile(r"[0-9]{1,9}")
_REF = re.compile(r"[a-f0-9]{16}")
SIG_CHARS: Final = 32


@dataclass(frozen=True, slots=True)
class AppState:
    """``dialogue:state:step``, plus ``:ref`` for calls we dialled (no session known yet)."""

    dialogue: str
    state: str
    seq: int
    ref: str | None = None

    def encode(self) -> str:
        base = f"{self.dialogue}:{self.state}:{self.seq}"
        return f"{base}:{self.ref}" if self.ref else base

    @classmethod
    def decode(cls, text: str) -> AppState:
        parts = text.split(":")
        if len(parts) not in (3, 4) or not all(_PART.fullmatch(p) for p in parts[:2]):
            raise AppStateError(f"malformed app_state {text[:120]!r}")
        if not _SEQ.fullmatch(parts[2]):
            raise AppStateError(f"malformed app_state step {parts[2][:20]!r}")
        ref = parts[3] if len(parts) == 4 else None
        if ref is not None and not _REF.fullmatch(ref):
            raise AppStateError(f"malformed app_state ref {ref[:40]!r}")
        state = cls(parts[0], parts[1], int(parts[2]), ref)
        # The signature covers encode(): only the one spelling of a state may carry it
        # (``menu:01`` would otherwise pass with the signature of ``menu:1``).
        if state.encode() != text:
            raise AppStateError(f"app_state not in canonical form {text[:120]!r}")
        return state


def looks_like_ours(text: str) -> bool:
    """Whether ``text`` has the shape of a state this server writes (signed or not)."""
    try:
        AppState.decode(text)
    except AppStateError:
        return False
    return True


class Signer:
    """HMAC-SHA256 over ``session|app_state`` with a server-side key."""

    def __init__(self, key: bytes) -> None:
        if len(key) < 16:
            raise ValueError("app_state signing key must be at least 16 bytes")
        # Keyed once: each signature copies it rather than hashing the key again.
        self._mac = hmac.new(key, digestmod=hashlib.sha256)

    def sign(self, session: str, state: AppState) -> str:
        return self._sign(session, state.encode())

    def _sign(self, session: str, encoded: str) -> str:
        mac = self._mac.copy()
        mac.update(f"{session}|{encoded}".encode())
        return mac.hexdigest()[:SIG_CHARS]

    def verify(self, session: str | None, app_state: str | None, sig: str | None) -> AppState:
        """The decoded state if ``sig`` is right for this session, else AppStateError."""
        if not app_state:
            raise AppStateError("no app_state")
        if not sig:
            raise AppStateError("app_state without signature")
        if not session:
            raise AppStateError("app_state without session")
        state = AppState.decode(app_state)
        # Bytes, not str: compare_digest refuses str with non-ASCII characters.
        given = sig.lower().encode("utf-8", "replace")
        if hmac.compare_digest(self.sign(session, state).encode(), given):
            return state
        # The first block of a call we dialled was signed before Hoiio gave it a session.
        if (
            state.ref is not None
            and state.seq == 1
            and hmac.compare_digest(self.sign("", state).encode(), given)
        ):
            return state
        raise AppStateError("app_state signature does not match")

    def notify_url(self, base: str, session: str, state: AppState) -> str:
        """``base`` with the signed pass-on parameters added to its query string."""
        encoded = state.encode()
        # What urlencode() writes for these two values (the signature is hex already).
        query = f"app_state={quote_plus(encoded, safe='')}&sig={self._sign(session, encoded)}"
        url = f"{base}{'&' if '?' in base else '?'}{query}"
        if len(url) > MAX_NOTIFY_URL:
            raise AppStateError(
                f"notify_url would be {len(url)} characters (Hoiio limit {MAX_NOTIFY_URL})"
            )
        return url
