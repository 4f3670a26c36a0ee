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
from aiohttp.typedefs import Handler

from responder import __version__
from responder.appstate import AppState, Signer, looks_like_ours
from responder.clients.delivery import Delivery
from responder.dialogues.runner import Runner
from responder.errors import (
    AppStateError,
    BadRequest,
    ResponderError,
    StoreError,
    Unauthorized,
)
from responder.events import Event
from responder.providers import PROVIDERS
from responder.providers.base import WebhookRequest
from responder.retention import Retention
from responder.rules.loader import load_rules
from responder.rules.model import RuleSet
from responder.runtime.engine import Engine
from responder.runtime.handling import Handled, Handling
from responder.runtime.locks import KeyedLocks
from responder.runtime.outcome import Outcome
from responder.runtime.timers import TimerWorker
from responder.settings import Settings
from responder.stores import open_store
from responder.stores.base import Store
from responder.web.auth import (
    SECRET_PARAMS,
    check_address,
    check_secret,
    check_signature,
    client_address,
    open_channels,
)
from responder.web.logs import TRACE_HEADER, TRACE_ID, new_trace_id
from responder.web.metered import MeteredSender
from responder.web.metrics import CONTENT_TYPE_LATEST, Metrics, action, authorized
from responder.web.observe import Observer
from responder.web.parser_errors import SERVER_LOGGER, MalformedRequests
from responder.web.recording import Record, Recorder, redact_body, redact_pairs
from responder.web.reload import Reloader
from responder.web.startup import StopSignals, open_recording, public_url_warning
from responder.web.trace import WebhookTrace
from responder.web.workers import Role

log = logging.getLogger("responder.server")
trace_log = logging.getLogger("responder.trace")

SETTINGS = web.AppKey("settings", Settings)
STORE = web.AppKey("store", Store)
INITIAL_RULES = web.AppKey("initial_rules", RuleSet)
# Built when the application starts, once the store has given the app_state signing key:
SIGNER = web.AppKey("signer", Signer)
ENGINE = web.AppKey("engine", Engine)
HANDLING = web.AppKey("handling", Handling)
DELIVERY = web.AppKey("delivery", Delivery)
LOCKS = web.AppKey("locks", KeyedLocks)
CLOCK: web.AppKey[Callable[[], float]] = web.AppKey("clock")

TIMERS = web.AppKey("timers", TimerWorker)
METRICS = web.AppKey("metrics", Metrics)
RELOADER = web.AppKey("reloader", Reloader)
RECORDER: web.AppKey[Recorder | None] = web.AppKey("recorder")
# Told of every webhook and timer handled (the console sets one; None costs nothing).
OBSERVER: web.AppKey[Observer | None] = web.AppKey("observer")
# One of the workers of ``serve --workers``, or None for the one process serving alone.
ROLE: web.AppKey[Role | None] = web.AppKey("role")

