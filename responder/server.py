"""The aiohttp application: thin handlers around the providers, the engine and the store."""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable
from contextlib import suppress

import aiohttp
from aiohttp import web

from responder import __version__
from responder.clients.delivery import Delivery
from responder.clients.sender import Sender
from responder.engine import Engine
from responder.errors import BadRequest, ResponderError, StoreError, Unauthorized
from responder.events import Event
from responder.locks import KeyedLocks
from responder.outbound import Commit, StoredResponse
from responder.providers import PROVIDERS
from responder.providers.base import WebhookRequest
from responder.rules.loader import load_rules
from responder.rules.model import RuleSet
from responder.settings import Settings
from responder.stores import open_store
from responder.stores.base import Store

log = logging.getLogger("responder.server")

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
ENGINE = web.AppKey("engine", Engine)
DELIVERY = web.AppKey("delivery", Delivery)
LOCKS = web.AppKey("locks", KeyedLocks)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")

PURGE_EVERY = 3600.0


def conversation_key(event: Event) -> str:
    """Events of one conversation are handled one after the other."""
    if event.session:
        return f"{event.channel}:session:{event.session}"
    return f"{event.channel}:contact:{event.contact or event.contact_uuid or '-'}"


@web.middleware
async def error_middleware(
    request: web.Request, handler: Callable[[web.Request], object]
) -> web.StreamResponse:
    """The one place where errors become HTTP answers."""
    try:
        response = await handler(request)  # type: ignore[misc]
        assert isinstance(response, web.StreamResponse)
        return response
    except web.HTTPException:
        raise
    except BadRequest as exc:
        log.warning("bad request on %s: %s", request.path, exc.reason)
        return web.json_response({"error": exc.reason}, status=400)
    except Unauthorized as exc:
        log.warning("refused request on %s: %s", request.path, exc.reason)
        return web.json_response({"error": exc.reason}, status=exc.status)
    except StoreError as exc:
        log.error("store unavailable: %s", exc)
        return web.json_response({"error": "temporarily unavailable"}, status=503)
    except ResponderError as exc:
        log.error("error on %s: %s", request.path, exc)
        return web.json_response({"error": "internal error"}, status=500)


def _check_secret(settings: Settings, request: web.Request) -> None:
    secret = settings.webhook_secret
    if not secret:
        return
    given = request.query.get("secret") or request.query.get("password") or ""
    if not hmac.compare_digest(given.encode(), secret.encode()):
        raise Unauthorized("missing or wrong webhook secret", status=401 if not given else 403)


async def webhook(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    channel = request.match_info["channel"]
    provider_name = settings.channels.get(channel)
    if provider_name is None:
        raise web.HTTPNotFound(text=f"no channel named {channel!r}")
    _check_secret(settings, request)
    provider = PROVIDERS[provider_name]
    body = await request.read()
    query = tuple((k, v) for k, v in request.query.items() if k not in ("secret", "password"))
    wreq = WebhookRequest(
        query=query, body=body, content_type=request.content_type, headers=dict(request.headers)
    )
    event = provider.parse(channel, wreq)
    for note in event.notes:
        log.warning("%s webhook: %s", channel, note)
    if event.kind == "unknown":
        log.info("%s webhook: unknown event %r ignored", channel, event.provider_event)
    key = provider.idempotency_key(event, wreq)
    store = app[STORE]
    stored = await store.get_response(key)
    if stored is None:
        async with app[LOCKS].hold(conversation_key(event)):
            stored = await store.get_response(key)
            if stored is None:
                stored = await _process(app, event, key)
            else:
                log.info("replayed %s", key)
    else:
        log.info("replayed %s", key)
    return web.Response(
        status=stored.status, body=stored.body, headers={"Content-Type": stored.content_type}
    )


async def _process(app: web.Application, event: Event, key: str) -> StoredResponse:
    engine = app[ENGINE]
    outcome = await engine.handle(event, key)
    provider = PROVIDERS[event.provider]
    reply = provider.reply(event, outcome.reply_text, outcome.variables)
    response = StoredResponse(reply.status, reply.content_type, reply.body)
    commit = Commit(
        key, response, outcome.calls, outcome.hits, app[CLOCK](), app[SETTINGS].idempotency_ttl
    )
    stored, fresh = await app[STORE].commit(commit)
    log.info(
        "%s %s from %s: rules %s, %d call(s)%s",
        event.channel,
        event.kind,
        event.contact,
        list(outcome.matched) or "none",
        len(outcome.calls) if fresh else 0,
        "" if fresh else " (a concurrent delivery answered first)",
    )
    if fresh and outcome.calls:
        app[DELIVERY].wake()
    return stored


async def healthz(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    return web.json_response(
        {"status": "ok", "version": __version__, "rules": len(engine.rules.rules)}
    )


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    await store.open()
    session = aiohttp.ClientSession(headers={"User-Agent": f"responder/{__version__}"})
    delivery = Delivery(store, Sender(app[SETTINGS], session), clock=app[CLOCK])
    app[DELIVERY] = delivery
    worker = asyncio.create_task(delivery.run(), name="delivery")
    purger = asyncio.create_task(_purge(store, app[CLOCK]), name="purge")
    try:
        yield
    finally:
        delivery.stop()
        purger.cancel()
        with suppress(asyncio.CancelledError):
            await purger
        try:
            await asyncio.wait_for(worker, 10)
        except TimeoutError:
            log.warning("delivery still busy at shutdown; pending calls stay in the outbox")
        await session.close()
        await store.close()


async def _purge(store: Store, clock: Callable[[], float]) -> None:
    while True:
        try:
            removed = await store.purge(clock())
            if removed:
                log.info("purged %d expired record(s)", removed)
        except StoreError as exc:
            log.error("purge failed: %s", exc)
        await asyncio.sleep(PURGE_EVERY)


def create_app(
    settings: Settings,
    *,
    rules: RuleSet | None = None,
    store: Store | None = None,
    clock: Callable[[], float] = time.time,
) -> web.Application:
    """Build the application; rules are loaded here (RulesError if they are broken)."""
    ruleset = rules if rules is not None else load_rules(settings.rules)
    store = store if store is not None else open_store(settings.store)
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[STORE] = store
    app[CLOCK] = clock
    app[ENGINE] = Engine(ruleset, store, clock)
    app[LOCKS] = KeyedLocks()
    app.cleanup_ctx.append(_lifecycle)
    app.router.add_post("/webhooks/{channel}", webhook)
    app.router.add_get("/healthz", healthz)
    return app
