"""Benchmark: responder against a bare aiohttp app, over HTTP, in one run.

    python benchmarks/http_bench.py [--quick] [--json [FILE]] [--seconds 5] [--rounds 3]

Starts, each as its own process on this machine: a bare aiohttp app (parse the form, answer
a fixed JSON reply), the floor (``http_floor.py``: responder's templated answer with its
idempotency record committed to SQLite, and nothing else), ``responder serve`` on generated
rule sets of 10, 1,000 and 10,000 rules (mostly keywords, some regexes, some for other kinds
and channels; the matching rule is the last one, with a templated reply) and on the IVR menu
example with a fake Hoiio API (its own process) taking the outbound ``gather`` blocks;
SQLite store, and Redis too when the store supports it and a Redis answers at
RESPONDER_TEST_REDIS (default 127.0.0.1:6379/0, under a fresh key prefix, deleted
afterwards). The bare app and the floor run on the event loop responder runs on (uvloop when
installed). Every server gets the same load (wrk with a Lua script when installed, else an
aiohttp load generator): ``--connections`` requests in flight, each body unique (a new
message id or IVR session), in rounds that visit every server in turn (every other round
backwards), so drift of the shared machine hits all alike.
Prints throughput and p50/p99 latency (medians over the rounds), the ratios against bare
aiohttp, against 10 rules and against the floor, the start-up time with 10,000 rules (process
start to /healthz answering, and the rule load alone) and whether the targets are met.
``--json`` prints the summary as JSON instead (``--json FILE`` writes it there and prints the
table).

``--workers N`` runs only the 1,000-rule TextIt server on SQLite, with one worker and with
``responder serve --workers N``, in the same rounds, and prints their req/s, the ratio, the
CPU seconds the server's processes used per webhook (read from /proc before and after each
round: what the figure needs on a machine with more cores) and whether N workers reach
``WORKERS_TARGET`` times one.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import http_load
import http_setup
from prometheus_client.parser import text_string_to_metric_families

from responder.testing.process import free_port

_HERE = Path(__file__).resolve().parent
REPO = _HERE.parent
SIZES = (10, 1000, 10000)
WORKERS_TARGET = 1.3  # N workers against one, with the load generator on the same cores


@dataclass
class Target:
    """One server under load."""

    name: str
    provider: str  # which body it gets: textit or hoiio
    url: str = ""
    proc: subprocess.Popen[bytes] | None = None
    results: list[http_load.Result] = field(default_factory=list)
    replied: float | None = None  # share of webhooks answered as meant (responder only)
    cwd: Path = REPO  # where the server is started: the code it runs
    cpu: list[float] = field(default_factory=list)  # server CPU seconds per webhook, per round
    cores: list[float] = field(default_factory=list)  # server CPU seconds per second, per round

    def summary(self) -> dict[str, float]:
        def median(values: list[float]) -> float:
            return statistics.median(values) if values else 0.0

        return {
            **({"cpu_ms": median(self.cpu) * 1000} if self.cpu else {}),
            **({"cores": median(self.cores)} if self.cores else {}),
            "rps": median([r.rps for r in self.results]),
            "p50_ms": median([r.p50_ms for r in self.results]),
            "p99_ms": median([r.p99_ms for r in self.results]),
            "requests": sum(r.requests for r in self.results),
            "errors": sum(r.errors for r in self.results),
            **({} if self.replied is None else {"replied": self.replied}),
        }


def _env(extra: dict[str, str]) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("RESPONDER_", "HOIIO_"))}
    return {**keep, **extra}


def _wait_ready(
    url: str, proc: subprocess.Popen[bytes], timeout: float = 60.0, path: str = "/healthz"
) -> None:
    deadline = time.monotonic() + timeout
    host, port = url.removeprefix("http://").split(":")
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"server at {url} exited with {proc.returncode}")
        try:
            with socket.create_connection((host, int(port)), timeout=1) as sock:
                sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
                if b" 200 " in sock.recv(64):
                    return
        except OSError:
            pass
        time.sleep(0.005)
    raise SystemExit(f"server at {url} did not answer /healthz within {timeout:.0f}s")


def spawn(
    args: list[str], env: dict[str, str], log: Path, cwd: Path = REPO
) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with log.open("ab") as out:
        proc = subprocess.Popen(  # noqa: S603
            [sys.executable, *[a.replace("PORT", str(port)) for a in args]],
            env=_env(env),
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=cwd,  # ``python -m responder`` imports the responder found here
        )
    return proc, url


def serve_args(rules: Path, store: str) -> list[str]:
    return [
        "-m",
        "responder",
        "serve",
        "--rules",
        str(rules),
        "--store",
        store,
        "--host",
        "127.0.0.1",
        "--port",
        "PORT",
    ]


def redis_url() -> str | None:
    """A fresh key prefix on the Redis at RESPONDER_TEST_REDIS (default 127.0.0.1:6379/0),
    when the store speaks redis:// and that Redis answers; else None."""
    try:
        from responder.testing.redisdb import require_server, scratch_url
    except ImportError:  # a responder without the Redis store
        return None
    try:
        require_server()
    except RuntimeError:
        return None
    return scratch_url("bench-http")


