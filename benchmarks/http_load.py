"""Load for ``benchmarks/http_bench.py``: wrk with a Lua script when installed, else aiohttp.

Both keep ``connections`` requests in flight for ``seconds`` and make every request body
unique (its own message id or IVR session), so no request is an idempotent replay.
"""

from __future__ import annotations

import asyncio
import re
import shutil
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
import http_setup

LUA = """
local counter = 0
local tag = ""
local threads = 0
function setup(thread)
  thread:set("tid", threads)
  threads = threads + 1
end
function init(args)
  tag = args[1] .. "t" .. tostring(tid or 0) .. "n"
end
request = function()
  counter = counter + 1
  local unique = tag .. counter
  local contact = string.format("%07d", counter % CONTACTS)
  local body = [==[FIRST]==] .. unique .. [==[MIDDLE]==] .. contact .. [==[LAST]==]
  if HOIIO then body = body .. "S-" .. unique end
  return wrk.format("POST", [==[PATH]==], HEADERS, body)
end
"""


@dataclass(frozen=True, slots=True)
class Result:
    """One run against one server."""

    requests: int
    seconds: float
    errors: int
    p50_ms: float
    p99_ms: float

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0


def have_wrk() -> bool:
    return shutil.which("wrk") is not None


def lua_script(parts: tuple[str, str, str], path: str, hoiio: bool) -> str:
    first, middle, last = parts
    return (
        LUA.replace("FIRST", first)
        .replace("MIDDLE", middle)
        .replace("LAST", last)
        .replace("PATH", path)
        .replace("HOIIO", "true" if hoiio else "false")
        .replace("CONTACTS", str(http_setup.CONTACTS))
        .replace("HEADERS", '{["Content-Type"] = "application/x-www-form-urlencoded"}')
    )


_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    number, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()  # type: ignore[union-attr]
    return float(number) * _UNITS[unit]


def parse_wrk(output: str) -> Result:
    requests = int(re.search(r"(\d+) requests in ([\d.]+)(\w+)", output).group(1))  # type: ignore[union-attr]
    done = re.search(r"requests in ([\d.]+\w+),", output)
    seconds = _ms(done.group(1)) / 1000 if done else 0.0
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", output):
        errors += int(m.group(1))
    socket_errors = r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)"
    if m := re.search(socket_errors, output):
        errors += sum(int(g) for g in m.groups())
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.MULTILINE)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.MULTILINE)
    return Result(
        requests,
        seconds,
        errors,
        _ms(p50.group(1)) if p50 else 0.0,
        _ms(p99.group(1)) if p99 else 0.0,
    )


def run_wrk(
    url: str, script: str, tag: str, connections: int, seconds: float, threads: int = 1
) -> Result:
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as handle:
        handle.write(script)
        path = Path(handle.name)
    try:
        done = subprocess.run(  # noqa: S603
            [
                shutil.which("wrk") or "wrk",
                f"-t{threads}",
                f"-c{connections}",
                f"-d{max(1, round(seconds))}s",
                "--latency",
                "-s",
                str(path),
                url,
                "--",
                tag,
            ],
            capture_output=True,
            text=True,
            check=True,
        )
    finally:
        path.unlink()
    return parse_wrk(done.stdout)


async def run_python(
    url: str,
    make_body: object,
    connections: int,
    seconds: float,
) -> Result:
    """``connections`` client loops in this process; slower than wrk, so ratios understate."""
    assert callable(make_body)
    latencies: list[float] = []
    errors = 0
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    connector = aiohttp.TCPConnector(limit=connections)
    async with aiohttp.ClientSession(connector=connector) as http:
        deadline = time.perf_counter() + seconds
        counter = iter(range(1 << 62))

        async def loop() -> None:
            nonlocal errors
            while time.perf_counter() < deadline:
                data = make_body(next(counter))
                t0 = time.perf_counter()
                try:
                    async with http.post(url, data=data, headers=headers) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except aiohttp.ClientError:
                    ok = False
                latencies.append(time.perf_counter() - t0)
                errors += not ok

        started = time.perf_counter()
        await asyncio.gather(*(loop() for _ in range(connections)))
        elapsed = time.perf_counter() - started
    cuts = [0.0] * 99
    if len(latencies) > 1:
        cuts = statistics.quantiles(latencies, n=100, method="inclusive")
    return Result(len(latencies), elapsed, errors, cuts[49] * 1000, cuts[98] * 1000)
