"""How much text one SMS send may carry: Hoiio sends at most 3 parts, 459 characters of the
GSM 7-bit alphabet (153 a part) or 201 when the text needs unicode (67 a part)."""

from __future__ import annotations

from typing import Final

HOIIO_PARTS: Final = 3
GSM_LIMIT: Final = 153 * HOIIO_PARTS  # 459
UNICODE_LIMIT: Final = 67 * HOIIO_PARTS  # 201
# GSM 03.38: the basic alphabet (one septet each) and its extension table (two: escape + char).
GSM_BASIC: Final = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?¡"
    "ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)
GSM_EXTENDED: Final = frozenset("^{}\\[~]|€\f")


def gsm_length(text: str) -> int | None:
    """Septets ``text`` takes in the GSM alphabet, or None when it needs unicode."""
    length = 0
    for char in text:
        if char in GSM_BASIC:
            length += 1
        elif char in GSM_EXTENDED:
            length += 2
        else:
            return None
    return length


def hoiio_size(text: str) -> tuple[int, int]:
    """(size, limit) of ``text`` as Hoiio counts it: GSM septets against 459, or UTF-16
    code units against 201 when it needs unicode."""
    septets = gsm_length(text)
    if septets is not None:
        return septets, GSM_LIMIT
    return len(text.encode("utf-16-le")) // 2, UNICODE_LIMIT


def fit_hoiio(text: str) -> str:
    """``text`` cut to what one Hoiio ``sms/send`` carries (unchanged when it fits)."""
    size, limit = hoiio_size(text)
    if size <= limit:
        return text
    out: list[str] = []
    used = 0
    unicode = limit == UNICODE_LIMIT
    for char in text:
        cost = (2 if ord(char) > 0xFFFF else 1) if unicode else (2 if char in GSM_EXTENDED else 1)
        if used + cost > limit:
            break
        out.append(char)
        used += cost
    return "".join(out)