LINGER = 2.0  # seconds the rest of an unread body is drained after an early answer
REFUSED_REASONS = {404: "unknown_channel", 405: "method", 413: "too_large"}


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The one place where errors become HTTP answers; every answer carries its trace id."""
    trace_id = new_trace_id(request.headers.get("X-Request-Id"))
    token = TRACE_ID.set(trace_id)
    try:
        response = await _answer(request, handler)
    except web.HTTPException as exc:
        refused = request.app[METRICS].refused
        refused.labels(REFUSED_REASONS.get(exc.status, f"http_{exc.status}")).inc()
        exc.headers[TRACE_HEADER] = trace_id
        raise
    finally:
        TRACE_ID.reset(token)
    response.headers[TRACE_HEADER] = trace_id
    return response


async def _answer(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        return await handler(request)
    except web.HTTPException:
        raise
    except BadRequest as exc:
        log.warning("bad request on %s: %s", request.path, exc.reason)
        _refused(request, "bad_request")
        return web.json_response({"error": exc.reason}, status=400)
    except Unauthorized as exc:
        log.warning("refused request on %s: %s", request.path, exc.reason)
        request.app[METRICS].refused.labels(
            "unauthorized" if exc.status == 401 else "forbidden"
        ).inc()
        return web.json_response({"error": exc.reason}, status=exc.status)
    except StoreError as exc:
        log.error("store unavailable: %s", exc)
        _refused(request, "store_unavailable")
        return web.json_response({"error": "temporarily unavailable"}, status=503)
    except ResponderError as exc:
        log.error("error on %s: %s", request.path, exc)
        _refused(request, "error")
        return web.json_response({"error": "internal error"}, status=500)


def _refused(request: web.Request, reason: str) -> None:
    request.app[METRICS].refused.labels(reason).inc()


async def webhook(request: web.Request) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    channel = request.match_info["channel"]
    # Refusals come before anything is read or written: they have no side effect at all.
    if settings.allow_ips:
        address = client_address(
            request.remote, request.headers.getall("X-Forwarded-For", []), settings.trusted_proxies
        )
        check_address(settings, address)
    provider_name = settings.channels.get(channel)
    if provider_name is None:
        raise web.HTTPNotFound(text=f"no channel named {channel!r}")
    allowed = PROVIDERS[provider_name].methods
    if request.method not in allowed:
        raise web.HTTPMethodNotAllowed(request.method, sorted(allowed))
    started = time.perf_counter()
    try:
        return await _webhook(request, channel, provider_name, started)
    finally:
        app[METRICS].webhook_seconds.labels(channel).observe(time.perf_counter() - started)


async def _webhook(
    request: web.Request, channel: str, provider_name: str, started: float
) -> web.StreamResponse:
    app = request.app
    settings = app[SETTINGS]
    check_secret(settings, channel, request.query)
    provider = PROVIDERS[provider_name]
    try:
        if request.content.is_eof():  # all of the body is here: reading it cannot wait
            body = await request.read()
        else:
            async with asyncio.timeout(settings.body_timeout):
                body = await request.read()
    except TimeoutError:
        # A body that never ends (fewer bytes than Content-Length, a chunked body without its
        # last chunk) would hold the connection and its descriptor for as long as the sender
        # likes.
        log.warning(
            "body not received within %g s on %s: refused", settings.body_timeout, request.path
        )
        app[METRICS].refused.labels("body_timeout").inc()
        response = web.json_response({"error": "request body timed out"}, status=408)
        response.force_close()
        return response
    except web.RequestPayloadError:
        # aiohttp decompresses per Content-Encoding while reading; a body that does not
        # decompress is the sender's mistake, not ours.
        raise BadRequest("the body cannot be decoded as its Content-Encoding says") from None
    check_signature(settings, channel, request.headers, body)
    query = tuple((k, v) for k, v in request.query.items() if k not in SECRET_PARAMS)
    content_type = _content_type(request)
    wreq = WebhookRequest(
        query=query,
        body=body,
        content_type=content_type,
        headers=request.headers,
        method=request.method,
    )
    recorder = app[RECORDER]
    if recorder is not None:
        recorder.write(
            Record(
                app[CLOCK](),
                channel,
                provider_name,
                tuple(redact_pairs(list(request.query.items()))),
                redact_body(body, content_type),
                content_type,
                TRACE_ID.get(),
                request.method,
            )
        )
    event = provider.parse(channel, wreq)
    metrics = app[METRICS]
    metrics.events.labels(event.provider, channel, event.kind).inc()
    for note in event.notes:
        log.warning("%s webhook: %s", channel, note)
    if event.kind == "unknown":
        log.info("%s webhook: unknown event %r ignored", channel, event.provider_event)
    app_state = _verified_state(app, event)
    key = provider.idempotency_key(event, wreq)
    handled = await app[HANDLING].webhook(provider, event, key, app_state)
    if handled.outcome is None:
        _duplicate(app, event, key, started)
    else:
        _handled(app, event, key, handled, started)
    stored = handled.response
    return web.Response(
        status=stored.status, body=stored.body, headers={"Content-Type": stored.content_type}
    )


def _content_type(request: web.Request) -> str:
    """The media type of the request, lower-cased (``application/octet-stream`` when none).

    Not ``request.content_type``: aiohttp parses it with the e-mail header parser, which
    raises on some malformed values (``Content-Type: ;0*``), and a sender's typo is no crash.
    """
    media = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
    return media or "application/octet-stream"


def _verified_state(app: web.Application, event: Event) -> AppState | None:
    """The pass-on state of a Hoiio notification, verified; forged or unsigned is refused."""
    if event.provider != "hoiio" or event.app_state is None:
        return None
    if not event.raw.get("sig") and not looks_like_ours(event.app_state):
        # Somebody else's pass-on parameter (another app on the same number): not ours to
        # verify, and it carries no dialogue state.
        return None
    try:
        return app[SIGNER].verify(event.session, event.app_state, event.raw.get("sig"))
    except AppStateError as exc:
        raise Unauthorized(f"app_state refused: {exc}", status=403) from None


def _duplicate(app: web.Application, event: Event, key: str, started: float) -> None:
    app[METRICS].duplicates.labels(event.channel).inc()
    timings = {"total": time.perf_counter() - started}
    trace = WebhookTrace(event, key, None, fresh=False, masked=_masked(app), timings=timings)
    _log_trace(trace)
    _observe(app, trace)


def _masked(app: web.Application) -> bool:
    return app[SETTINGS].log_contacts == "masked"


def _log_trace(trace: WebhookTrace) -> None:
    # The trace is the message (str() of it) and the fields: each built only if written.
    if trace_log.isEnabledFor(logging.INFO):
        trace_log.handle(trace.record(trace_log, TRACE_ID.get()))


def _count(metrics: Metrics, event: Event, outcome: Outcome, fresh: bool) -> None:
    """Count what one webhook led to (cheap: a few counter increments)."""
    for name in outcome.matched:
        if not name.startswith("dialogue:"):
            metrics.rule_matches.labels(name).inc()
    for name in outcome.limited:
        metrics.rule_limited.labels(name).inc()
    for name in outcome.blanks:
        metrics.blank_texts.labels(name).inc()
    if outcome.errors:
        metrics.errors.inc(len(outcome.errors))
    if outcome.transition is not None:
        metrics.transitions.labels(*outcome.transition).inc()
    if not fresh:
        return
    if outcome.reply_text is not None or outcome.variables is not None:
        metrics.replies.labels(event.channel).inc()
    for call in outcome.calls:
        metrics.queued.labels(call.provider, action(call)).inc()


def _handled(
    app: web.Application, event: Event, key: str, handled: Handled, started: float
) -> None:
    """Count and trace a webhook the pipeline decided and committed."""
    outcome = handled.outcome
    assert outcome is not None
    _count(app[METRICS], event, outcome, handled.fresh)
    timings = {
        "total": handled.committed - started,
        "engine": handled.decided - handled.begun,
        "commit": handled.committed - handled.decided,
    }
    trace = WebhookTrace(
        event, key, outcome, fresh=handled.fresh, masked=_masked(app), timings=timings
    )
    _log_trace(trace)
    _observe(app, trace)


def _observe(app: web.Application, trace: WebhookTrace) -> None:
    observer = app[OBSERVER]
    if observer is not None:
        observer.webhook(trace, TRACE_ID.get(), app[CLOCK]())


async def healthz(request: web.Request) -> web.Response:
    engine = request.app[ENGINE]
    rules = engine.rules
    return web.json_response(
        {
            "status": "ok",
            "version": __version__,
            "rules": len(rules.rules),
            "dialogues": len(rules.dialogues),
        }
    )


async def metrics_endpoint(request: web.Request) -> web.Response:
    app = request.app
    if not authorized(request, app[SETTINGS].metrics_token):
        return web.json_response(
            {"error": "metrics need Authorization: Bearer <RESPONDER_METRICS_TOKEN>"},
            status=401,
            headers={"WWW-Authenticate": "Bearer"},
        )
    metrics = app[METRICS]
    try:
        await metrics.collect_store(app[STORE])
    except StoreError as exc:
        # The counters are still worth reading; the store gauges keep their last values.
        log.error("metrics: store unavailable: %s", exc)
    return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST})


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    store = app[STORE]
    settings = app[SETTINGS]
    recorder = app[RECORDER]
    if recorder is not None:
        open_recording(recorder)
    try:
        await store.open()
        key = settings.state_key.encode() if settings.state_key else await store.secret("app_state")
    except BaseException:
        await store.close()
        if recorder is not None:
            recorder.close()
        raise
    malformed = MalformedRequests()
    logging.getLogger(SERVER_LOGGER).addFilter(malformed)
    session = aiohttp.ClientSession(headers={"User-Agent": f"responder/{__version__}"})
    signer = Signer(key)
    app[SIGNER] = signer
    hoiio_channel = next((n for n, p in settings.channels.items() if p == "hoiio"), "hoiio")
    secrets = {name: s for name in settings.channels if (s := settings.secret_for(name))}
    runner = Runner(signer, settings.public_url, hoiio_channel, secrets)
    engine = Engine(app[INITIAL_RULES], store, runner, app[CLOCK])
    app[ENGINE] = engine
    app[RELOADER] = Reloader(settings.rules, engine, app[METRICS])
    role = app[ROLE]
    if role is None or role.number == 1:  # the other workers would say the same again
        _warn_at_start(settings, engine.rules)
    delivery = Delivery(
        store,
        MeteredSender(settings, session, app[METRICS]),
        settings=settings.delivery,
        clock=app[CLOCK],
    )
    app[DELIVERY] = delivery
    handling = Handling(
        engine, app[LOCKS], clock=app[CLOCK], ttl=settings.idempotency_ttl, dispatch=delivery
    )
    app[HANDLING] = handling
    observer = app[OBSERVER]
    clock = app[CLOCK]
    timers = TimerWorker(
        handling,
        clock=clock,
        fired=None if observer is None else lambda t, h: observer.timer(t, h, clock()),
    )
    app[TIMERS] = timers
    worker = asyncio.create_task(delivery.run(), name="delivery")
    timer_task = asyncio.create_task(timers.run(), name="timers")
    purger = asyncio.create_task(
        _purge(store, app[CLOCK], settings.retention, engine), name="purge"
    )
    reloader = app[RELOADER]
    watcher = asyncio.create_task(reloader.watch(), name="watch") if settings.watch else None
    loop = asyncio.get_running_loop()
    with suppress(NotImplementedError, RuntimeError, ValueError):
        # Only the main thread of a real process can take signals; tests run without.
        loop.add_signal_handler(signal.SIGHUP, reloader.request, "SIGHUP")
    # A worker takes SIGTERM only: its parent passes SIGINT (Ctrl-C) on as SIGTERM.
    stop_on = (signal.SIGTERM,) if role is not None else (signal.SIGTERM, signal.SIGINT)
    StopSignals(settings.delivery.shutdown_grace).install(loop, stop_on)
    try:
        yield
    finally:
        with suppress(NotImplementedError, RuntimeError, ValueError):
            loop.remove_signal_handler(signal.SIGHUP)
        if watcher is not None:
            watcher.cancel()
            with suppress(asyncio.CancelledError):
                await watcher
        await reloader.wait()
        if recorder is not None:
            recorder.close()
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
        logging.getLogger(SERVER_LOGGER).removeFilter(malformed)
        log.info("stopped")


def _warn_at_start(settings: Settings, rules: RuleSet) -> None:
    """Open channels, IVR dialogues without a public URL, and the rules' own warnings."""
    for warning in open_channels(settings):
        log.warning("%s", warning)
    ivr_warning = public_url_warning(settings.public_url, rules)
    if ivr_warning:
        log.warning("%s", ivr_warning)
    for problem in rules.warnings:
        log.warning("%s", problem)


