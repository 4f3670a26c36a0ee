"""The console in a real browser: ``responder serve`` as a child process, driven in Debian's
headless Chromium through selenium and chromedriver, against fake provider APIs.

Each test saves screenshots of the pages it went through to ``test-artifacts/console/``
(``RESPONDER_TEST_ARTIFACTS`` moves the folder). Without Chromium the tests are skipped, except
in CI (``CI=true``), where they fail: ``.ci/run`` installs it.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from responder.testing.fakes import FakeProvider
from responder.testing.process import ServeProcess
from tests.conftest import REPO

T = TypeVar("T")
TOKEN = "browser-console-token-0123456789"
ARTIFACTS = Path(os.environ.get("RESPONDER_TEST_ARTIFACTS", REPO / "test-artifacts")) / "console"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
WAIT = 20.0


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (pip install -e '.[dev]')"
    for path in (CHROMIUM, CHROMEDRIVER):
        if not os.access(path, os.X_OK):
            return f"{path} not found (apt-get install chromium chromium-driver)"
    return None


MISSING = _missing()
if MISSING and os.environ.get("CI", "").lower() == "true":
    raise RuntimeError(f"the browser tests must run in CI: {MISSING}")
pytestmark = pytest.mark.skipif(MISSING is not None, reason=f"no browser: {MISSING}")

if MISSING is None:
    from selenium import webdriver
    from selenium.common.exceptions import (
        NoSuchElementException,
        StaleElementReferenceException,
        TimeoutException,
    )
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webdriver import WebDriver
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support.ui import WebDriverWait


class Loop:
    """An event loop on a thread of its own, for the fakes and the server, so the tests can
    block in selenium calls while the fake APIs answer."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
        self.loop.close()


class World:
    """The server, its fake providers and the browser, for the whole module."""

    def __init__(self, loop: Loop, server: ServeProcess, hoiio: FakeProvider, driver: Any) -> None:
        self.loop = loop
        self.server = server
        self.hoiio = hoiio
        self.driver: WebDriver = driver

    def url(self, path: str) -> str:
        return f"{self.server.url}{path}"

    def get(self, path: str) -> None:
        self.driver.get(self.url(path))

    def wait(self, until: Callable[[Any], T], what: str, within: float = WAIT) -> T:
        try:
            # An element read while its page is being replaced is stale: look again.
            return WebDriverWait(
                self.driver,
                within,
                poll_frequency=0.1,
                ignored_exceptions=(StaleElementReferenceException, NoSuchElementException),
            ).until(until)
        except TimeoutException:
            self.shot(f"FAILED-{''.join(c if c.isalnum() else '-' for c in what)}")
            page = self.driver.page_source[:1500]
            raise AssertionError(
                f"waited {within:g}s for {what} on {self.driver.current_url}:\n{page}"
            ) from None

    def find(self, css: str) -> WebElement:
        """The element, waited for (a page may still be drawing)."""
        found = self.wait(lambda d: d.find_elements(By.CSS_SELECTOR, css), f"element {css}")
        return found[0]

    def all(self, css: str) -> list[WebElement]:
        return list(self.driver.find_elements(By.CSS_SELECTOR, css))

    def text(self, css: str) -> str:
        return str(self.find(css).text)

    def shot(self, name: str) -> Path:
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        path = ARTIFACTS / f"{name}.png"
        self.driver.save_screenshot(str(path))
        return path

    def log_in(self) -> None:
        self.get("/console/login")
        self.find("#token").send_keys(TOKEN)
        self.find("#login-button").click()
        # Until the page it leads to is drawn: a navigation started before that one ends
        # would be overtaken by it.
        self.wait(
            lambda d: (
                "/console/login" not in d.current_url
                and d.execute_script("return document.readyState") == "complete"
                and d.find_elements(By.CSS_SELECTOR, "nav a")
            ),
            "the login",
        )

    def post_webhook(self, channel: str, form: dict[str, str]) -> None:
        data = urllib.parse.urlencode(form).encode()
        with urllib.request.urlopen(self.url(f"/webhooks/{channel}"), data, timeout=10) as resp:
            assert resp.status == 200

    def problems(self) -> list[str]:
        """What the browser logged as errors: a refused script or style, a failed request."""
        return [
            str(entry["message"])
            for entry in self.driver.get_log("browser")
            if entry["level"] == "SEVERE"
        ]


