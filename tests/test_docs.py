"""The README is a landing page and the manual a docs site that builds strictly."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import unicodedata
from pathlib import Path
from urllib.parse import parse_qsl

from tests.conftest import REPO

README = REPO / "README.md"
# Where the manual lives: the docs pages, and the performance journal beside the benchmarks.
MANUAL = [*sorted((REPO / "docs").glob("*.md")), REPO / "benchmarks" / "README.md"]
# Every section of the README from before it became a landing page (98 KB, one page).
OLD_SECTIONS = [
    "Install, run, test",
    "Settings",
    "HTTP interface",
    "What bad input gets",
    "Security",
    "Who may post webhooks",
    "Refused input and limits",
    "Fuzzing",
    "Exactly one reply per event",
    "Delivery",
    "Scaling out on Redis",
    "Writing rules",
    "Rule keys",
    "Conditions (`when`)",
    "Calendars",
    "Templates",
    "Event kinds",
    "Dialogues",
    "Trying it in the terminal",
    "Compliance",
    "Testing your rules",
    "Dialogue diagrams",
    "Editor completion and validation",
    "Examples",
    "Operating responder",
    "Starting and stopping",
    "Reloading rules",
    "Metrics",
    "Logs and traces",
    "Recording webhooks",
    "Replaying traffic against new rules",
    "Performance",
    "Development",
]
# What a fresh machine needs, exactly as .ci/run and the docs' install page say it.
COMMANDS = [
    "pip install -e '.[dev]'",
    "responder serve ",
    "pytest ",
]


def headings(path: Path) -> list[str]:
    """The Markdown headings of a file, outside fenced code."""
    found, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (match := re.match(r"#{1,6} (.+)", line)):
            found.append(match.group(1).strip())
    return found


def slug(heading: str) -> str:
    """The anchor of a heading, as mkdocs and GitHub make it (for the headings we write)."""
    text = unicodedata.normalize("NFKD", heading.replace("`", ""))
    text = re.sub(r"[^\w\s-]", "", text.encode("ascii", "ignore").decode()).strip().lower()
    return re.sub(r"[-\s]+", "-", text)


def test_the_docs_site_builds_strictly(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "NO_MKDOCS_2_WARNING": "1"},
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert (tmp_path / "index.html").is_file()
    # The performance page is benchmarks/README.md, taken in whole by the build.
    performance = (tmp_path / "performance" / "index.html").read_text(encoding="utf-8")
    assert "The rule index, for rule authors" in performance


def test_the_readme_is_a_landing_page() -> None:
    assert README.stat().st_size <= 12 * 1024


def test_every_old_section_has_a_home() -> None:
    homes = {heading for page in MANUAL for heading in headings(page)}
    assert [title for title in OLD_SECTIONS if title not in homes] == []


def test_the_readme_keeps_the_commands_a_fresh_machine_needs() -> None:
    readme = README.read_text(encoding="utf-8")
    install = (REPO / "docs" / "install.md").read_text(encoding="utf-8")
    block = readme.split("```sh\n", 1)[1].split("```", 1)[0]
    assert block in install, "the README's commands and the install page's differ"
    for command in COMMANDS:
        assert any(line.startswith(command) for line in block.splitlines()), command
    assert (REPO / ".ci" / "run").read_text().rstrip().endswith("\npytest")


def test_the_readme_links_resolve() -> None:
    links = re.findall(r"\]\(([^)\s]+)\)", README.read_text(encoding="utf-8"))
    local = [link for link in links if not re.match(r"[a-z]+:", link)]
    assert len(local) >= 16
    for link in local:
        path, _, anchor = link.partition("#")
        target = REPO / path
        assert target.exists(), link
        if anchor:
            assert anchor in {slug(heading) for heading in headings(target)}, link


def test_every_docs_page_is_linked_from_the_readme() -> None:
    readme = README.read_text(encoding="utf-8")
    for page in MANUAL:
        if page.name not in ("index.md", "performance.md"):
            assert f"]({page.relative_to(REPO).as_posix()})" in readme, page.name


def tour() -> tuple[str, dict[str, str], dict[str, object]]:
    """The README tour's rule file, the form its curl posts and the reply it shows."""
    section = README.read_text(encoding="utf-8").split("## A two-minute tour\n", 1)[1]
    rules = section.split("```yaml\n", 1)[1].split("```", 1)[0]
    curl = section.split("curl -s ", 1)[1].split("```", 1)[0]
    form = re.search(r"-d '([^']+)'", curl)
    reply = re.search(r"^# (\{.*\})$", curl, re.M)
    assert form
    assert reply
    return rules, dict(parse_qsl(form.group(1))), json.loads(reply.group(1))


async def test_the_readme_tour_answers_as_shown(make_client, tmp_path: Path) -> None:
    rules, form, reply = tour()
    (tmp_path / "tour").mkdir()
    (tmp_path / "tour" / "hours.yaml").write_text(rules)
    client = await make_client(tmp_path / "tour")
    for _ in range(2):  # the second time as a provider's retry: the same answer
        resp = await client.post("/webhooks/textit", data=form)
        assert resp.status == 200
        assert await resp.json() == reply
