"""Rules: the loaded files, rules and dialogues, each dialogue drawn as its state diagram
with the coverage of the last test run; reload problems, and a reload."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from aiohttp import web

from responder.console import coverage
from responder.console.views import console_of, render
from responder.tools.graph import diagram
from responder.web.server import ENGINE, RELOADER

log = logging.getLogger("responder.console")


async def listing(request: web.Request) -> web.Response:
    console = console_of(request)
    rules = request.config_dict[ENGINE].rules
    reloader = request.config_dict[RELOADER]
    report = coverage.read(console.settings.console_coverage)
    dialogues: list[dict[str, Any]] = []
    for dialogue in rules.dialogues.values():
        covered = report.of(dialogue) if report is not None else None
        marks = {}
        if covered is not None:
            marks = {
                state: "covered" if state in covered.hit_states else "uncovered"
                for state in dialogue.states
            }
        dialogues.append(
            {
                "name": dialogue.name,
                "mode": dialogue.mode,
                "where": f"{dialogue.file}:{dialogue.line}",
                "description": dialogue.description,
                "states": len(dialogue.states),
                "chart": diagram(rules, dialogue.name, marks),
                "coverage": covered,
            }
        )
    rows = [
        {
            "name": rule.name,
            "on": ", ".join(sorted(rule.kinds)),
            "where": f"{rule.file}:{rule.line}",
            "start": rule.start,
            "priority": rule.priority,
            "description": rule.description,
            "hit": None if report is None else report.rule_hit(rule.name, rule.file),
        }
        for rule in rules.rules
    ]
    return render(
        request,
        "rules.html",
        page="rules",
        files=rules.files,
        paths=reloader.paths,
        rules=rows,
        dialogues=dialogues,
        problems=[str(p) for p in reloader.problems],
        reloaded=reloader.reloaded,
        report=report,
        notice=request.query.get("notice", ""),
    )


async def reload(request: web.Request) -> web.StreamResponse:
    reloader = request.config_dict[RELOADER]
    try:
        ok = await reloader.reload()
    except Exception:  # a bug in loading must not take the console down
        log.exception("reload from the console failed")
        ok = False
    notice = "reloaded" if ok else "reload refused: the previous rules keep serving"
    location = "/console/rules?" + urlencode({"notice": notice})
    return web.Response(status=303, headers={"Location": location})
