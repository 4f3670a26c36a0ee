"""``responder simulate``: talk to a rule set from the terminal, as an SMS contact or a caller.

A real responder server runs in-process on a loopback port, with fake Hoiio and TextIt APIs
beside it, so every reply and every IVR block the rules produce can be shown — no
credentials, no network, no phone.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import ip_network
from typing import IO, Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from responder.rules.model import RuleSet
from responder.settings import Settings
from responder.testing.fakes import FakeProvider, Recorded
from responder.web.server import STORE, TIMERS, create_app

_WAIT = re.compile(r"^/wait\s+(\d+)\s*([smhd]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
HELP = "Type a message (or keys in a call). /wait 1h moves the clock on; /quit ends."


@dataclass
class Clock:
    """Real time plus an offset the user moves with /wait."""

    offset: float = 0.0

    def __call__(self) -> float:
        return time.time() + self.offset


@dataclass
class Simulator:
    rules: RuleSet
    out: IO[str]
    read_line: Callable[[], str]
    contact: str = "+6591234567"
    number: str = "+6531234567"
    provider: str = "textit"
    clock: Clock = field(default_factory=Clock)
    _ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    async def run(self, call: bool) -> int:
        hoiio = await FakeProvider("hoiio").start()
        textit = await FakeProvider("textit").start()
        http = await FakeProvider("http").start()
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        base = f"http://127.0.0.1:{port}"
        settings = Settings(
            rules=("<simulate>",),
            store="memory://",
            public_url=base,
            hoiio_app_id="simulator",
            hoiio_access_token="simulator-token",  # noqa: S106 - goes to the local fake
            hoiio_api_url=hoiio.url,
            textit_api_token="simulator-token",  # noqa: S106 - goes to the local fake
            capture_http_url=http.url,
            # Only this process talks to the simulated server.
            allow_ips=(ip_network("127.0.0.1/32"),),
            textit_api_url=textit.url,
        )
        app = create_app(settings, rules=self.rules, clock=self.clock)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.SockSite(runner, sock).start()
        self.fakes = (hoiio, textit, http)
        self.seen = 0
        try:
            async with aiohttp.ClientSession(base) as session:
                self.session = session
                self.app = app
                if call:
                    return await self._call()
                return await self._sms()
        finally:
            await runner.cleanup()
            for fake in self.fakes:
                await fake.stop()

    # -- SMS -------------------------------------------------------------------------------

    async def _sms(self) -> int:
        self._say(f"SMS with the rules as {self.contact} via {self.provider}. {HELP}")
        while True:
            line = await self._input("you> ")
            if line is None or line.strip() == "/quit":
                return 0
            if await self._command(line):
                continue
            if self.provider == "textit":
                data = {
                    "event": "mo_sms",
                    "sms": str(next(self._ids)),
                    "phone": self.contact,
                    "relayer": "1",
                    "relayer_phone": self.number,
                    "text": line,
                }
            else:
                data = {
                    "txn_ref": f"AA-SI-{next(self._ids)}",
                    "msg": line,
                    "from": self.contact,
                    "to": self.number,
                    "date": time.strftime("%Y-%m-%d %H:%M:%S"),
                }
            async with self.session.post(f"/webhooks/{self.provider}", data=data) as resp:
                body = await resp.json() if resp.content_type == "application/json" else None
            if isinstance(body, dict) and "text" in body:
                self._say(f"bot> {body['text']}")
            await self._show_calls()

    async def _command(self, line: str) -> bool:
        match = _WAIT.match(line.strip())
        if not match:
            return False
        self.clock.offset += int(match.group(1)) * _UNITS[match.group(2)]
        self._say(f"(clock moved on {match.group(1)}{match.group(2) or 's'})")
        await self.app[TIMERS].fire_due()
        await self._show_calls()
        return True

    async def _show_calls(self) -> None:
        await self._settle()
        for request in self._new_requests():
            self._say(_describe(request))

    # -- calls -----------------------------------------------------------------------------

    async def _call(self) -> int:
        self._say(
            f"Calling {self.number} from {self.contact}. Type the keys you press; "
            "an empty line is silence. /quit hangs up."
        )
        session_id = f"SIM-{int(time.time())}"
        common = {
            "session": session_id,
            "txn_ref": f"AA-{session_id}",
            "from": self.contact,
            "to": self.number,
        }
        await self._post(
            "/webhooks/hoiio", {"ivr_block": "answer", "call_state": "ringing", **common}
        )
        while True:
            block = await self._next_block()
            if block is None:
                self._say("(no more blocks: the rules left the caller in silence)")
                return 1
            endpoint = block.path.removeprefix("/open/")
            msg = block.params.get("msg", "")
            if msg and endpoint != "sms/send":  # an SMS is shown once, as an SMS, below
                self._say(f"bot says> {msg}")
            notify = block.params.get("notify_url")
            if endpoint == "ivr/end/hangup":
                self._say("(the bot hung up)")
                return 0
            if endpoint == "sms/send":
                self._say(f"(SMS to {block.params.get('dest')}: {msg})")
                continue
            if endpoint == "ivr/end/transfer":
                line = await self._input(
                    f"(transferring to {block.params.get('dest')}) answered? [y/N] "
                )
                if line is None or line.strip() == "/quit":
                    await self._post(notify, {"call_state": "ended", **common})
                    return 0
                if line.strip().lower().startswith("y"):
                    self._say("(transfer answered: the call continues with them)")
                    await self._post(notify, {"call_state": "ended", **common})
                    return 0
                await self._post(
                    notify,
                    {
                        "ivr_block": "transfer",
                        "transfer_status": "busy",
                        "dest": block.params.get("dest", ""),
                        **common,
                    },
                )
                continue
            if notify is None:
                self._say(f"({endpoint} without notify_url: Hoiio would hang up here)")
                return 0
            params: dict[str, str] = dict(common)
            if endpoint == "ivr/middle/gather":
                line = await self._input("keys> ")
                if line is None or line.strip() == "/quit":
                    await self._post(notify, {"call_state": "ended", **common})
                    return 0
                params.update(ivr_block="gather", digits=line.strip())
            elif endpoint == "ivr/middle/record":
                line = await self._input("(recording; press Enter to finish) ")
                if line is None or line.strip() == "/quit":
                    await self._post(notify, {"call_state": "ended", **common})
                    return 0
                params.update(
                    ivr_block="record", record_url=f"https://recordings.invalid/{session_id}.mp3"
                )
            else:
                params["ivr_block"] = endpoint.rsplit("/", 1)[-1]
            await self._post(notify, params)

    async def _next_block(self) -> Recorded | None:
        for _ in range(250):
            fresh = self._new_requests(limit=1)
            if fresh:
                return fresh[0]
            await asyncio.sleep(0.02)
        return None

    # -- plumbing --------------------------------------------------------------------------

    async def _post(self, url: str | None, data: dict[str, str]) -> None:
        if url is None:
            return
        parts = urlsplit(url)
        target = f"{parts.path}?{parts.query}" if parts.query else parts.path
        async with self.session.post(target, data=data) as resp:
            if resp.status != 200:
                self._say(f"(server answered {resp.status}: {await resp.text()})")

    async def _settle(self) -> None:
        """Wait until the outbox has nothing pending (deliveries run in the background)."""
        store = self.app[STORE]
        for _ in range(200):
            if not await store.outbox(status="pending", limit=1):
                return
            await asyncio.sleep(0.01)

    def _new_requests(self, limit: int | None = None) -> list[Recorded]:
        everything = sorted((r for f in self.fakes for r in f.requests), key=lambda r: r.at)
        fresh = everything[self.seen :]
        if limit is not None:
            fresh = fresh[:limit]
        self.seen += len(fresh)
        return fresh

    async def _input(self, prompt: str) -> str | None:
        self.out.write(prompt)
        self.out.flush()
        line = await asyncio.get_running_loop().run_in_executor(None, self.read_line)
        if line == "":
            self.out.write("\n")
            return None
        return line.rstrip("\n")

    def _say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()


def _describe(request: Recorded) -> str:
    path = request.path
    if path.endswith("/sms/send"):
        return f"bot (SMS via Hoiio)> {request.params.get('msg', '')}"
    if path.endswith("broadcasts.json") and isinstance(request.json, dict):
        return f"bot (SMS via TextIt)> {request.json.get('text', '')}"
    payload: Any = request.json if request.json is not None else request.params
    return f"(call {request.method} {path} {payload})"
