"""Hot reload: validate the rule files again and swap them in, or keep the old ones.

The engine reads its rule set once per event, so a swap is one reference assignment:
requests in flight finish on the rules they started with, the next ones see the new rules,
and none waits for or fails because of a reload.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Final

from watchfiles import Change, awatch

from responder.errors import Problem, RulesError
from responder.rules.loader import SUFFIXES, load_rules
from responder.rules.model import RuleSet
from responder.runtime.engine import Engine
from responder.web.metrics import Metrics
from responder.web.startup import public_url_warning

log = logging.getLogger("responder.reload")

# Changes are gathered for this long before one reload (an editor saving several files,
# or writing a file in two steps, causes one reload, not three).
WATCH_DEBOUNCE_MS: Final = 300
LOADING_SWITCH_INTERVAL: Final = 0.0005  # seconds


def _existing(paths: Sequence[str]) -> list[str]:
    return [p for p in paths if Path(p).exists()]


def _rule_file_changed(change: Change, path: str) -> bool:
    return path.endswith(SUFFIXES)


# Seconds after a reload before the old rules are collected and the new ones frozen: longer
# than a webhook decides on the rules it started with.
REFREEZE_AFTER = 10.0


def _refreeze() -> None:
    gc.collect()
    gc.freeze()


class Reloader:
    """Loads ``paths`` into ``engine`` on request; one reload at a time, requests coalesce."""

    def __init__(self, paths: Sequence[str], engine: Engine, metrics: Metrics) -> None:
        self.paths = tuple(paths)
        self.engine = engine
        self.metrics = metrics
        self._lock = asyncio.Lock()
        self._again = False
        self._task: asyncio.Task[None] | None = None
        self._refreeze: asyncio.TimerHandle | None = None
        # The problems of the last reload that was refused; emptied by one that succeeds.
        self.problems: tuple[Problem, ...] = ()
        self.reloaded: float | None = None  # time.time() of the last reload, either way
        metrics.rules_loaded(len(engine.rules.rules), len(engine.rules.dialogues))

    def _refreeze_later(self) -> None:
        if self._refreeze is not None:
            self._refreeze.cancel()
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no webhooks in flight outside a loop
            _refreeze()
            return
        self._refreeze = loop.call_later(REFREEZE_AFTER, _refreeze)

    def reload_now(self) -> bool:
        """Load and swap in the calling thread (blocking); True when the new rules serve."""
        return self._swap(self._load())

    async def reload(self) -> bool:
        """Load in a worker thread, so requests keep being answered meanwhile, then swap."""
        async with self._lock:
            # The loader is pure Python and holds the GIL: a short switch interval lets the
            # event loop take it back within LOADING_SWITCH_INTERVAL instead of 5 ms.
            interval = sys.getswitchinterval()
            sys.setswitchinterval(min(interval, LOADING_SWITCH_INTERVAL))
            try:
                loaded = await asyncio.to_thread(self._load)
            finally:
                sys.setswitchinterval(interval)
            return self._swap(loaded)

    def request(self, why: str) -> None:
        """Ask for a reload from a signal handler or the watcher; never blocks.

        A request arriving while a reload runs causes exactly one more reload after it,
        so the last change is always the one that ends up loaded.
        """
        log.info("reloading rules (%s)", why)
        if self._task is not None and not self._task.done():
            self._again = True
            return
        self._task = asyncio.get_running_loop().create_task(self._run(), name="reload")

    async def _run(self) -> None:
        while True:
            self._again = False
            try:
                await self.reload()
            except Exception:  # a bug in loading must not kill the server
                log.exception("reload failed")
                self.metrics.reloads.labels("failed").inc()
            if not self._again:
                return

    async def wait(self) -> None:
        """Wait for the reload in progress (if any) to finish."""
        if self._task is not None:
            await asyncio.shield(self._task)

    async def watch(self, stop: asyncio.Event | None = None) -> None:
        """Reload whenever a rule file under ``paths`` is created, changed or deleted."""
        roots = _existing(self.paths)
        missing = sorted(set(self.paths) - set(roots))
        if missing:
            log.warning("not watching %s: no such file or directory", ", ".join(missing))
        if not roots:
            return
        log.info("watching %s for rule changes", ", ".join(roots))
        async for changes in awatch(
            *roots,
            watch_filter=_rule_file_changed,
            debounce=WATCH_DEBOUNCE_MS,
            stop_event=stop,
            recursive=True,
        ):
            names = sorted({Path(path).name for _, path in changes})
            self.request(f"changed: {', '.join(names[:5])}{' ...' if len(names) > 5 else ''}")

    def _load(self) -> RuleSet | RulesError:
        try:
            return load_rules(self.paths)
        except RulesError as exc:
            return exc

    def _swap(self, loaded: RuleSet | RulesError) -> bool:
        self.reloaded = time.time()
        if isinstance(loaded, RulesError):
            self.problems = tuple(loaded.problems)
            for problem in loaded.problems:
                log.error("reload refused: %s", problem)
            log.error(
                "the previous rules keep serving (%d problem(s) in the new ones)",
                len(loaded.problems),
            )
            self.metrics.reloads.labels("failed").inc()
            return False
        self.engine.rules = loaded
        self.problems = ()
        # The rules frozen out of the collector's sight at start-up may be garbage now: back
        # in its sight at once, and once the webhooks still deciding on them are done, one
        # full pass (65 ms with 10,000 rules) and everything alive out of sight again, as at
        # start-up. Frozen while a webhook still held them, their reference cycles (compiled
        # templates) would outlive them until the next reload.
        gc.unfreeze()
        self._refreeze_later()
        self.metrics.reloads.labels("ok").inc()
        self.metrics.rules_loaded(len(loaded.rules), len(loaded.dialogues))
        log.info(
            "rules reloaded: %d rule(s), %d dialogue(s) from %d file(s)",
            len(loaded.rules),
            len(loaded.dialogues),
            len(loaded.files),
        )
        warning = public_url_warning(self.engine.runner.public_url, loaded)
        if warning:
            log.warning("%s", warning)
        for problem in loaded.warnings:
            log.warning("%s", problem)
        return True
