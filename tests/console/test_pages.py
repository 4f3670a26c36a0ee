"""The console's pages after real webhooks: conversations, webhooks explained, the outbox and
a dead call sent again, the rules with their diagrams, coverage and reload problems."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient

from responder.testing.fakes import FakeProvider
from responder.transcripts.report import write_coverage
from responder.transcripts.run import run_all
from responder.web.server import STORE, TIMERS
from tests.conftest import wait_for
from tests.console.conftest import EXAMPLES, ConsoleFactory

CONTACT = "+6591234567"
LINK = re.compile(r'href="(/console/conversations/[^"]+)"')
TRACE = re.compile(r'href="(/console/webhooks/[^"]+)"')


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


async def sms(client: TestClient[Any, Any], text: str, n: int, contact: str = CONTACT) -> None:
    form = {
        "event": "mo_sms",
        "sms": str(n),
        "phone": contact,
        "relayer": "1",
        "relayer_phone": "+6531234567",
        "text": text,
    }
    resp = await client.post("/webhooks/textit", data=form)
    assert resp.status == 200, await resp.text()


async def page(client: TestClient[Any, Any], path: str, status: int = 200) -> str:
    resp = await client.get(path)
    text = await resp.text()
    assert resp.status == status, text[:2000]
    return text


async def test_a_conversation_shows_its_state_variables_timer_and_steps(
    console: ConsoleFactory,
) -> None:
    clock = Clock()
    client = await console(clock=clock)
    await sms(client, "JOIN", 1)
    clock.now += 60
    await sms(client, "4", 2)
    await sms(client, "JOIN", 3, contact="+6590000001")
    listing = await page(client, f"/console/conversations?contact={CONTACT}")
    assert listing.count("conversation-link") == 1
    assert "<code>recommend</code>" in listing
    everyone = await page(client, "/console/conversations")
    assert everyone.count("conversation-link") == 2
    detail = await page(client, LINK.search(listing).group(1))  # type: ignore[union-attr]
    assert '<code id="state">recommend</code>' in detail
    assert '<dd id="dialogue">survey</dd>' in detail
    assert "<th>rating</th><td><code>4</code></td>" in detail
    assert '<dd id="step">2' in detail
    due = "2027-01-15 09:01:00"  # the reminder, an hour after the answer at 08:01
    assert f"due {due} UTC" in detail
    history = detail.split('id="history"', 1)[1]
    assert history.index("“4”") < history.index("“JOIN”")  # newest first
    assert "<code>rating</code> → <code>recommend</code>" in history
    assert "<code>(start)</code> → <code>rating</code>" in history
    assert "class s" in detail
    assert "current" in detail
    # A timer's firing is a step of its own.
    clock.now += 3600
    await client.server.app[TIMERS].fire_due()
    detail = await page(client, LINK.search(listing).group(1))  # type: ignore[union-attr]
    assert '<code id="state">recommend-reminder</code>' in detail
    assert "timer (step 2)" in detail


async def test_unknown_or_forged_links_are_404(console: ConsoleFactory) -> None:
    client = await console()
    await page(client, "/console/conversations/not-a-reference", 404)
    await page(client, "/console/webhooks/0123456789abcdef", 404)


async def test_a_masked_console_never_shows_a_full_number(console: ConsoleFactory) -> None:
    client = await console(log_contacts="masked")
    await sms(client, "JOIN", 1)
    listing = await page(client, f"/console/conversations?contact={CONTACT}")
    assert "+65*****567" in listing
    seen = [listing]
    seen.append(await page(client, LINK.search(listing).group(1)))  # type: ignore[union-attr]
    hooks = await page(client, "/console/webhooks")
    seen.append(hooks)
    seen.append(await page(client, TRACE.search(hooks).group(1)))  # type: ignore[union-attr]
    for text in seen:
        assert "6591234567" not in text
        assert "+65*****567" in text


async def test_a_webhook_is_explained_with_the_rules_tried(console: ConsoleFactory) -> None:
    client = await console()
    await sms(client, "JOIN", 1)
    await sms(client, "hello", 2, contact="+6590000002")
    hooks = await page(client, "/console/webhooks")
    assert hooks.count("webhook-link") == 2
    links = TRACE.findall(hooks)
    joined = await page(client, links[1])  # oldest last
    assert "rule &#39;survey-join&#39; matched" in joined
    assert "dialogue &#39;survey&#39;: started in state &#39;rating&#39;" in joined
    assert "replied: &#34;Thanks for joining our survey!" in joined
    assert '<tr class="matched"><td>survey-join</td>' in joined
    assert 'id="conversation-link"' in joined
    hello = await page(client, links[0])
    assert "no rule or dialogue took this sms.received event" in hello
    assert '<tr class="not-matched"><td>survey-join</td>' not in hello  # indexed away
    filtered = await page(client, "/console/webhooks?contact=%2B6590000002")
    assert filtered.count("webhook-link") == 1


async def test_a_dead_call_is_retried_from_the_page_and_delivered(
    console: ConsoleFactory, fake_hoiio: FakeProvider
) -> None:
    client = await console(EXAMPLES / "ivr-menu")
    fake_hoiio.behaviour.hoiio_status = "error_insufficient_credit"  # not worth retrying
    answer = {"session": "S-1", "txn_ref": "AA-1", "from": CONTACT, "to": "+6531234567"}
    resp = await client.post("/webhooks/hoiio", data={"ivr_block": "answer", **answer})
    assert resp.status == 200
    store = client.server.app[STORE]
    await wait_for(lambda: len(fake_hoiio.requests) == 1, what="the first try")
    for _ in range(100):
        if await store.outbox("dead", 1):
            break
        await wait_for(lambda: True)
    outbox = await page(client, "/console/outbox")
    assert '<span class="status dead">1 dead</span>' in outbox
    assert "error_insufficient_credit" in outbox
    assert "ivr/middle/gather" in outbox
    key = re.search(r'name="key" value="([^"]+)"', outbox).group(1)  # type: ignore[union-attr]
    assert "token-secret-1" not in outbox  # credentials are added when sending, never shown
    fake_hoiio.behaviour.hoiio_status = "success_ok"
    resp = await client.post(
        "/console/outbox/retry",
        data={"key": key, "csrf": client.csrf},  # type: ignore[attr-defined]
        allow_redirects=False,
    )
    assert resp.status == 303
    assert "requeued+1+dead+item" in resp.headers["Location"]
    await wait_for(lambda: len(fake_hoiio.requests) == 2, what="the retry")
    assert fake_hoiio.requests[1].path == "/open/ivr/middle/gather"
    for _ in range(100):
        if await store.outbox("sent", 1):
            break
        await wait_for(lambda: True)
    outbox = await page(client, "/console/outbox")
    assert '<span class="status dead">0 dead</span>' in outbox
    assert f'class="item sent" data-key="{key}"' in outbox


async def test_the_rules_page_draws_dialogues_with_coverage_and_lists_reload_problems(
    console: ConsoleFactory, tmp_path: Path
) -> None:
    rules = tmp_path / "rules"
    shutil.copytree(EXAMPLES / "sms-survey", rules)
    client = await console(rules)
    text = await page(client, "/console/rules")
    assert "No test coverage to show" in text
    assert "stateDiagram-v2" in text
    assert "title: survey" in text
    assert "classDef" not in text
    # The coverage of a test run, written where the console looks.
    results, _ = await run_all([rules])
    write_coverage(results, tmp_path / "coverage.json")
    text = await page(client, "/console/rules")
    assert "coverage: rules 1/1 (100%)" in text
    assert "classDef covered" in text
    assert "classDef uncovered" not in text
    assert '<span class="status covered">matched</span>' in text
    # A broken rule file: the reload is refused and its problems are listed.
    (rules / "broken.yaml").write_text("rules:\n  - name: x\n    on: sms.nonsense\n")
    csrf = client.csrf  # type: ignore[attr-defined]
    resp = await client.post("/console/rules/reload", data={"csrf": csrf}, allow_redirects=False)
    text = await page(client, resp.headers["Location"])
    assert "reload refused" in text
    assert 'id="problems"' in text
    assert "broken.yaml:3:" in text
    (rules / "broken.yaml").unlink()
    resp = await client.post("/console/rules/reload", data={"csrf": csrf}, allow_redirects=False)
    text = await page(client, resp.headers["Location"])
    assert "reloaded" in text
    assert 'id="problems"' not in text
