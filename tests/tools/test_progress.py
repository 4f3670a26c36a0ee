"""Progress on stderr: a bar on a terminal, a counter line every tenth of a long job otherwise."""

from __future__ import annotations

import io

from responder.tools.progress import Progress


def test_progress_is_a_bar_on_a_terminal_and_a_counter_otherwise() -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    tty = Tty()
    bar = Progress(4, tty)
    for n in range(1, 5):
        bar(n)
    bar.finish()
    assert tty.getvalue().endswith("\r[" + "#" * 30 + "] 4/4 event(s)\n")
    plain = io.StringIO()
    counter = Progress(2000, plain)
    for n in range(1, 2001):
        counter(n)
    counter.finish()
    lines = plain.getvalue().splitlines()
    assert lines[0] == "replayed 200/2000 event(s)"
    assert lines[-1] == "replayed 2000/2000 event(s)"
    assert len(lines) == 10
    short = io.StringIO()
    Progress(10, short)(10)
    assert short.getvalue() == ""