def _driver(downloads: Path) -> Any:
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-quic",
        "--no-first-run",
        "--window-size=1280,1000",
        f"--user-data-dir={tempfile.mkdtemp(prefix='responder-chromium-')}",
    ):
        options.add_argument(flag)
    options.add_experimental_option(
        "prefs",
        {"download.default_directory": str(downloads), "download.prompt_for_download": False},
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    return webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)


def _coverage(path: Path) -> None:
    """``responder test --coverage-json`` over the two examples, as an author would run it."""
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "responder",
            "test",
            str(REPO / "examples" / "ivr-menu"),
            str(REPO / "examples" / "sms-survey"),
            "--coverage-json",
            str(path),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    work = tmp_path_factory.mktemp("browser")
    _coverage(work / "coverage.json")
    loop = Loop()
    hoiio = loop.run(FakeProvider("hoiio").start())
    textit = loop.run(FakeProvider("textit").start())
    http = loop.run(FakeProvider("http").start())
    env = {
        "RESPONDER_CONSOLE_TOKEN": TOKEN,
        "RESPONDER_CONSOLE_COVERAGE": str(work / "coverage.json"),
        "RESPONDER_PUBLIC_URL": "https://responder.test",
        "HOIIO_APP_ID": "app-1",
        "HOIIO_ACCESS_TOKEN": "hoiio-token-secret",
        "HOIIO_API_URL": hoiio.url,
        "TEXTIT_API_TOKEN": "textit-token-secret",
        "TEXTIT_API_URL": textit.url,
    }
    server = ServeProcess(
        [
            "--rules",
            str(REPO / "examples" / "ivr-menu"),
            "--rules",
            str(REPO / "examples" / "sms-survey"),
            "--store",
            f"sqlite:///{work / 'responder.db'}",
        ],
        env,
        work / "serve.log",
    )
    loop.run(server.start())
    driver = _driver(work / "downloads")
    world = World(loop, server, hoiio, driver)
    world.downloads = work / "downloads"  # type: ignore[attr-defined]
    world.work = work  # type: ignore[attr-defined]
    try:
        world.log_in()
        yield world
    finally:
        driver.quit()
        loop.run(server.stop())
        for fake in (hoiio, textit, http):
            loop.run(fake.stop())
        loop.close()
        assert "Traceback" not in server.output(), server.output()[-3000:]


@pytest.fixture
def browser(world: World) -> World:
    world.driver.get_log("browser")  # start each test with an empty browser log
    return world


def test_login_is_refused_without_the_token(world: World) -> None:
    driver = world.driver
    driver.delete_all_cookies()
    try:
        world.get("/console/outbox")
        world.wait(lambda d: "/console/login?next=/console/outbox" in d.current_url, "the login")
        world.find("#token").send_keys("not-the-token-at-all")
        world.find("#login-button").click()
        world.wait(lambda d: d.find_elements(By.ID, "login-error"), "the refusal")
        assert world.text("#login-error") == "wrong token"
        assert world.all("nav") == []
        world.shot("login-refused")
        for page in ("/console/conversations", "/console/rules", "/console/simulator"):
            world.get(page)
            assert "/console/login" in driver.current_url, page
        world.find("#token").send_keys(TOKEN)
        world.find("#login-button").click()
        world.wait(
            lambda d: (
                d.current_url.endswith("/console/simulator")
                and d.find_element(By.TAG_NAME, "body").get_attribute("data-ready")
            ),
            "the page asked for",
        )
    finally:
        world.log_in()


def chat(world: World, text: str, replies: int) -> None:
    world.find("#chat-text").send_keys(text)
    world.find("#chat-send").click()
    world.wait(lambda d: len(world.all("#chat-log .msg.bot")) >= replies, f"reply {replies}")


