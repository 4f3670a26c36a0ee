"""LineBuffer: lines written once per event-loop iteration, at once outside a loop, for
warnings and when large, in order, and never lost on exit, an exception or SIGTERM."""

from __future__ import annotations

import asyncio
import io
import logging
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from responder.web.linebuffer import LineBuffer
from tests.conftest import REPO


class Writes(io.StringIO):
    """A stream that remembers each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, text: str) -> int:
        self.writes.append(text)
        return super().write(text)


@pytest.fixture
def logger() -> Iterator[logging.Logger]:
    log = logging.getLogger("responder.test.linebuffer")
    log.propagate = False
    log.setLevel(logging.DEBUG)
    yield log
    for handler in list(log.handlers):
        log.removeHandler(handler)
    log.propagate = True


def attach(log: logging.Logger, max_chars: int = 65_536) -> tuple[LineBuffer, Writes]:
    stream = Writes()
    handler = LineBuffer(stream, max_chars)
    handler.setFormatter(logging.Formatter("%(levelname)s %(message)s"))
    log.addHandler(handler)
    return handler, stream


def test_outside_an_event_loop_every_line_is_written_at_once(logger: logging.Logger) -> None:
    _, stream = attach(logger)
    logger.info("one")
    assert stream.getvalue() == "INFO one\n"
    logger.debug("two")
    assert stream.writes == ["INFO one\n", "DEBUG two\n"]


async def test_in_a_loop_the_lines_of_an_iteration_go_out_in_one_write(
    logger: logging.Logger,
) -> None:
    handler, stream = attach(logger)
    for n in range(5):
        logger.info("line %d", n)
    assert stream.getvalue() == ""
    assert handler.held() == 5
    await asyncio.sleep(0)
    assert stream.writes == ["".join(f"INFO line {n}\n" for n in range(5))]
    logger.info("next")
    await asyncio.sleep(0)
    assert stream.writes[-1] == "INFO next\n"
    assert handler.held() == 0


async def test_a_warning_goes_out_at_once_after_the_lines_held_before_it(
    logger: logging.Logger,
) -> None:
    _, stream = attach(logger)
    logger.info("first")
    logger.warning("careful")
    assert stream.writes == ["INFO first\nWARNING careful\n"]
    logger.error("worse")
    assert stream.getvalue().endswith("ERROR worse\n")


async def test_lines_go_out_when_the_held_ones_grow_large(logger: logging.Logger) -> None:
    handler, stream = attach(logger, max_chars=100)
    logger.info("x" * 40)
    logger.info("y" * 40)
    assert stream.getvalue() == ""
    logger.info("z" * 40)
    assert stream.writes == [f"INFO {'x' * 40}\nINFO {'y' * 40}\nINFO {'z' * 40}\n"]
    assert handler.held() == 0


async def test_flush_and_close_write_what_is_held(logger: logging.Logger) -> None:
    handler, stream = attach(logger)
    logger.info("held")
    handler.flush()
    assert stream.getvalue() == "INFO held\n"
    logger.info("closing")
    handler.close()
    assert stream.getvalue() == "INFO held\nINFO closing\n"


def test_a_loop_that_ends_before_its_write_leaves_nothing_stuck(logger: logging.Logger) -> None:
    handler, stream = attach(logger)
    loop = asyncio.new_event_loop()

    def log_and_stop() -> None:
        logger.info("in a loop that is gone")
        loop.stop()  # the write scheduled for the next iteration never runs

    loop.call_soon(log_and_stop)
    loop.run_forever()
    loop.close()
    assert handler.held() == 1

    async def log() -> None:
        logger.info("in the next loop")

    asyncio.run(log())
    assert stream.getvalue() == "INFO in a loop that is gone\nINFO in the next loop\n"


async def test_a_line_from_another_thread_writes_the_held_ones_first(
    logger: logging.Logger,
) -> None:
    _, stream = attach(logger)
    logger.info("loop")
    thread = threading.Thread(target=logger.info, args=("thread",))
    thread.start()
    thread.join()
    assert stream.getvalue() == "INFO loop\nINFO thread\n"


async def test_a_failing_stream_is_reported_and_the_loop_carries_on(
    logger: logging.Logger, capsys: pytest.CaptureFixture[str]
) -> None:
    class Broken(io.StringIO):
        def write(self, text: str) -> int:
            raise OSError("disk full")

    handler = LineBuffer(Broken())
    logger.addHandler(handler)
    logger.info("lost")
    await asyncio.sleep(0)
    assert handler.held() == 0
    assert "disk full" in capsys.readouterr().err
    logger.info("again")  # a new write is scheduled, the loop is not stuck
    await asyncio.sleep(0)
    assert handler.held() == 0


PROGRAM = """
import asyncio, logging, sys
from responder.web.logs import setup_logging
setup_logging("INFO", "text")
log = logging.getLogger("responder.child")
how = sys.argv[1]

def work():
    for n in range(200):
        log.info("line %d", n)
    if how == "raise":
        raise RuntimeError("boom")

async def main():
    work()
    if how == "idle":
        print("ready", flush=True)
        await asyncio.sleep(60)

if how == "stopped":
    # The loop stops before the iteration that would write the lines, and is never run again.
    loop = asyncio.new_event_loop()
    loop.call_soon(lambda: (work(), loop.stop()))
    loop.run_forever()
else:
    asyncio.run(main())
"""


@pytest.mark.parametrize("how", ["return", "raise", "stopped"])
def test_a_process_that_ends_or_crashes_in_a_loop_writes_every_line(how: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", PROGRAM, how],
        capture_output=True,
        text=True,
        cwd=REPO,
        timeout=60,
        check=False,
    )
    lines = [line for line in done.stderr.splitlines() if "responder.child" in line]
    assert [line.split(": ", 1)[1] for line in lines] == [f"line {n}" for n in range(200)]
    assert (done.returncode != 0) == (how == "raise")


def test_lines_do_not_linger_after_their_iteration(tmp_path: Path) -> None:
    """Killed with SIGKILL a moment after logging, a process has written every line."""
    out = tmp_path / "out.log"
    with out.open("w") as err:
        proc = subprocess.Popen(
            [sys.executable, "-c", PROGRAM, "idle"], stdout=subprocess.PIPE, stderr=err, cwd=REPO
        )
        try:
            assert proc.stdout is not None
            assert proc.stdout.readline() == b"ready\n"
            time.sleep(0.2)
        finally:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    assert out.read_text().count("responder.child") == 200


async def test_a_shared_stream_gets_whole_lines_in_writes_of_a_bounded_size(
    logger: logging.Logger,
) -> None:
    stream = Writes()
    handler = LineBuffer(stream, max_write=64)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    lines = ["a" * 20, "é" * 20, "b" * 30, "c" * 100, "d"]  # "é" is two bytes in UTF-8
    for line in lines:
        logger.info(line)
    await asyncio.sleep(0)
    assert stream.writes == [
        f"{'a' * 20}\n{'é' * 20}\n",  # 62 bytes; with the next one it would be 93
        f"{'b' * 30}\n",
        f"{'c' * 100}\n",  # longer than the bound: alone
        "d\n",
    ]
    assert all(text.endswith("\n") for text in stream.writes)
