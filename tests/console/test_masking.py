"""Masked numbers where the logs mask them, and references that carry no number at all."""

from __future__ import annotations

from responder.console.masking import Masking

SECRET = b"s" * 32


def test_references_come_back_and_carry_no_number() -> None:
    masking = Masking(False, SECRET)
    key = "textit:sms:+6591234567"
    ref = masking.seal(key)
    assert "6591234567" not in ref
    assert masking.unseal(ref) == key
    assert masking.seal(key) == ref  # one conversation, one link
    assert masking.unseal(masking.seal("é:ivr:S-1")) == "é:ivr:S-1"


def test_a_forged_or_foreign_reference_is_refused() -> None:
    masking = Masking(False, SECRET)
    ref = masking.seal("textit:sms:+6591234567")
    flipped = ref[:-3] + ("A" if ref[-3] != "A" else "B") + ref[-2:]
    assert masking.unseal(flipped) is None
    assert Masking(False, b"t" * 32).unseal(ref) is None
    for junk in ["", "abc", "!!!!", "é", "A" * 10]:
        assert masking.unseal(junk) is None


def test_masked_consoles_mask_every_number_they_show() -> None:
    masking = Masking(True, SECRET)
    assert masking.contact("+6591234567") == "+65*****567"
    assert masking.key("textit:sms:+6591234567") == "textit:sms:+65*****567"
    shown = masking.value(
        {"dest": "+6591234567", "urns": ["tel:+6598765432"], "text": "call +6591234567", "n": 4}
    )
    assert shown == {
        "dest": "+65*****567",
        "urns": ["tel:+65*****432"],
        "text": "call +6591234567",  # message texts are shown as the logs show them
        "n": 4,
    }


def test_full_consoles_show_numbers_as_they_are() -> None:
    masking = Masking(False, SECRET)
    assert masking.contact("+6591234567") == "+6591234567"
    assert masking.value({"dest": "+6591234567"}) == {"dest": "+6591234567"}
    assert masking.key("textit:sms:+6591234567") == "textit:sms:+6591234567"