def test_the_sms_survey_in_the_simulator_chat_to_the_end(browser: World) -> None:
    world = browser
    world.get("/console/simulator")
    world.wait(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"), "ready")
    chat(world, "JOIN", 1)
    assert world.all("#chat-log .msg.bot")[0].text.startswith("Thanks for joining our survey!")
    assert world.text("#chat-current") == "rating"
    chat(world, "4", 2)
    chat(world, "yes", 3)
    chat(world, "Faster delivery please", 4)
    world.wait(lambda d: world.text("#chat-status") == "ended", "the end of the survey")
    assert world.text("#chat-outcome") == "completed"
    bots = [e.text for e in world.all("#chat-log .msg.bot")]
    assert bots[-1] == "Thank you for your answers!"
    assert "POST https://survey.example.com/responses" in world.text("#chat-log .msg.http")
    world.driver.execute_script("window.scrollTo(0, document.querySelector('.sims').offsetTop - 8)")
    world.shot("simulator-chat")
    # The session saved as a transcript test, by the page's button; responder test passes it.
    world.find("#chat-save").click()
    downloads: Path = world.downloads  # type: ignore[attr-defined]
    saved = world.wait(lambda d: sorted(downloads.glob("*.test.yaml")), "the saved transcript")
    folder = world.work / "survey-saved"  # type: ignore[attr-defined]
    shutil.copytree(REPO / "examples" / "sms-survey", folder)
    for old in folder.glob("*.test.yaml"):
        old.unlink()
    shutil.move(saved[0], folder / "saved.test.yaml")
    done = subprocess.run(
        [sys.executable, "-m", "responder", "test", str(folder / "saved.test.yaml")],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed, 0 failed" in done.stdout
    assert world.problems() == []


def ivr(world: World, count: int) -> str:
    world.wait(lambda d: len(world.all("#phone-log .msg.ivr")) >= count, f"IVR block {count}")
    return str(world.all("#phone-log .msg.ivr")[-1].text)


def test_the_ivr_menu_on_the_simulator_keypad_to_the_end(browser: World) -> None:
    world = browser
    world.get("/console/simulator")
    world.wait(lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-ready"), "ready")
    world.find("#phone-call").click()
    assert ivr(world, 1).startswith("Welcome. Press 1 for sales, 2 to leave a message.")
    assert world.text("#phone-current") == "menu"
    world.find("#key-1").click()  # one key is all the menu's gather takes
    assert ivr(world, 2).startswith("Connecting you to sales.")
    world.find("#transfer-busy").click()
    assert ivr(world, 3).startswith("Please leave a message after the tone.")
    world.find("#phone-record").click()
    assert ivr(world, 4).startswith("Thank you, we will call you back.")
    world.wait(lambda d: world.text("#phone-status") == "ended", "the end of the call")
    assert world.text("#phone-outcome") == "voicemail left"
    assert world.find("#phone").get_attribute("data-in-call") == "false"
    assert world.find("#phone-call").is_enabled()
    world.driver.execute_script("window.scrollTo(0, document.querySelector('.sims').offsetTop - 8)")
    world.shot("simulator-phone")
    # Three wrong keys end the call with a goodbye.
    world.find("#phone-call").click()
    ivr(world, 1)
    for n, key in enumerate(("7", "9", "star"), start=2):
        world.find(f"#key-{key}").click()
        said = ivr(world, n)
    assert said.startswith("Sorry, we did not get that. Goodbye.")
    world.wait(lambda d: world.text("#phone-outcome") == "no valid choice", "the goodbye")
    assert world.problems() == []


def test_a_conversations_page_after_real_webhooks(browser: World) -> None:
    world = browser
    contact = "+6597000001"
    for n, text in enumerate(("JOIN", "5", "no"), start=1):
        world.post_webhook(
            "textit",
            {
                "event": "mo_sms",
                "sms": f"browser-{n}",
                "phone": contact,
                "relayer": "1",
                "relayer_phone": "+6531234567",
                "text": text,
            },
        )
    world.get("/console/conversations")
    world.find("#contact").send_keys(contact)
    world.find("#search").click()
    world.wait(lambda d: world.all("a.conversation-link"), "the conversation found")
    assert len(world.all("a.conversation-link")) == 1
    world.shot("conversations")
    world.find("a.conversation-link").click()
    world.wait(lambda d: world.all("#state"), "the conversation's page")
    assert world.text("#state") == "comment"
    assert world.text("#status") == "active"
    assert "rating" in world.text("#vars")
    assert "recommend" in world.text("#vars")
    assert world.text("#timer").startswith("due ")
    steps = world.all("#history > li")
    assert len(steps) == 3
    assert "“no”" in steps[0].text
    assert "recommend → comment" in steps[0].text
    world.wait(lambda d: world.all("figure.diagram svg"), "the diagram of where it is")
    world.shot("conversation")
    # Its webhooks, explained.
    steps[0].find_element(By.LINK_TEXT, "explain").click()
    world.wait(lambda d: world.all("#story"), "the explanation")
    story = world.text("#story")
    assert 'textit sms.received (mo_sms) from +6597000001: "no"' in story
    assert "dialogue 'survey': 'recommend' -> 'comment'" in story
    assert 'replied: "Last question' in story
    world.shot("webhook")
    world.get("/console/webhooks")
    assert len(world.all("a.webhook-link")) >= 3
    world.shot("webhooks")
    assert world.problems() == []


def test_a_dead_call_retried_from_the_outbox_page_reaches_the_fake_hoiio(browser: World) -> None:
    world = browser
    fake = world.hoiio
    fake.behaviour.hoiio_status = "error_insufficient_credit"  # a permanent failure
    before = len(fake.calls("ivr/middle/gather"))
    call = {"session": "BROWSER-1", "txn_ref": "AA-B-1", "from": "+6597000002", "to": "+6531234567"}
    world.post_webhook("hoiio", {"ivr_block": "answer", "call_state": "ringing", **call})
    deadline = time.monotonic() + WAIT
    while True:
        world.get("/console/outbox")
        if world.all("tr.item.dead"):
            break
        assert time.monotonic() < deadline, "the call never went dead"
        time.sleep(0.2)
    row = world.find("tr.item.dead")
    assert "ivr/middle/gather" in row.text
    assert "error_insufficient_credit" in row.text
    assert "hoiio-token-secret" not in world.driver.page_source
    key = row.get_attribute("data-key")
    world.shot("outbox-dead")
    fake.behaviour.hoiio_status = "success_ok"
    row.find_element(By.CSS_SELECTOR, "button.retry").click()
    world.wait(lambda d: world.all("#notice"), "the retry's notice")
    assert "requeued 1 dead item(s)" in world.text("#notice")
    deadline = time.monotonic() + WAIT
    while len(fake.calls("ivr/middle/gather")) < before + 2:
        assert time.monotonic() < deadline, "the retried call never reached the fake Hoiio"
        time.sleep(0.05)
    retried = fake.calls("ivr/middle/gather")[-1]
    assert retried.params["session"] == "BROWSER-1"
    deadline = time.monotonic() + WAIT
    while True:
        world.get("/console/outbox")
        if world.all(f'tr.item.sent[data-key="{key}"]'):
            break
        assert time.monotonic() < deadline, "the retried call never showed as sent"
        time.sleep(0.2)
    assert world.all(f'tr.item.dead[data-key="{key}"]') == []
    world.shot("outbox-retried")
    assert world.problems() == []


def test_each_dialogue_is_drawn_with_its_coverage(browser: World) -> None:
    world = browser
    world.get("/console/rules")
    world.wait(
        lambda d: d.find_element(By.TAG_NAME, "body").get_attribute("data-diagrams"), "drawn"
    )
    svgs = world.all("section.dialogue figure.diagram svg")
    assert len(svgs) == 2
    for svg in svgs:
        assert len(svg.find_elements(By.CSS_SELECTOR, "g.node, g[id*='state-']")) >= 5
    menu = world.find("#dialogue-main-menu")
    assert "sales" in menu.text
    assert "voicemail" in menu.text
    assert "coverage: rules" in world.text("#coverage")
    assert "states 5/5 covered" in menu.text
    world.shot("rules")
    world.driver.execute_script("arguments[0].scrollIntoView()", menu)
    world.shot("rules-diagram")
    assert world.problems() == []


def test_the_pages_hold_no_secret(browser: World) -> None:
    world = browser
    for page in (
        "/console/conversations",
        "/console/webhooks",
        "/console/outbox",
        "/console/rules",
    ):
        world.get(page)
        source = world.driver.page_source
        for secret in ("hoiio-token-secret", "textit-token-secret", TOKEN):
            assert secret not in source, (page, secret)
    cookies = {c["name"]: c for c in world.driver.get_cookies()}
    assert cookies["responder_console"]["httpOnly"] is True
    assert TOKEN not in json.dumps(cookies)
