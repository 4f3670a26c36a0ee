"""The aiohttp application: thin handlers around the providers, the engine and the store."""

from __future__ import annotations

import asyncio
import logging
import signal
import time
from collections.abc import AsyncIterator, Callable
from contextlib import suppress

import aiohttp
from aiohttp import web

from responder import __version__
from responder.appstate import AppState, AppStateError, Signer, looks_like_ours
from responder.auth import (
    SECRET_PARAMS,
    check_address,
    check_secret,
    check_signature,
    client_address,
    open_channels,
)
from responder.clients.delivery import Delivery
from responder.clients.sender import Sender
from responder.conversations import ConflictError
from responder.conversations import conversation_key as conversation_key_of
from responder.dialogues.runner import Runner
from responder.engine import Engine
from responder.errors import BadRequest, ResponderError, RulesError, StoreError, Unauthorized
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
from responder.timers import TimerWorker

log = logging.getLogger("responder.server")

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
ENGINE = web.AppKey("engine", Engine)
DELIVERY = web.AppKey("delivery", Delivery)
LOCKS = web.AppKey("locks", KeyedLocks)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")

TIMERS = web.AppKey("timers", TimerWorker)

PURGE_EVERY = 3600.0
CONFLICT_RETRIES = 5


def conversation_key(event: Event) -> str:
    """Events of one conversation are handled one after the other."""
    if event.session:
        return conversation_key_of(event.channel, None, event.session)
    return conversation_key_of(event.channel, event.contact or event.contact_uuid, None)


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


async def webhook(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    channel = request.match_info["channel"]
    # Refusals come before anything is read or written: they have no side effect at all.
    address = client_address(
        request.remote, request.headers.getall("X-Forwarded-For", []), settings.trusted_proxies
    )
    check_address(settings, address)
    provider_name = settings.channels.get(channel)
    if provider_name is None:
        raise web.HTTPNotFound(text=f"no channel named {channel!r}")
    check_secret(settings, channel, request.query)
    provider = PROVIDERS[provider_name]
    body = await request.read()
    check_signature(settings, channel, request.headers, body)
    query = tuple((k, v) for k, v in request.query.items() if k not in SECRET_PARAMS)
    wreq = WebhookRequest(
        query=query, body=body, content_type=request.content_type, headers=dict(request.headers)
    )
    event = provider.parse(channel, wreq)
    for note in event.notes:
        log.warning("%s webhook: %s", channel, note)
    if event.kind == "unknown":
        log.info("%s webhook: unknown event %r ignored", channel, event.provider_event)
    app_state = _verified_state(app, event)
    key = provider.idempotency_key(event, wreq)
    store = app[STORE]
    stored = await store.get_response(key)
    if stored is None:
        async with app[LOCKS].hold(conversation_key(event)):
            stored = await store.get_response(key)
            if stored is None:
                stored = await _process(app, event, key, app_state)
            else:
                log.info("replayed %s", key)
    else:
        log.info("replayed %s", key)
    return web.Response(
        status=stored.status, body=stored.body, headers={"Content-Type": stored.content_type}
    )


def _verified_state(app: web.Application, event: Event) -> AppState | None:
    """The pass-on state of a Hoiio notification, verified; forged or unsigned is refused."""
    if event.provider != "hoiio" or event.app_state is None:
        return None
    if not event.raw.get("sig") and not looks_like_ours(event.app_state):
        # Somebody else's pass-on parameter (another app on the same number): not ours to
        # verify, and it carries no dialogue state.
        return None
    try:
        return app[ENGINE].runner.signer.verify(
            event.session, event.app_state, event.raw.get("sig")
        )
    except AppStateError as exc:
        raise Unauthorized(f"app_state refused: {exc}", status=403) from None


async def _process(
    app: web.Application, event: Event, key: str, app_state: AppState | None
) -> StoredResponse:
    engine = app[ENGINE]
    provider = PROVIDERS[event.provider]
    for attempt in range(1, CONFLICT_RETRIES + 1):
        outcome = await engine.handle(event, key, app_state)
        reply = provider.reply(event, outcome.reply_text, outcome.variables)
        response = StoredResponse(reply.status, reply.content_type, reply.body)
        commit = Commit(
            key,
            response,
            outcome.calls,
            outcome.hits,
            app[CLOCK](),
            app[SETTINGS].idempotency_ttl,
            outcome.conversation,
            outcome.expected_version,
            outcome.timer,
            outcome.opt_outs,
        )
        try:
            stored, fresh = await app[STORE].commit(commit)
            break
        except ConflictError as exc:
            # Another process moved the conversation on: decide again from its new state.
            log.info("conflict on %s (attempt %d): %s", key, attempt, exc)
    else:
        raise StoreError(f"conversation kept changing under {key}; gave up")
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
    settings = app[SETTINGS]
    key = settings.state_key.encode() if settings.state_key else await store.secret("app_state")
    engine = app[ENGINE]
    hoiio_channel = next((n for n, p in settings.channels.items() if p == "hoiio"), "hoiio")
    secrets = {name: s for name in settings.channels if (s := settings.secret_for(name))}
    engine.runner = Runner(Signer(key), settings.public_url, hoiio_channel, secrets)
    for warning in open_channels(settings):
        log.warning("%s", warning)
    if not settings.public_url and any(d.mode == "ivr" for d in engine.rules.dialogues.values()):
        log.warning(
            "RESPONDER_PUBLIC_URL is not set: IVR dialogues cannot give Hoiio a "
            "notify_url and will hang up"
        )
    delivery = Delivery(
        store, Sender(settings, session), settings=settings.delivery, clock=app[CLOCK]
    )
    app[DELIVERY] = delivery
    timers = TimerWorker(store, engine, app[LOCKS], delivery, clock=app[CLOCK])
    app[TIMERS] = timers
    worker = asyncio.create_task(delivery.run(), name="delivery")
    timer_task = asyncio.create_task(timers.run(), name="timers")
    purger = asyncio.create_task(_purge(store, app[CLOCK]), name="purge")
    loop = asyncio.get_running_loop()
    with suppress(NotImplementedError, RuntimeError, ValueError):
        # Only the main thread of a real process can take signals; tests run without.
        loop.add_signal_handler(signal.SIGHUP, reload_rules, app)
    try:
        yield
    finally:
        with suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
        # The listener is closed by now: claim nothing more, let calls in flight finish
        # within the grace period, and leave everything else in the outbox for the next start.
        delivery.stop()
        timers.stop()
        purger.cancel()
        with suppress(asyncio.CancelledError):
            await purger
        with suppress(asyncio.CancelledError):
            await timer_task
        with suppress(asyncio.CancelledError):
            await worker
        await delivery.shutdown()
        await session.close()
        await store.close()


def reload_rules(app: web.Application) -> bool:
    """Load the rules again and swap them in; broken rules are logged and the old ones stay.

    Conversations in progress continue on the new rules when their dialogue and state still
    exist, and end cleanly (with a log line) when they do not.
    """
    settings = app[SETTINGS]
    try:
        ruleset = load_rules(settings.rules)
    except RulesError as exc:
        for problem in exc.problems:
            log.error("reload refused: %s", problem)
        return False
    app[ENGINE].rules = ruleset
    log.info(
        "rules reloaded: %d rule(s), %d dialogue(s)", len(ruleset.rules), len(ruleset.dialogues)
    )
    return True


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