def reload_rules(app: web.Application) -> bool:
    """Load the rules again and swap them in; broken rules are logged and the old ones stay.

    Conversations in progress continue on the new rules when their dialogue and state still
    exist, and end cleanly (with a log line) when they do not.
    """
    return app[RELOADER].reload_now()


async def _purge(
    store: Store, clock: Callable[[], float], retention: Retention, engine: Engine
) -> None:
    while True:
        try:
            removed = await store.purge(clock(), purge_retention(retention, engine.rules))
            if removed:
                log.info("purged %d expired record(s)", removed)
        except StoreError as exc:
            log.error("purge failed: %s", exc)
        await asyncio.sleep(retention.every)


def runner_options(settings: Settings) -> dict[str, object]:
    """What the HTTP server is started with besides the application: the head timeout
    (aiohttp's keep-alive timer runs from the connection or the last answer until a request
    head is complete, however slowly its bytes come); after an early answer (408, 413) the
    rest of a body is read for LINGER seconds at most, so the sender sees the answer rather
    than a reset, before the connection is closed; no access log (queries hold the webhook
    secret)."""
    return {
        "keepalive_timeout": settings.header_timeout,
        "lingering_time": LINGER,
        "access_log": None,
    }


def purge_retention(retention: Retention, rules: RuleSet) -> Retention:
    """The retention the purge applies: hits are kept as long as the longest window that
    counts them (a rule's limit, the compliance cap and loop guard), when that is longer
    than ``RESPONDER_RETAIN_HITS``."""
    windows = [rule.limit.every for rule in rules.rules if rule.limit]
    compliance = rules.compliance
    windows += [w.every for w in (compliance.cap, compliance.loop_guard) if w is not None]
    return retention.keeping_hits(max(windows, default=0.0))