def _cpu_seconds(pid: int) -> float:
    """User and system CPU time of a running process (Linux), 0.0 where unknown."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _parent(stat: Path) -> int:
    """The parent process id in a /proc/PID/stat file, 0 where unknown."""
    try:
        return int(stat.read_text().rsplit(")", 1)[1].split()[1])
    except (OSError, IndexError, ValueError):
        return 0


def _tree_cpu(pid: int) -> float:
    """CPU seconds of a process and its children (the workers of ``serve --workers``)."""
    children = [int(s.parent.name) for s in Path("/proc").glob("[0-9]*/stat") if _parent(s) == pid]
    return _cpu_seconds(pid) + sum(_cpu_seconds(child) for child in children)


def measure_startup(rules: Path, tmp: Path, runs: int) -> dict[str, float]:
    """Process start to /healthz answering with ``rules``, and the rule load alone."""
    ready: list[float] = []
    cpu: list[float] = []  # what the process used itself: a busy machine inflates wall time
    loads: list[float] = []
    for n in range(runs):
        started = time.perf_counter()
        proc, url = spawn(
            serve_args(rules, f"sqlite:///{tmp / f'startup-{n}.db'}"), {}, tmp / "startup.log"
        )
        try:
            _wait_ready(url, proc)
            ready.append(time.perf_counter() - started)
            cpu.append(_cpu_seconds(proc.pid))
        finally:
            proc.terminate()
            proc.wait()
        code = (
            "import sys, time\n"
            "from responder.rules.loader import load_rules\n"
            "t = time.perf_counter(); load_rules([sys.argv[1]])\n"
            "print(time.perf_counter() - t)\n"
        )
        out = subprocess.run(  # noqa: S603
            [sys.executable, "-c", code, str(rules)],
            capture_output=True,
            text=True,
            check=True,
            cwd=REPO,
        )
        loads.append(float(out.stdout.strip()))
    return {
        "serve_to_healthz_s": statistics.median(ready),
        "serve_cpu_s": statistics.median(cpu),
        "load_rules_s": statistics.median(loads),
    }


def check_reply(target: Target) -> None:
    """One request by hand: a benchmark of error answers would be worthless."""
    parts = http_setup.textit_parts() if target.provider == "textit" else http_setup.hoiio_parts()
    data = http_setup.body(parts, f"check{time.time_ns()}", 1, target.provider == "hoiio")
    request = f"{target.url}/webhooks/{target.provider}"

    async def post() -> tuple[int, str]:
        headers = {"Content-Type": "application/x-www-form-urlencoded"}
        async with (
            aiohttp.ClientSession() as http,
            http.post(request, data=data, headers=headers) as resp,
        ):
            return resp.status, await resp.text()

    status, text = asyncio.run(post())
    if status != 200:
        raise SystemExit(f"{target.name}: {status} {text}")
    served = target.provider == "textit" and target.name != "bare"
    if served and http_setup.REPLY_PREFIX not in text:
        raise SystemExit(f"{target.name}: unexpected reply {text!r}")


def load(target: Target, seconds: float, connections: int, use_wrk: bool, tag: str) -> None:
    hoiio = target.provider == "hoiio"
    parts = http_setup.hoiio_parts() if hoiio else http_setup.textit_parts()
    url = f"{target.url}/webhooks/{target.provider}"
    if use_wrk:
        script = http_load.lua_script(parts, f"/webhooks/{target.provider}", hoiio)
        result = http_load.run_wrk(url, script, tag, connections, seconds)
    else:

        def make(n: int) -> str:
            return http_setup.body(parts, f"{tag}n{n}", n % http_setup.CONTACTS, hoiio)

        result = asyncio.run(http_load.run_python(url, make, connections, seconds))
    target.results.append(result)


def replied(target: Target) -> float:
    """The share of a responder's webhooks answered as the scenario says (from its /metrics):
    a TextIt message with a reply, a Hoiio call with its IVR block sent to the fake by the end
    of the run. A benchmark of the reply must not measure something else, such as the loop
    guard holding replies back or a delivery backlog growing behind the webhooks."""

    async def fetch() -> str:
        async with aiohttp.ClientSession() as http, http.get(f"{target.url}/metrics") as resp:
            return await resp.text()

    events = answered = 0.0
    for family in text_string_to_metric_families(asyncio.run(fetch())):
        for sample in family.samples:
            if sample.name == "responder_events_total":
                events += sample.value
            elif (target.provider == "textit" and sample.name == "responder_replies_total") or (
                target.provider == "hoiio"
                and sample.name == "responder_outbound_calls_total"
                and sample.labels.get("outcome") == "sent"
            ):
                answered += sample.value
    return ratio(answered, events)


def ratio(a: float, b: float) -> float:
    return a / b if b else 0.0


def run(args: argparse.Namespace) -> dict[str, Any]:
    use_wrk = args.load == "wrk" or (args.load == "auto" and http_load.have_wrk())
    tmp = Path(tempfile.mkdtemp(prefix="responder-http-bench-"))
    procs: list[subprocess.Popen[bytes]] = []
    redis: str | None = None
    try:
        for size in SIZES:
            http_setup.write_rules(tmp / f"rules-{size}", size)
        ivr_rules = tmp / "ivr"
        shutil.copytree(REPO / "examples" / "ivr-menu", ivr_rules)
        for test in ivr_rules.glob("*.test.yaml"):
            test.unlink()
        startup = measure_startup(tmp / f"rules-{SIZES[-1]}", tmp, args.startup_runs)

        fake_proc, fake_url = spawn(
            ["-m", "responder.testing.fakes", "hoiio", "--port", "PORT"], {}, tmp / "fake.log"
        )
        procs.append(fake_proc)
        stores = {"sqlite": "sqlite:///{db}"}
        redis = redis_url()
        if redis is not None:
            stores["redis"] = redis
        ivr_env = {
            "HOIIO_APP_ID": "bench",
            "HOIIO_ACCESS_TOKEN": "bench",
            "HOIIO_API_URL": fake_url,
            "RESPONDER_PUBLIC_URL": "http://127.0.0.1:9",
        }
        plan: list[tuple[Target, list[str], dict[str, str]]] = [
            (Target("bare", "textit"), [str(_HERE / "http_setup.py"), "PORT"], {}),
            (
                Target("floor", "textit"),
                [str(_HERE / "http_floor.py"), "PORT", str(tmp / "floor.db")],
                {},
            ),
        ]
        for store_name, store in stores.items():
            sizes = SIZES if store_name == "sqlite" else (1000,)
            for size in sizes:
                db = store.format(db=tmp / f"{size}.db")
                plan.append(
                    (
                        Target(f"textit-{size}-{store_name}", "textit"),
                        serve_args(tmp / f"rules-{size}", db),
                        {},
                    )
                )
        plan.append(
            (
                Target("textit-1000-sqlite-json", "textit"),
                serve_args(tmp / "rules-1000", f"sqlite:///{tmp / 'json.db'}"),
                {"RESPONDER_LOG_FORMAT": "json"},
            )
        )
        if args.against is not None:
            against = {"PYTHONPATH": str(args.against)}
            db = f"sqlite:///{tmp / 'against-1000.db'}"
            plan.append(
                (
                    Target("against-textit-1000-sqlite", "textit", cwd=args.against),
                    serve_args(tmp / "rules-1000", db),
                    against,
                )
            )
        plan.append((Target("bare-hoiio", "hoiio"), [], {}))
        for store_name, store in stores.items():
            db = store.format(db=tmp / "ivr.db")
            plan.append((Target(f"ivr-{store_name}", "hoiio"), serve_args(ivr_rules, db), ivr_env))
        if args.against is not None:
            db = f"sqlite:///{tmp / 'against-ivr.db'}"
            plan.append(
                (
                    Target("against-ivr-sqlite", "hoiio", cwd=args.against),
                    serve_args(ivr_rules, db),
                    {**ivr_env, **against},
                )
            )
        targets: list[Target] = []
        for target, argv, env in plan:
            if argv:
                proc, target.url = spawn(argv, env, tmp / f"{target.name}.log", target.cwd)
                procs.append(proc)
                target.proc = proc
            else:  # the bare app serves the Hoiio body too
                target.url = plan[0][0].url
            targets.append(target)
        _wait_ready(fake_url, fake_proc, path="/_fake/stats")
        for target in targets:
            if target.proc is not None:
                _wait_ready(target.url, target.proc)
            check_reply(target)
        for target in targets:  # warm-up, not counted
            load(target, 1, args.connections, use_wrk, f"w{target.name}")
            target.results.clear()
        for round_ in range(args.rounds):
            # Every other round backwards: no server always follows the same one.
            for target in targets if round_ % 2 == 0 else targets[::-1]:
                print(f"round {round_ + 1}/{args.rounds}: {target.name}", file=sys.stderr)
                load(target, args.seconds, args.connections, use_wrk, f"r{round_}{target.name}")
        for target in targets:
            if target.proc is not None and not target.name.startswith(("bare", "floor")):
                target.replied = replied(target)
        return summarise(args, targets, startup, use_wrk)
    except SystemExit:
        for log in sorted(tmp.glob("*.log")):
            print(f"--- {log.name}:\n{log.read_text(errors='replace')[-2000:]}", file=sys.stderr)
        raise
    finally:
        if redis is not None:
            from responder.testing.redisdb import drop_prefix

            drop_prefix(redis.rsplit("prefix=", 1)[1])
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(15)
            except subprocess.TimeoutExpired:
                proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def run_header(args: argparse.Namespace, use_wrk: bool) -> dict[str, Any]:
    """When, on what and under which load a run was made (the head of every summary)."""
    return {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{os.cpu_count()} cores, {platform.python_implementation()} "
        f"{platform.python_version()}, {platform.machine()}",
        "load": "wrk" if use_wrk else "python (aiohttp)",
        "connections": args.connections,
        "seconds": args.seconds,
        "rounds": args.rounds,
    }


def run_workers(args: argparse.Namespace) -> dict[str, Any]:
    """The 1,000-rule TextIt server on SQLite with one worker and with ``args.workers``."""
    use_wrk = args.load == "wrk" or (args.load == "auto" and http_load.have_wrk())
    tmp = Path(tempfile.mkdtemp(prefix="responder-workers-bench-"))
    targets = [Target("textit-1000-sqlite", "textit")]
    targets.append(Target(f"textit-1000-sqlite-{args.workers}-workers", "textit"))
    try:
        rules = http_setup.write_rules(tmp / "rules-1000", 1000)
        for n, target in enumerate(targets):
            argv = serve_args(rules, f"sqlite:///{tmp / f'{n}.db'}")
            if n:
                argv += ["--workers", str(args.workers)]
            target.proc, target.url = spawn(argv, {}, tmp / f"{target.name}.log")
        for target in targets:
            assert target.proc is not None
            _wait_ready(target.url, target.proc)
            check_reply(target)
        # /healthz answers once the first worker does: wait for them all.
        log = tmp / f"{targets[1].name}.log"
        deadline = time.monotonic() + 60
        while f"with {args.workers} workers" not in log.read_text(errors="replace"):
            if time.monotonic() > deadline:
                raise SystemExit(f"{targets[1].name}: the workers did not all start")
            time.sleep(0.05)
        for target in targets:  # warm-up, not counted
            load(target, 1, args.connections, use_wrk, f"w{target.name}")
            target.results.clear()
        for round_ in range(args.rounds):
            for target in targets if round_ % 2 == 0 else targets[::-1]:
                print(f"round {round_ + 1}/{args.rounds}: {target.name}", file=sys.stderr)
                assert target.proc is not None
                before = _tree_cpu(target.proc.pid)
                load(target, args.seconds, args.connections, use_wrk, f"r{round_}{target.name}")
                used = _tree_cpu(target.proc.pid) - before
                target.cpu.append(ratio(used, target.results[-1].requests))
                target.cores.append(ratio(used, target.results[-1].seconds))
        for target in targets:
            target.replied = replied(target)
        figures = {t.name: t.summary() for t in targets}
        one, many = (figures[t.name] for t in targets)
        speed_up = ratio(many["rps"], one["rps"])
        return {
            **run_header(args, use_wrk),
            "workers": args.workers,
            "targets": figures,
            "speed_up": speed_up,
            "met": {f"{args.workers} workers >= {WORKERS_TARGET} x 1": speed_up >= WORKERS_TARGET},
        }
    except SystemExit:
        for log in sorted(tmp.glob("*.log")):
            print(f"--- {log.name}:\n{log.read_text(errors='replace')[-2000:]}", file=sys.stderr)
        raise
    finally:
        for target in targets:
            if target.proc is not None:
                target.proc.terminate()
        for target in targets:
            if target.proc is not None:
                try:
                    target.proc.wait(30)
                except subprocess.TimeoutExpired:
                    target.proc.kill()
        shutil.rmtree(tmp, ignore_errors=True)


def dialogue_figures(checkout: Path, conversations: int, steps: int) -> dict[str, float]:
    """``benchmarks/dialogues.py --json`` of the code in ``checkout`` (its own copy)."""
    out = subprocess.run(  # noqa: S603
        [
            sys.executable,
            str(checkout / "benchmarks" / "dialogues.py"),
            "--json",
            "--conversations",
            str(conversations),
            "--steps",
            str(steps),
        ],
        env=_env({"PYTHONPATH": str(checkout)}),
        cwd=checkout,
        capture_output=True,
        text=True,
        check=True,
        timeout=1800,
    )
    figures: dict[str, float] = json.loads(out.stdout)
    return figures


def other_targets(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, bool | None]]:
    """Targets 2 to 5 that need runs of their own, each measured here, in this run: the
    workers (3), the open loop (2, and the IVR step on Redis of 4), Redis round trips (4)
    and live conversations (5: against ``--against`` when given)."""
    import latency  # (imported here: it imports this module)
    import round_trips

    extra: dict[str, Any] = {}
    met: dict[str, bool | None] = {}
    quick = args.seconds < 5.0
    workers = run_workers(argparse.Namespace(**{**vars(args), "workers": 2}))
    extra["workers"] = workers
    one, two = workers["targets"].values()
    met[
        f"3. 2 workers >= {WORKERS_TARGET} x 1 worker ({workers['speed_up']:.2f}; CPU a webhook "
        f"{one['cpu_ms']:.3f} ms with 1, {two['cpu_ms']:.3f} ms with 2)"
    ] = workers["speed_up"] >= WORKERS_TARGET
    tmp = Path(tempfile.mkdtemp(prefix="responder-bench-targets-"))
    try:
        open_loop = argparse.Namespace(
            share=0.5, seconds=3.0 if quick else 10.0, saturation_seconds=1.0 if quick else 3.0
        )
        extra["open_loop"] = asyncio.run(latency.measure(open_loop, tmp / "latency"))
        for name, f in extra["open_loop"].items():
            met[
                f"2. {name}: p99 <= {f['target_p99_ms']:g} ms at half its saturation "
                f"({f['offered_rps']:,.0f} of {f['saturation_rps']:,.0f}/s: p50 {f['p50_ms']:.2f},"
                f" p99 {f['p99_ms']:.2f}, p99.9 {f['p999_ms']:.2f} ms)"
            ] = f["met"]
        if redis_url() is not None:
            trips = argparse.Namespace(webhooks=200 if quick else 500)
            (tmp / "trips").mkdir()
            extra["round_trips"] = rt = asyncio.run(round_trips.measure(trips, tmp / "trips"))
            worst = max(f["per_webhook"] for f in rt.values())
            met[
                f"4. Redis round trips a webhook <= 2 (TextIt {rt['textit']['per_webhook']:.2f}, "
                f"IVR {rt['ivr']['per_webhook']:.2f})"
            ] = worst <= 2.0
            per_call = rt["ivr"]["per_delivered_call"]
            met[f"4. Redis round trips a delivered IVR call <= 2 ({per_call:.2f})"] = (
                per_call <= 2.0
            )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    size = (10_000, 500) if quick else (100_000, 2000)
    now = dialogue_figures(REPO, *size)
    extra["dialogues"] = {"this": now}
    count = f"{size[0]:,} live conversations"
    if args.against is None:
        met[
            f"5. {count}: RSS {now['rss_mb_sqlite']:.1f} MB on SQLite, "
            f"{now['rss_mb_memory']:.1f} MB in memory; a dialogue step p50 "
            f"{now['ivr_step_p50_ms_sqlite']:.3f} ms on SQLite (no --against to compare)"
        ] = None
        return extra, met
    before = dialogue_figures(args.against, *size)
    extra["dialogues"]["against"] = before
    rss = [(now[f"rss_mb_{s}"], before[f"rss_mb_{s}"]) for s in ("sqlite", "memory")]
    # RSS moves by a few hundred KB with the allocator, whatever the code: 5 % or 0.5 MB.
    met[
        f"5. {count}: RSS {rss[0][0]:.1f} MB on SQLite (was {rss[0][1]:.1f}), "
        f"{rss[1][0]:.1f} MB in memory (was {rss[1][1]:.1f}); within 5 % or 0.5 MB"
    ] = all(mb <= max(was * 1.05, was + 0.5) for mb, was in rss)
    step = [
        (now[f"ivr_step_p50_ms_{s}"], before[f"ivr_step_p50_ms_{s}"]) for s in ("sqlite", "memory")
    ]
    met[
        f"5. a dialogue step's p50: {step[0][0]:.3f} ms on SQLite (was {step[0][1]:.3f}), "
        f"{step[1][0]:.3f} ms in memory (was {step[1][1]:.3f}); within 10 %"
    ] = all(ms <= was * 1.10 for ms, was in step)
    return extra, met


def verdict(ok: bool | None) -> str:
    return "reported" if ok is None else "met" if ok else "NOT met"


def workers_table(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['date']}, {summary['machine']}; load: {summary['load']} on the same "
        f"cores, {summary['connections']} connections, {summary['rounds']} round(s) of "
        f"{summary['seconds']:g} s per server (medians)",
        "",
        f"{'server':<34}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'CPU ms/webhook':>16}{'cores used':>12}{'replied':>9}",
    ]
    for name, row in summary["targets"].items():
        lines.append(
            f"{name:<34}{row['rps']:>8.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{row['errors']:>8.0f}{row['cpu_ms']:>16.3f}{row['cores']:>12.2f}"
            f"{row['replied']:>8.0%}"
        )
    workers = summary["workers"]
    lines += [
        "",
        f"{workers} workers: {summary['speed_up']:.2f} x the req/s of one",
        "CPU per webhook: of all the server's processes (the parent and its workers); a "
        "core's ceiling is 1 / that in req/s. Cores used: the servers' CPU seconds per "
        "second of load (the load generator and anything else running share the rest)",
        "",
        "targets:",
    ]
    lines += [f"  {verdict(ok):<9} {name}" for name, ok in summary["met"].items()]
    return "\n".join(lines)


def summarise(
    args: argparse.Namespace, targets: list[Target], startup: dict[str, float], use_wrk: bool
) -> dict[str, Any]:
    figures = {t.name: t.summary() for t in targets}
    bare = figures["bare"]["rps"]
    bare_hoiio = figures["bare-hoiio"]["rps"]
    ten = figures["textit-10-sqlite"]["rps"]
    floor = figures["floor"]["rps"]
    for name, row in figures.items():
        hoiio = name.startswith(("ivr", "bare-hoiio", "against-ivr"))
        base = bare_hoiio if hoiio else bare
        row["vs_bare"] = ratio(row["rps"], base)
        if name.startswith("textit-"):
            row["vs_10_rules"] = ratio(row["rps"], ten)
            row["vs_floor"] = ratio(row["rps"], floor)
    for name in ("textit-1000-sqlite", "ivr-sqlite"):
        if f"against-{name}" in figures:
            figures[name]["vs_against"] = ratio(
                figures[name]["rps"], figures[f"against-{name}"]["rps"]
            )
    sqlite = figures["textit-1000-sqlite"]
    json_logs = figures["textit-1000-sqlite-json"]
    ten_k = figures["textit-10000-sqlite"]["vs_10_rules"]
    boot = startup["serve_to_healthz_s"]
    checks = {
        f"1. TextIt, 1,000 rules, SQLite >= 0.60 x the floor ({sqlite['vs_floor']:.2f})": (
            sqlite["vs_floor"] >= 0.60
        ),
        f"1. ... with JSON logs on >= 0.60 x the floor ({json_logs['vs_floor']:.2f})": (
            json_logs["vs_floor"] >= 0.60
        ),
    }
    if "textit-1000-redis" in figures:
        on_redis = ratio(figures["textit-1000-redis"]["rps"], sqlite["rps"])
        figures["textit-1000-redis"]["vs_sqlite"] = on_redis
        checks[f"4. TextIt on Redis >= 0.80 x on SQLite ({on_redis:.2f})"] = on_redis >= 0.80
    for name in ("ivr-sqlite", "ivr-redis"):
        if name in figures:
            sent = figures[name].get("replied", 0.0)
            checks[f"4. {name}: >= 99% of blocks sent by the end of the run ({sent:.1%})"] = (
                sent >= 0.99
            )
    checks[f"5. 10,000 rules >= 0.90 x 10 rules ({ten_k:.2f})"] = ten_k >= 0.90
    checks[f"5. start-up with 10,000 rules < 2 s ({boot:.2f} s)"] = boot < 2.0
    return {
        **run_header(args, use_wrk),
        "against": str(args.against) if args.against else None,
        "targets": figures,
        "startup": startup,
        "met": checks,
    }


def table(summary: dict[str, Any]) -> str:
    lines = [
        f"{summary['date']}, {summary['machine']}; load: {summary['load']}, "
        f"{summary['connections']} connections, {summary['rounds']} round(s) of "
        f"{summary['seconds']:g} s per server (medians)",
        "",
        f"{'server':<28}{'req/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}"
        f"{'vs bare':>9}{'vs 10 rules':>13}{'vs floor':>10}{'replied':>9}",
    ]
    for name, row in summary["targets"].items():
        tens = f"{row['vs_10_rules']:.2f}" if "vs_10_rules" in row else ""
        floor = f"{row['vs_floor']:.2f}" if "vs_floor" in row else ""
        lines.append(
            f"{name:<28}{row['rps']:>8.0f}{row['p50_ms']:>9.2f}{row['p99_ms']:>9.2f}"
            f"{row['errors']:>8.0f}{row['vs_bare']:>9.2f}{tens:>13}{floor:>10}"
            + (f"{row['replied']:>8.0%}" if "replied" in row else "")
        )
    if summary.get("against"):
        lines += ["", f"against-*: the code in {summary['against']}"]
        for name, row in summary["targets"].items():
            if "vs_against" in row:
                lines.append(f"  {name}: {row['vs_against']:.2f} x its req/s")
    start = summary["startup"]
    lines += [
        "",
        f"start-up with 10,000 rules: {start['serve_to_healthz_s']:.2f} s to /healthz, "
        f"{start['serve_cpu_s']:.2f} s of CPU (rule load alone {start['load_rules_s']:.2f} s)",
        "",
    ]
    if "extra" in summary:
        lines += [workers_table(summary["extra"]["workers"]).split("\n\ntargets:")[0], ""]
    lines.append("targets (of the performance issue, numbered as there):")
    lines += [f"  {verdict(ok):<9} {name}" for name, ok in summary["met"].items()]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="1 round of 2 s per server")
    parser.add_argument("--json", nargs="?", const="-", help="the summary as JSON (to FILE)")
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--load", choices=["auto", "wrk", "python"], default="auto")
    parser.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="only the 1,000-rule SQLite server, with one worker and with --workers N",
    )
    parser.add_argument(
        "--rounds-only",
        action="store_true",
        help="only the rounds of the servers side by side: not the workers, the open loop, "
        "the Redis round trips and the live conversations",
    )
    parser.add_argument(
        "--against",
        type=lambda text: Path(text).resolve(),
        help="a checkout of other code (git worktree add DIR COMMIT): its 1,000-rule SQLite "
        "and IVR servers run in the same rounds, for a ratio measured in the same run",
    )
    args = parser.parse_args()
    # Stopped with SIGTERM: still stop the servers and remove the scratch data.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.seconds, args.rounds, args.startup_runs = 2.0, 1, 1
    if args.workers:
        summary = run_workers(args)
    else:
        summary = run(args)
        if not args.rounds_only:
            summary["extra"], more = other_targets(args)
            summary["met"] = dict(sorted({**summary["met"], **more}.items()))
    if args.json == "-":
        print(json.dumps(summary, indent=2))
        return
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2) + "\n")
    print(workers_table(summary) if args.workers else table(summary))


if __name__ == "__main__":
    main()
