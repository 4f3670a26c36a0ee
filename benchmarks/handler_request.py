"""What ``trace_line.py`` and ``ivr_handler.py`` hand the webhook handler: a ready request."""

from __future__ import annotations

from typing import Any

from multidict import CIMultiDict, CIMultiDictProxy, MultiDict, MultiDictProxy


class _Received:
    """A request's body stream, all of it received."""

    def is_eof(self) -> bool:
        return True


class Request:
    """What the webhook handler reads of a request: a form body posted to ``channel``."""

    remote = "127.0.0.1"
    method = "POST"

    def __init__(self, app: Any, body: bytes, channel: str) -> None:
        self.app = app
        self.body = body
        self.path = f"/webhooks/{channel}"
        self.match_info = {"channel": channel}
        self.headers = CIMultiDictProxy(
            CIMultiDict({"Content-Type": "application/x-www-form-urlencoded"})
        )
        self.query: MultiDictProxy[str] = MultiDictProxy(MultiDict())
        self.content = _Received()

    async def read(self) -> bytes:
        return self.body
