"""The one renderer of every action kind: replies, SMS, HTTP webhooks and Hoiio IVR blocks.

Rules and dialogue states compile to the same action models (``responder.actions.model``) and
are rendered here, so an ``sms:`` behaves the same wherever it is written. A TemplateError
from any of these aborts the rule or the dialogue step that rendered it.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any, Final

from responder.actions.model import Http, Reply, Sms
from responder.actions.sms_parts import fit_hoiio, hoiio_size
from responder.errors import TemplateError
from responder.outbound import OutboundCall
from responder.templating.templates import Template

log = logging.getLogger("responder.actions")

# Hoiio speaks at most this many characters of a block's ``msg``; longer speech is cut.
HOIIO_MSG_MAX: Final = 1000


def tree(value: Any, context: Mapping[str, Any]) -> Any:
    """A JSON tree with every Template in it rendered."""
    if isinstance(value, Template):
        return value.render(context)
    if isinstance(value, dict):
        return {k: tree(v, context) for k, v in value.items()}
    if isinstance(value, list):
        return [tree(v, context) for v in value]
    return value


def reply(action: Reply, context: Mapping[str, Any]) -> tuple[str | None, Any]:
    """A webhook's answer: its text and its flow variables (either may be None)."""
    text = action.text.render(context) if action.text is not None else None
    variables = tree(action.json, context) if action.json is not None else None
    return text, variables


def address(to: str, urn: str | None = None) -> str:
    """The TextIt URN an SMS goes to: the event's own URN when the SMS goes back to the
    contact who wrote (it may be ``whatsapp:`` or ``telegram:``), else ``to`` itself when it
    is a URN already, else ``tel:`` and the number."""
    if urn:
        return urn
    return to if ":" in to else f"tel:{to}"


def blank(text: str | None) -> bool:
    """A text no provider sends: TextIt refuses a blank text, Hoiio ``error_msg_empty``."""
    return text is not None and not text.strip()


def text_call(
    *, key: str, via: str, to: str, text: str, rule: str, urn: str | None = None
) -> OutboundCall | None:
    """An SMS with a text already rendered: Hoiio ``sms/send`` or a TextIt broadcast; None
    when the text is blank (logged: the provider would refuse it). A text longer than one
    Hoiio send carries is cut to fit (logged)."""
    if not to:
        raise TemplateError("sms has no recipient (the event has no contact and no 'to')")
    if blank(text):
        log.warning("%s: the SMS text rendered empty; not sent", rule)
        return None
    if via == "hoiio":
        fitted = fit_hoiio(text)
        if fitted != text:
            size, limit = hoiio_size(text)
            log.warning(
                "%s: the SMS text is %d characters, more than the %d of 3 Hoiio parts; cut to fit",
                rule,
                size,
                limit,
            )
            text = fitted
        return OutboundCall(
            key=key,
            provider="hoiio",
            endpoint="sms/send",
            params={"dest": to, "msg": text},
            rule=rule,
            contact=to,
        )
    return OutboundCall(
        key=key,
        provider="textit",
        endpoint="broadcasts.json",
        params={"urns": [address(to, urn)], "text": text},
        rule=rule,
        contact=to,
    )


def sms(
    action: Sms,
    context: Mapping[str, Any],
    *,
    key: str,
    rule: str,
    contact: str | None,
    urn: str | None,
    provider: str,
) -> OutboundCall | None:
    """An ``sms:`` action (None when its text is blank). Without ``to`` it goes to
    ``contact`` (at ``urn`` when the event named one); without ``via``, through ``provider``."""
    text = action.text.render(context)
    if action.to is not None:
        to, urn = action.to.render(context).strip(), None
    else:
        to = contact or ""
    return text_call(key=key, via=action.via or provider, to=to, text=text, rule=rule, urn=urn)


def http(
    action: Http, context: Mapping[str, Any], *, key: str, rule: str, contact: str | None
) -> OutboundCall:
    """An ``http:`` action: a call to a webhook of the rule author's own."""
    url = action.url.render(context).strip()
    if not url.startswith(("http://", "https://")):
        raise TemplateError(f"http url {url!r} is not an http(s) URL")
    headers = {name: t.render(context) for name, t in action.headers.items()}
    body = tree(action.json, context) if action.json is not None else None
    return OutboundCall(
        key=key,
        provider="http",
        endpoint=url,
        params={"json": body} if body is not None else {},
        rule=rule,
        contact=contact,
        method=action.method,
        headers=headers,
        timeout=action.timeout,
    )


def speech(say: Template | None, context: Mapping[str, Any], where: str) -> str | None:
    """What an IVR block says, cut to what Hoiio speaks."""
    if say is None:
        return None
    text = say.render(context)
    if len(text) > HOIIO_MSG_MAX:
        log.info("%s: msg cut to %d characters", where, HOIIO_MSG_MAX)
        text = text[:HOIIO_MSG_MAX]
    return text


def ivr_call(
    endpoint: str, params: dict[str, Any], *, key: str, rule: str, lane: str | None
) -> OutboundCall:
    """A Hoiio IVR block (``ivr/middle/*``, ``ivr/end/*``, ``ivr/start/dial``)."""
    return OutboundCall(
        key=key, provider="hoiio", endpoint=endpoint, params=params, rule=rule, contact=lane
    )


def hangup(
    say: Template | None,
    context: Mapping[str, Any],
    *,
    session: str,
    key: str,
    rule: str,
    lane: str | None,
) -> OutboundCall:
    """``ivr/end/hangup``, saying something first when ``say`` is given."""
    params: dict[str, Any] = {"session": session}
    text = speech(say, context, rule)
    if text is not None:
        params["msg"] = text
    return ivr_call("ivr/end/hangup", params, key=key, rule=rule, lane=lane)
