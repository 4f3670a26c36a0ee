"""What the console shows of contacts: full numbers, or masked ones as in the logs; and the
opaque references that stand for conversation keys in its links."""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import re
from typing import Any, Final

from responder.web.logs import mask_contact

# A phone number as it appears in contacts, parameters, variables and TextIt URNs.
_NUMBER: Final = re.compile(r"^(tel:|whatsapp:)?\+?\d{6,16}$")
_NONCE: Final = 12


class Masking:
    """Masks numbers when ``masked`` (``RESPONDER_LOG_CONTACTS=masked``); seals references.

    A reference is the key encrypted and authenticated with a key derived from the console
    token (a synthetic-IV construction over HMAC-SHA256): a link never carries a number,
    masked or not, and a reference made with another token is refused.
    """

    def __init__(self, masked: bool, secret: bytes) -> None:
        self.masked = masked
        self._mac = hmac.new(secret, b"responder console: reference mac", hashlib.sha256).digest()
        self._enc = hmac.new(secret, b"responder console: reference enc", hashlib.sha256).digest()

    def contact(self, contact: str | None) -> str | None:
        return mask_contact(contact) if self.masked else contact

    def value(self, value: Any) -> Any:
        """``value`` with every string that looks like a phone number masked (deeply)."""
        if not self.masked:
            return value
        if isinstance(value, str):
            if _NUMBER.match(value):
                scheme, _, number = value.rpartition(":")
                return f"{scheme}:{mask_contact(number)}" if scheme else mask_contact(value)
            return value
        if isinstance(value, dict):
            return {k: self.value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return [self.value(v) for v in value]
        return value

    def key(self, key: str | None) -> str | None:
        """A conversation or timer key (``textit:sms:+6591234567``) with its number masked."""
        if not self.masked or key is None:
            return key
        return ":".join(str(self.value(part)) for part in key.split(":"))

    def seal(self, text: str) -> str:
        data = text.encode()
        nonce = hmac.new(self._mac, data, hashlib.sha256).digest()[:_NONCE]
        return base64.urlsafe_b64encode(nonce + _xor(data, self._stream(nonce, len(data)))).decode()

    def unseal(self, ref: str) -> str | None:
        """The text sealed in ``ref``; None when it is not a reference of this console."""
        try:
            raw = base64.urlsafe_b64decode(ref.encode("ascii"))
        except (binascii.Error, UnicodeEncodeError, ValueError):
            return None
        nonce, body = raw[:_NONCE], raw[_NONCE:]
        if len(nonce) < _NONCE:
            return None
        data = _xor(body, self._stream(nonce, len(body)))
        expected = hmac.new(self._mac, data, hashlib.sha256).digest()[:_NONCE]
        if not hmac.compare_digest(nonce, expected):
            return None
        try:
            return data.decode()
        except UnicodeDecodeError:
            return None

    def _stream(self, nonce: bytes, length: int) -> bytes:
        blocks = [
            hmac.new(self._enc, nonce + n.to_bytes(4, "big"), hashlib.sha256).digest()
            for n in range(length // 32 + 1)
        ]
        return b"".join(blocks)[:length]


def _xor(data: bytes, stream: bytes) -> bytes:
    return bytes(a ^ b for a, b in zip(data, stream, strict=True))