def create_app(
    settings: Settings,
    *,
    rules: RuleSet | None = None,
    store: Store | None = None,
    clock: Callable[[], float] = time.time,
    worker: Role | None = None,
) -> web.Application:
    """Build the application; rules are loaded here (RulesError if they are broken).

    ``worker``: the application is one worker's of ``serve --workers`` (see ``workers``)."""
    ruleset = rules if rules is not None else load_rules(settings.rules)
    store = store if store is not None else open_store(settings.store)
    app = web.Application(client_max_size=settings.max_body_bytes, middlewares=[error_middleware])
    app[SETTINGS] = settings
    app[STORE] = store
    app[CLOCK] = clock
    app[INITIAL_RULES] = ruleset
    app[LOCKS] = KeyedLocks()
    app[ROLE] = worker
    app[METRICS] = Metrics(shared=worker.metrics_dir if worker is not None else None)
    app[OBSERVER] = None
    app[RECORDER] = (
        Recorder(settings.record, settings.record_max_bytes, settings.record_keep)
        if settings.record
        else None
    )
    app.cleanup_ctx.append(_lifecycle)
    # GET for the providers that send it (TextIt flow webhooks); the handler answers 405 to
    # a method the channel's provider never uses.
    app.router.add_post("/webhooks/{channel}", webhook)
    app.router.add_get("/webhooks/{channel}", webhook, allow_head=False)
    app.router.add_get("/healthz", healthz)
    if settings.metrics:
        app.router.add_get("/metrics", metrics_endpoint)
    return app
