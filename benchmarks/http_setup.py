"""What ``benchmarks/http_bench.py`` runs: generated rule sets, request bodies and the bare server.

``python benchmarks/http_setup.py PORT`` serves the bare aiohttp baseline: parse the form,
answer a fixed JSON reply (what every hand-written webhook app does at the very least).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any
from urllib.parse import quote

RULES_PER_FILE = 1000  # rule files are capped at 2 MiB each
MATCH_WORD = "hello"
# The one rule that matches: a templated reply, last in file order, so that a linear scan
# has to look at every rule of the kind before it.
MATCHING_RULE = """\
  - name: greeting
    on: sms.received
    when: {text: {keyword: [hello, hi]}}
    reply: {text: "Hello {{ contact_name or contact }}, you wrote {{ text|length }} characters:\
 {{ text|upper }}"}
"""
REPLY_PREFIX = "Hello Joe Blow, you wrote"
# Request n comes from contact n % CONTACTS: within a run no contact comes back often enough
# for the loop guard (10 replies a minute) to hold a reply back, so every request renders and
# commits its reply.
CONTACTS = 10_000_000


def _rule(n: int) -> str:
    """Rule ``n`` of a generated set: mostly keywords, some regexes, other kinds and channels."""
    head = f"  - name: r{n}\n"
    shape = n % 20
    if shape == 0:
        # A regex anchored on a literal prefix.
        return (
            head + "    on: sms.received\n"
            f'    when: {{text: {{regex: "^order{n}[ -](?P<number>[0-9]{{3,8}})"}}}}\n'
            f'    reply: {{text: "Order {{{{ captures.number }}}} ({n})"}}\n'
        )
    if shape == 1:
        # A regex with a required literal somewhere inside.
        return (
            head + "    on: sms.received\n"
            f'    when: {{text: {{regex: "(?P<size>small|large) parcel{n}"}}}}\n'
            f'    reply: {{text: "Parcel {n}: {{{{ captures.size }}}}"}}\n'
        )
    if shape == 2:
        return (
            head + "    on: call.missed\n"
            f'    when: {{contact: "+6590{n:06d}"}}\n'
            f'    reply: {{text: "Sorry we missed you ({n})"}}\n'
        )
    if shape == 3:
        return (
            head + "    on: sms.received\n"
            f"    when: {{channel: other{n % 7}, text: {{keyword: [code{n}]}}}}\n"
            f'    reply: {{text: "Code {n} on another channel"}}\n'
        )
    if shape == 4:
        return (
            head + "    on: sms.received\n"
            f"    when: {{text: {{only: [stop{n} please, menu{n}]}}}}\n"
            f'    reply: {{text: "Only {n}"}}\n'
        )
    return (
        head + "    on: sms.received\n"
        f"    when: {{text: {{keyword: [word{n}, alias{n}]}}}}\n"
        f'    reply: {{text: "Rule {n} for {{{{ contact }}}}"}}\n'
    )


def write_rules(directory: Path, count: int) -> Path:
    """``count`` rules (the last one the matching greeting) in files of 1,000 rules."""
    directory.mkdir(parents=True, exist_ok=True)
    generated = count - 1
    for start in range(0, max(generated, 1), RULES_PER_FILE):
        chunk = range(start, min(start + RULES_PER_FILE, generated))
        text = "rules:\n" + "".join(_rule(n) for n in chunk)
        if start + RULES_PER_FILE >= generated:
            text += MATCHING_RULE
        (directory / f"rules-{start // RULES_PER_FILE:03d}.yaml").write_text(text)
    return directory


def textit_parts() -> tuple[str, str, str]:
    """A TextIt ``mo_sms`` form body around a unique message id and a contact number."""
    text = quote(f"{MATCH_WORD} there, what are your opening hours?")
    return (
        "event=mo_sms&relayer=254&channel=254&relayer_phone=%2B250788111111&sms=",
        "&phone=%2B2507881",
        f"&contact_name=Joe+Blow&text={text}&time=2026-11-28T10%3A34%3A34.034000"
        "&status=H&direction=I",
    )


def hoiio_parts() -> tuple[str, str, str]:
    """A Hoiio IVR ``answer`` notification around a unique session and a caller number."""
    return (
        "ivr_block=answer&to=%2B6531234567&txn_ref=AA-I-",
        "&from=%2B659",
        "&session=",
    )


def body(parts: tuple[str, str, str], unique: str, contact: int, hoiio: bool) -> str:
    """One request body; the Hoiio one repeats the unique part as its session."""
    first, middle, last = parts
    text = f"{first}{unique}{middle}{contact:07d}{last}"
    return text + f"S-{unique}" if hoiio else text


def webhook_app(handle: Any) -> Any:
    """An aiohttp app answering POST /webhooks/{channel} with ``handle``, and /healthz."""
    from aiohttp import web

    async def healthz(request: web.Request) -> web.Response:
        return web.json_response({"status": "ok"})

    app = web.Application()
    app.router.add_post("/webhooks/{channel}", handle)
    app.router.add_get("/healthz", healthz)
    return app


def serve(app: Any, port: int) -> None:
    """Run ``app`` on 127.0.0.1:``port`` on the event loop responder runs on here (uvloop when
    installed), for a like comparison."""
    import asyncio

    from aiohttp import web

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from responder.speed import event_loop_policy

    policy = event_loop_policy()
    if policy is not None:
        asyncio.set_event_loop_policy(policy)
    web.run_app(app, host="127.0.0.1", port=port, print=None)


def bare_app() -> Any:
    from aiohttp import web

    reply = {"messages": [{"text": "Hello, this is a fixed reply."}]}

    async def handle(request: web.Request) -> web.Response:
        await request.post()
        return web.json_response(reply)

    return webhook_app(handle)


if __name__ == "__main__":
    serve(bare_app(), int(sys.argv[1]))
