"""The ``responder`` command: the only place that prints or exits."""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import os
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import IO, TYPE_CHECKING

from responder import __version__
from responder.errors import RulesError, SettingsError, StoreError
from responder.printable import Escaping

if TYPE_CHECKING:  # loaded by the commands that need it: `check` and `--help` start fast
    import socket
    from collections.abc import Awaitable, Callable

    from aiohttp import web

    from responder.rules.model import RuleSet
    from responder.settings import Settings
    from responder.stores.base import Store
    from responder.web.workers import Worker


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="responder", description="Rules-driven auto-responder for TextIt and Hoiio webhooks."
    )
    parser.add_argument("--version", action="version", version=f"responder {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="serve webhooks")
    serve.add_argument(
        "--rules",
        action="append",
        metavar="PATH",
        help="rule file or directory (repeatable; default: rules/)",
    )
    serve.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    serve.add_argument("--port", type=int, help="port to listen on (default 8080)")
    serve.add_argument(
        "--store",
        metavar="URL",
        help="memory://, sqlite:///path.db or redis://host:port/db (default sqlite:///responder.db)",
    )
    serve.add_argument("--public-url", help="public base URL of this server")
    serve.add_argument("--log-level", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    serve.add_argument(
        "--log-format", choices=["text", "json"], help="log lines as text (default) or JSON"
    )
    serve.add_argument(
        "--watch",
        action="store_true",
        default=None,
        help="reload the rules when a rule file changes",
    )
    serve.add_argument(
        "--console",
        action="store_true",
        help="serve the web console at /console/ (token: RESPONDER_CONSOLE_TOKEN, else one "
        "made for this run and printed once)",
    )
    serve.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="serve with N processes, one per core (default 1: this process alone)",
    )

    check = sub.add_parser("check", help="validate rule files; print every problem")
    check.add_argument("paths", nargs="+", metavar="PATH")

    sim = sub.add_parser("simulate", help="chat or call the rules from the terminal")
    sim.add_argument(
        "--rules",
        action="append",
        metavar="PATH",
        help="rule file or directory (repeatable; default: rules/)",
    )
    sim.add_argument("--call", action="store_true", help="place a Hoiio IVR call")
    sim.add_argument(
        "--provider",
        choices=["textit", "hoiio"],
        default="textit",
        help="SMS mode: which provider the messages come through",
    )
    sim.add_argument("--from", dest="contact", default="+6591234567", help="the contact's number")
    sim.add_argument("--to", dest="number", default="+6531234567", help="our number")

    conversations = sub.add_parser(
        "conversations", help="a contact's conversations: state, variables, last step, timer"
    )
    conversations.add_argument(
        "contact", nargs="?", help="the contact's number (or TextIt contact UUID); all if none"
    )
    conversations.add_argument("--store", metavar="URL", help="default: RESPONDER_STORE")
    conversations.add_argument("--limit", type=int, default=20, help="latest N (default 20)")
    conversations.add_argument("--json", action="store_true", help="one JSON object per line")
    outbox = sub.add_parser("outbox", help="list outbound calls; retry dead ones")
    outbox.add_argument("--store", metavar="URL", help="default: RESPONDER_STORE")
    outbox.add_argument(
        "--status", choices=["pending", "sent", "dry_run", "dead"], help="only these"
    )
    outbox.add_argument("--limit", type=int, default=50, help="newest N (default 50)")
    outbox.add_argument("--json", action="store_true", help="one JSON object per line")
    outbox_sub = outbox.add_subparsers(dest="outbox_command")
    retry = outbox_sub.add_parser("retry", help="send dead items again")
    retry.add_argument("keys", nargs="*", metavar="KEY")
    retry.add_argument("--all-dead", action="store_true", help="every dead item")

    test = sub.add_parser("test", help="run YAML transcript tests (*.test.yaml) against the rules")
    test.add_argument("paths", nargs="+", metavar="FILE", help="transcript files or directories")
    test.add_argument("--junit", metavar="PATH", help="also write JUnit XML here")
    test.add_argument(
        "--coverage-json",
        metavar="PATH",
        help="also write the coverage as JSON here (the web console shows it)",
    )
    test.add_argument("-v", "--verbose", action="store_true", help="list passing tests too")

    graph = sub.add_parser("graph", help="Mermaid state diagrams of the dialogues")
    graph.add_argument(
        "--rules",
        action="append",
        metavar="PATH",
        help="rule file or directory (repeatable; default: rules/)",
    )
    graph.add_argument(
        "--dialogue", action="append", metavar="NAME", help="only this dialogue (repeatable)"
    )
    graph.add_argument("--bare", action="store_true", help="no ```mermaid fences")

    schema = sub.add_parser("schema", help="print the JSON Schema of the rules language")
    schema.add_argument(
        "--transcripts", action="store_true", help="the schema of *.test.yaml transcripts instead"
    )

    explain = sub.add_parser("explain", help="why did a contact get this reply? (reads JSON logs)")
    explain.add_argument(
        "--log",
        action="append",
        metavar="FILE",
        help="JSON log file (repeatable; default: standard input)",
    )
    who = explain.add_mutually_exclusive_group(required=True)
    who.add_argument("--contact", metavar="NUMBER", help="the contact's number, e.g. +6591234567")
    who.add_argument("--trace", metavar="ID", help="one trace id (the X-Trace-Id header)")
    explain.add_argument(
        "--last", type=int, default=10, metavar="N", help="the last N traces (default 10; 0: all)"
    )

    replay = sub.add_parser(
        "replay", help="replay recorded webhooks against candidate rules; show what changes"
    )
    replay.add_argument("logs", nargs="+", metavar="LOG", help="recording(s) (RESPONDER_RECORD)")
    replay.add_argument(
        "--rules", action="append", required=True, metavar="PATH", help="the candidate rules"
    )
    replay.add_argument(
        "--old",
        action="append",
        metavar="PATH",
        help="the rules to compare with (default: RESPONDER_RULES, else rules/)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    try:
        return _main(argv)
    except KeyboardInterrupt:
        # Ctrl-C before a command has its own handling (while rules load, say).
        print("responder: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`responder schema | head`): stop quietly, like other tools.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 141


def _main(argv: Sequence[str] | None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve":
        return _serve(args)  # its log lines are escaped by the log formatter
    with _escaped_output():
        return _tool(args)


@contextmanager
def _escaped_output() -> Iterator[None]:
    """The tools' output with every control character escaped but line feeds and tabs: what
    they show comes from webhooks, recordings, logs and rule files."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = Escaping(out), Escaping(err)
    try:
        yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        sys.stdout, sys.stderr = out, err


def _tool(args: argparse.Namespace) -> int:
    if args.command == "check":
        return _check(args.paths)
    if args.command == "simulate":
        return _simulate(args)
    if args.command == "outbox":
        return _outbox(args)
    if args.command == "conversations":
        return _conversations(args)
    if args.command == "test":
        return _test(args)
    if args.command == "graph":
        return _graph(args)
    if args.command == "schema":
        return _schema(args)
    if args.command == "explain":
        return _explain(args)
    return _replay(args)


def _explain(args: argparse.Namespace) -> int:
    from responder.tools import explain

    if args.last < 0:
        print("responder explain: --last must be 0 or more", file=sys.stderr)
        return 2
    return explain.run(args.log or ["-"], args.contact, args.trace, args.last, sys.stdout)


def _replay(args: argparse.Namespace) -> int:
    import asyncio

    from responder.settings import Settings
    from responder.tools import replay

    try:
        old = list(args.old or Settings.from_env().rules)
    except SettingsError as exc:
        print(f"responder: setting {exc}", file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.ERROR, format="(%(levelname)s %(name)s: %(message)s)")
    return asyncio.run(replay.run(args.logs, args.rules, old, sys.stdout, sys.stderr))


def _conversations(args: argparse.Namespace) -> int:
    from responder.tools import conversations

    if args.limit < 1:
        print("responder conversations: --limit must be at least 1", file=sys.stderr)
        return 2
    return _on_store(
        args.store,
        lambda store: conversations.show(
            store, args.contact, args.limit, sys.stdout, as_json=args.json
        ),
    )


def _outbox(args: argparse.Namespace) -> int:
    from responder.tools import outbox as outbox_commands

    if args.outbox_command == "retry" and not (args.keys or args.all_dead):
        print("responder outbox retry: name KEY(s) or --all-dead", file=sys.stderr)
        return 2
    if args.limit < 1:
        print("responder outbox: --limit must be at least 1", file=sys.stderr)
        return 2

    async def run(store: Store) -> int:
        if args.outbox_command == "retry":
            return await outbox_commands.requeue(
                store, args.keys, sys.stdout, sys.stderr, all_dead=args.all_dead
            )
        return await outbox_commands.list_items(
            store, args.status, args.limit, sys.stdout, as_json=args.json
        )

    return _on_store(args.store, run)


def _on_store(given: str | None, command: Callable[[Store], Awaitable[int]]) -> int:
    """Run a command on the store ``serve`` uses (``--store``, else RESPONDER_STORE), which
    must already exist; 2 when it cannot be read."""
    from responder.settings import Settings
    from responder.stores import open_store
    from responder.tools.outbox import absent_store

    try:
        url = Settings.from_env(store=given).store
        absent = absent_store(url)
        if absent:
            raise StoreError(absent)
        store = open_store(url)
    except (SettingsError, StoreError) as exc:
        print(f"responder: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        await store.open()
        try:
            return await command(store)
        finally:
            await store.close()

    try:
        return asyncio.run(run())
    except StoreError as exc:
        print(f"responder: {exc}", file=sys.stderr)
        return 2


def _print_problems(exc: RulesError, out: IO[str]) -> None:
    """Every problem of a broken rule set, one ``file:line: message`` a line."""
    for problem in exc.problems:
        print(problem, file=out)


def _load_rules(paths: list[str]) -> RuleSet | None:
    """The rule set at ``paths``, or None after printing its problems to stderr."""
    from responder.rules.loader import load_rules

    try:
        return load_rules(paths)
    except RulesError as exc:
        _print_problems(exc, sys.stderr)
        return None


def _simulate(args: argparse.Namespace) -> int:
    import asyncio

    from responder.tools.simulate import Simulator

    ruleset = _load_rules(args.rules or ["rules"])
    if ruleset is None:
        return 1
    logging.basicConfig(level=logging.WARNING, format="(%(levelname)s %(name)s: %(message)s)")
    simulator = Simulator(
        ruleset,
        sys.stdout,
        sys.stdin.readline,
        contact=args.contact,
        number=args.number,
        provider="hoiio" if args.call else args.provider,
    )
    try:
        return asyncio.run(simulator.run(call=args.call))
    except KeyboardInterrupt:
        return 130


def _test(args: argparse.Namespace) -> int:
    import asyncio
    from pathlib import Path

    from responder.transcripts.report import write_coverage, write_junit, write_text
    from responder.transcripts.run import exit_code, run_all

    logging.basicConfig(level=logging.ERROR, format="  (%(name)s: %(message)s)")
    results, usage = asyncio.run(run_all(args.paths))
    write_text(results, usage, sys.stdout, args.verbose)
    if args.junit:
        try:
            write_junit(results, usage, Path(args.junit))
        except OSError as exc:
            print(f"responder: cannot write {args.junit}: {exc.strerror}", file=sys.stderr)
            return 2
    if args.coverage_json:
        try:
            write_coverage(results, Path(args.coverage_json))
        except OSError as exc:
            print(f"responder: cannot write {args.coverage_json}: {exc.strerror}", file=sys.stderr)
            return 2
    return exit_code(results, usage)


def _graph(args: argparse.Namespace) -> int:
    from responder.tools.graph import render

    ruleset = _load_rules(args.rules or ["rules"])
    if ruleset is None:
        return 1
    names = args.dialogue or list(ruleset.dialogues)
    unknown = [name for name in names if name not in ruleset.dialogues]
    if unknown:
        known = ", ".join(ruleset.dialogues) or "none"
        print(f"responder graph: no dialogue {unknown[0]!r} (known: {known})", file=sys.stderr)
        return 2
    if not names:
        print("responder graph: these rules have no dialogues", file=sys.stderr)
        return 1
    sys.stdout.write(render(ruleset, names, fenced=not args.bare))
    return 0


def _schema(args: argparse.Namespace) -> int:
    import json

    from responder.tools.schema import rules_schema, transcript_schema

    document = transcript_schema() if args.transcripts else rules_schema()
    print(json.dumps(document, indent=2, ensure_ascii=False))
    return 0


def _check(paths: list[str]) -> int:
    from responder.rules.loader import load_rules

    try:
        ruleset = load_rules(paths)
    except RulesError as exc:
        _print_problems(exc, sys.stdout)
        print(f"{len(exc.problems)} problem(s) found", file=sys.stderr)
        return 1
    for warning in ruleset.warnings:
        print(warning)
    warned = f", {len(ruleset.warnings)} warning(s)" if ruleset.warnings else ""
    print(
        f"ok: {len(ruleset.rules)} rule(s) and {len(ruleset.dialogues)} dialogue(s) "
        f"in {len(ruleset.files)} file(s){warned}"
    )
    return 0


def _serve(args: argparse.Namespace) -> int:
    from responder.settings import Settings
    from responder.speed import event_loop_policy, names
    from responder.web.logs import setup_logging

    try:
        settings = Settings.from_env(
            rules=tuple(args.rules) if args.rules else None,
            host=args.host,
            port=args.port,
            store=args.store,
            public_url=args.public_url,
            log_level=args.log_level,
            log_format=args.log_format,
            watch=args.watch,
            workers=args.workers,
        )
    except SettingsError as exc:
        print(f"responder: setting {exc}", file=sys.stderr)
        return 2
    if args.console and settings.console_token is None:
        import secrets
        from dataclasses import replace

        settings = replace(settings, console_token=secrets.token_urlsafe(24))
        # Once, on the terminal: never in a log line.
        print(f"responder: console token for this run: {settings.console_token}", file=sys.stderr)
    setup_logging(settings.log_level, settings.log_format)
    policy = event_loop_policy()
    if policy is not None:
        asyncio.set_event_loop_policy(policy)
    if settings.workers > 1:
        return _serve_workers(settings)
    from responder.web.server import create_app
    from responder.web.startup import where

    try:
        app = create_app(settings)
    except RulesError as exc:
        _refuse_rules(exc)
        return 1
    except StoreError as exc:
        return _store_problem(exc)
    log = logging.getLogger("responder")
    if settings.console_token is not None:
        from responder.console.app import mount

        mount(app, settings)

    def serving() -> None:
        # Called once the store is open and the port is bound.
        log.info(
            "serving %s on http://%s:%d (store %s)",
            ", ".join(settings.rules),
            settings.host,
            settings.port,
            where(settings.store),
        )
        if settings.console_token is not None:
            log.info("web console at http://%s:%d/console/", settings.host, settings.port)

    if names():
        log.info("speed-ups in use: %s", ", ".join(names()))
    # The rules and everything else built so far live as long as the process (or until a
    # reload): out of the collector's sight, so its full passes stay short with large rule sets.
    gc.freeze()
    return _run_app(app, settings, ready=serving)


def _serve_workers(settings: Settings) -> int:
    """``serve --workers N``: the rules, the store and the port checked once, then N workers."""
    from responder.rules.loader import load_rules
    from responder.speed import names
    from responder.web.listeners import bind
    from responder.web.startup import check_store, listen_problem
    from responder.web.supervisor import Supervisor

    try:
        ruleset = load_rules(settings.rules)
    except RulesError as exc:
        _refuse_rules(exc)
        return 1
    try:
        asyncio.run(check_store(settings.store))
    except StoreError as exc:
        return _store_problem(exc)
    try:
        listeners = bind(settings.host, settings.port, settings.workers)
    except OSError as exc:
        print(f"responder: {listen_problem(settings.host, settings.port, exc)}", file=sys.stderr)
        return 2
    if names():
        logging.getLogger("responder").info("speed-ups in use: %s", ", ".join(names()))
    gc.freeze()  # shared by the workers, copy-on-write, and out of their collectors' sight
    try:
        return Supervisor(settings, ruleset, _work).run(listeners)
    except OSError as exc:  # no room for the metrics directory, no process for a worker
        print(f"responder: cannot start the workers: {exc}", file=sys.stderr)
        return 2


def _work(worker: Worker) -> int:
    """One worker of ``serve --workers``, in its own process."""
    from responder.web.server import create_app

    app = create_app(worker.settings, rules=worker.rules, worker=worker.role)
    if worker.settings.console_token is not None:
        # Each worker serves the console of its own process (its recent webhooks, its
        # simulator sessions): see docs/console.md.
        from responder.console.app import mount

        mount(app, worker.settings)
    return _run_app(
        app,
        worker.settings,
        ready=worker.started,
        sockets=list(worker.sockets),
        handle_signals=False,  # the application takes SIGTERM once it has started
    )


def _run_app(
    app: web.Application,
    settings: Settings,
    *,
    ready: Callable[[], None],
    sockets: list[socket.socket] | None = None,
    handle_signals: bool = True,
) -> int:
    """Run ``app`` on the settings' host and port (or on bound ``sockets``) until stopped."""
    from responder.web.running import run
    from responder.web.server import runner_options
    from responder.web.startup import listen_problem

    try:
        run(
            app,
            host=settings.host,
            port=settings.port,
            sockets=sockets,
            ready=ready,
            handle_signals=handle_signals,
            options=runner_options(settings),
        )
    except SettingsError as exc:
        print(f"responder: setting {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        return _store_problem(exc)
    except OSError as exc:
        print(f"responder: {listen_problem(settings.host, settings.port, exc)}", file=sys.stderr)
        return 2
    return 0


def _refuse_rules(exc: RulesError) -> None:
    _print_problems(exc, sys.stderr)
    print("responder: refusing to start with broken rules", file=sys.stderr)
    if any(p.message == "no such file or directory" for p in exc.problems):
        print(
            "responder: name the rules with --rules PATH or RESPONDER_RULES "
            f"(default: rules/ in the current directory, {os.getcwd()})",
            file=sys.stderr,
        )


def _store_problem(exc: StoreError) -> int:
    from responder.web.startup import store_problem

    print(f"responder: {store_problem(exc)}", file=sys.stderr)
    return 2
