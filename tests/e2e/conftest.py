"""The app served by gunicorn, and Debian's chromium driven by Playwright.

The server is ``gunicorn -c gunicorn.conf.py wsgi:app`` (production's
settings, with two worker processes of four threads each) on a free
loopback port, started once for this directory (stopped after its last
test: SIGTERM, then SIGKILL) with an environment that points it at the
suite's own database (``tests/conftest.py``): production mode, a fixed
SECRET_KEY, the test clock on, sandbox payments, generous rate limits, and
none of the caller's marketplace settings. So a test sets data up through
the services in this process and then uses the browser against the
production server on the same tables. Between tests the tables are emptied
as everywhere else; the server never keeps a transaction open
(Flask-SQLAlchemy ends each request's session; SQLite runs in WAL mode with
a busy timeout), so the wipe and gunicorn's idle pooled connections coexist.
The server's log ends up in ``artifacts/gunicorn.log``.

Skipped when /usr/bin/chromium is missing (make test / .ci/run install it);
a browser is never downloaded.

Every browser context is watched (``page.watch``): a request for anything
outside the live server is aborted and recorded, and so are uncaught page
errors, console errors, failed sub-resources, server errors and dialogs.
After each test no page may have made a foreign request, thrown an uncaught
error, failed to load a sub-resource, got a 5xx or raised an
``alert``/``prompt``, and the server may log no error or traceback.

Screenshots go to ``tests/e2e/artifacts/`` (git-ignored): ``snap(page,
"step")`` saves ``<test>-<step>.png`` at the end of a journey's step, and a
failed test leaves ``<test>-failure[-n].png`` of every tab it had open.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from marketplace.extensions import db
from tests.conftest import TEST_CONFIG, database_url
from tests.helpers import PASSWORD, make_member

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = Path(__file__).resolve().parent / "artifacts"
# The server logs to a file of this run's own (another run may be going on at the same time);
# it is copied to artifacts/gunicorn.log when the server stops.
SERVER_LOG = Path(tempfile.mkdtemp(prefix="marketplace-e2e-")) / "gunicorn.log"
GUNICORN = Path(sys.executable).parent / "gunicorn"
START_TIMEOUT = 60  # seconds for both workers to boot on a busy machine


def config_variables() -> set[str]:
    """Every environment variable marketplace/config.py reads (found in its source, so new ones count)."""
    source = (ROOT / "marketplace" / "config.py").read_text()
    found = set(
        re.findall(r"""(?:environ\.get|environ\[|_int|_flag|_currencies)\(?\s*["']([A-Z][A-Z0-9_]+)["']""", source)
    )
    return found | {"MARKETPLACE_ENV", "DATABASE_URL", "SECRET_KEY", "MARKETPLACE_TEST_CLOCK"}


# ---------------------------------------------------------------- artifacts and the failure hook


def pytest_configure(config):
    # One directory per run: the last run's files go (only in the main process when tests run in parallel).
    if os.environ.get("PYTEST_XDIST_WORKER") is None and ARTIFACTS.is_dir():
        for old in ARTIFACTS.iterdir():
            if old.is_file():
                old.unlink(missing_ok=True)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item, call):
    """Keep each phase's report on the item, so fixtures can tell in teardown that the test failed."""
    report = yield
    item.stash.setdefault(PHASE_REPORTS, {})[report.when] = report
    return report


PHASE_REPORTS = pytest.StashKey[dict]()


def has_failed(item) -> bool:
    """Did any phase of the test (setup, call, teardown so far) fail?"""
    reports = item.stash.get(PHASE_REPORTS, {})
    return any(r.failed for r in reports.values())


def artifact_name(item) -> str:
    """``test_pool_journey.py::test_x[a-b]`` -> ``test_x-a-b``: safe as a file name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", item.name).strip("-")


def save_screenshot(tab, path: Path) -> Path | None:
    """A full-page screenshot; a tab that cannot be captured (closed, crashed) is skipped."""
    ARTIFACTS.mkdir(exist_ok=True)
    try:
        tab.screenshot(path=str(path), full_page=True, animations="disabled", timeout=10_000)
    except Exception as exc:  # noqa: BLE001 - a screenshot must never hide the test's own outcome
        print(f"screenshot {path.name} failed: {exc}", file=sys.stderr)
        return None
    return path


def snap(tab, step: str) -> Path | None:
    """Save the end state of a journey's step as ``artifacts/<test>-<step>.png``."""
    return tab.snap(step)


# ---------------------------------------------------------------- the server


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def server_environment(app) -> dict[str, str]:
    """The caller's environment without any marketplace setting, plus the suite's own."""
    ours = config_variables()
    env = {k: v for k, v in os.environ.items() if k not in ours and not k.startswith("GUNICORN_")}
    cfg = app.config
    env.update(
        {
            # Production mode: it refuses to start without SECRET_KEY, which is fixed here.
            "MARKETPLACE_ENV": "production",
            "SECRET_KEY": TEST_CONFIG["SECRET_KEY"],
            "DATABASE_URL": database_url(),
            "MARKETPLACE_TEST_CLOCK": "1",
            "MARKETPLACE_PAYMENTS": "sandbox",
            "LOGIN_RATE_LIMIT": TEST_CONFIG["LOGIN_RATE_LIMIT"],
            "COMMENT_RATE_LIMIT": TEST_CONFIG["COMMENT_RATE_LIMIT"],
            "RATELIMIT_STORAGE_URI": "memory://",
            # The same money settings as the app the tests use for their set-up and checks.
            "MARKETPLACE_CURRENCIES": ",".join(cfg["CURRENCIES"]),
            "POOL_FEE_BPS": str(cfg["POOL_FEE_BPS"]),
            "ORIGINATION_FEE_BPS": str(cfg["ORIGINATION_FEE_BPS"]),
            "LOAN_FUNDING_DAYS": str(cfg["LOAN_FUNDING_DAYS"]),
            "DEFAULT_AFTER_DAYS": str(cfg["DEFAULT_AFTER_DAYS"]),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy


def _healthy(url: str) -> bool:
    try:
        with _DIRECT.open(url + "/healthz", timeout=2) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def _log_tail(lines: int = 40) -> str:
    try:
        return "\n".join(SERVER_LOG.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM (gunicorn stops its workers gracefully), then SIGKILL if it lingers."""
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@dataclass
class LiveServer:
    url: str
    process: subprocess.Popen

    def __str__(self) -> str:
        return self.url

    def log_size(self) -> int:
        try:
            return SERVER_LOG.stat().st_size
        except OSError:
            return 0

    def log_since(self, offset: int) -> str:
        try:
            with SERVER_LOG.open("rb") as log:
                log.seek(offset)
                return log.read().decode("utf-8", "replace")
        except OSError:
            return ""


@pytest.fixture(scope="package")
def gunicorn_server(app):
    """gunicorn on a free loopback port, on the suite's database (``app`` has migrated it already)."""
    if not GUNICORN.exists():
        pytest.fail(f"gunicorn is not installed in the venv ({GUNICORN})")
    ARTIFACTS.mkdir(exist_ok=True)
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    command = [str(GUNICORN)]
    if (ROOT / "gunicorn.conf.py").exists():
        command += ["--config", str(ROOT / "gunicorn.conf.py")]  # production's settings; ours below win
    command += ["--bind", f"127.0.0.1:{port}", "--workers", "2", "--threads", "4", "--chdir", str(ROOT)]
    command += ["--timeout", "120", "--graceful-timeout", "5", "--keep-alive", "5"]
    command += ["--error-logfile", "-", "--access-logfile", "-", "--capture-output"]
    command += ["--max-requests", "0"]  # no worker recycling in the middle of a journey
    command += ["--no-control-socket"]  # its default path is shared by every gunicorn of this user
    command += ["wsgi:app"]
    log = SERVER_LOG.open("wb")
    process = subprocess.Popen(
        command,
        cwd=ROOT,
        env=server_environment(app),
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # a Ctrl-C in the terminal reaches pytest, which then stops the server
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while not _healthy(url):
            if process.poll() is not None:
                pytest.fail(f"gunicorn exited with {process.returncode}:\n{_log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"gunicorn did not answer /healthz within {START_TIMEOUT}s:\n{_log_tail()}")
            time.sleep(0.1)
        yield LiveServer(url, process)
    finally:
        _stop(process)
        log.close()
        shutil.copyfile(SERVER_LOG, ARTIFACTS / "gunicorn.log")


@pytest.fixture(scope="package")
def live_server(gunicorn_server) -> str:
    return gunicorn_server.url


@pytest.fixture(scope="package")
def browser():
    if not os.path.exists(CHROMIUM):
        pytest.skip("Debian's chromium is not installed (make chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield instance
        finally:
            instance.close()


# ---------------------------------------------------------------- watching the pages


@dataclass
class Watch:
    """What one browser context did that a healthy page never does."""

    origin: str
    foreign_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_resources: list[str] = field(default_factory=list)
    server_errors: list[str] = field(default_factory=list)
    dialogs: list[tuple[str, str]] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)

    def is_local(self, url: str) -> bool:
        return url == self.origin or url.startswith(self.origin + "/")

    def attach(self, context) -> None:
        # Only URLs outside the live server are routed (the pattern is matched by the driver,
        # so the server's own requests are not slowed down): those are recorded and aborted.
        def block(route):
            self.foreign_requests.append(route.request.url)
            route.abort("blockedbyclient")

        def response(resp):
            # A document may answer 4xx on purpose (a form with errors); a sub-resource never should,
            # and nothing may ever answer 5xx.
            if resp.status >= 500:
                self.server_errors.append(f"{resp.status} {resp.request.method} {resp.url}")
            if resp.status >= 400 and resp.request.resource_type != "document":
                self.failed_resources.append(f"{resp.status} {resp.url}")

        context.route(re.compile("^(?!" + re.escape(self.origin) + "/)"), block)
        context.on("request", lambda req: self.requests.append(req.url))
        context.on("response", response)

    def watch_page(self, tab) -> None:
        def console(message):
            if message.type == "error":
                self.console_errors.append(f"{message.text} @ {message.location.get('url', '')}")

        def dialog(d):
            self.dialogs.append((d.type, d.message))
            # Only the pages' own "are you sure?" confirmations are expected; accept those.
            d.accept() if d.type == "confirm" else d.dismiss()

        tab.on("console", console)
        tab.on("pageerror", lambda exc: self.page_errors.append(str(exc)))
        tab.on("dialog", dialog)

    def assert_healthy(self) -> None:
        assert self.foreign_requests == [], f"requests left {self.origin}: {self.foreign_requests}"
        foreign = [url for url in self.requests if not self.is_local(url) and not url.startswith("data:")]
        assert foreign == [], f"requests left {self.origin}: {foreign}"
        assert self.page_errors == [], f"uncaught page errors: {self.page_errors}"
        assert self.server_errors == [], f"the server answered with an error: {self.server_errors}"
        assert self.failed_resources == [], f"sub-resources failed: {self.failed_resources}"
        unexpected = [d for d in self.dialogs if d[0] != "confirm"]
        assert unexpected == [], f"unexpected dialogs: {unexpected}"

    def clear(self) -> None:
        for name in ("foreign_requests", "console_errors", "page_errors", "failed_resources", "server_errors"):
            getattr(self, name).clear()
        self.dialogs.clear()
        self.requests.clear()


# A traceback, an ERROR/CRITICAL application record (JSON logs) or gunicorn's own [ERROR]/[CRITICAL].
SERVER_ERROR = re.compile(r'Traceback \(most recent call last\)|"level": "(?:ERROR|CRITICAL)"|\[(?:ERROR|CRITICAL)\]')


class Browsing:
    """Watched tabs, each in its own context (its own cookies), for one test or a whole module.

    Each tab has ``tab.watch`` (what it did), ``tab.snap(step)`` (a screenshot of the step's end,
    ``<name>-<step>.png``) and ``tab.artifact(suffix)`` (a path next to the screenshots, for downloads).
    """

    def __init__(self, browser, server: LiveServer, name: str):
        self.browser, self.server, self.name = browser, server, name
        self.contexts: list = []
        self.tabs: list = []
        self.watches: list[Watch] = []
        self.log_offset = server.log_size()

    def open(self, **options):
        context = self.browser.new_context(base_url=self.server.url, **options)
        watch = Watch(self.server.url)
        watch.attach(context)
        tab = context.new_page()
        tab.set_default_timeout(10_000)
        watch.watch_page(tab)
        tab.watch = watch
        tab.snap = lambda step: save_screenshot(tab, ARTIFACTS / f"{self.name}-{step}.png")
        tab.artifact = lambda suffix: ARTIFACTS / f"{self.name}-{suffix}"
        self.contexts.append(context)
        self.watches.append(watch)
        self.tabs.append(tab)
        return tab

    def start_test(self, name: str) -> None:
        """A module-wide group: the next test's screenshots carry its name; only its own events count."""
        self.name = name
        for watch in self.watches:
            watch.clear()
        self.log_offset = self.server.log_size()

    def screenshot_failure(self) -> None:
        many = len(self.tabs) > 1
        for n, tab in enumerate(self.tabs, start=1):
            path = save_screenshot(tab, ARTIFACTS / f"{self.name}-failure{f'-{n}' if many else ''}.png")
            if path is not None:
                print(f"failure screenshot: {path}", file=sys.stderr)

    def check(self) -> None:
        """No page misbehaved and the server logged no error since the test began."""
        for watch in self.watches:
            watch.assert_healthy()
        logged = self.server.log_since(self.log_offset)
        assert not SERVER_ERROR.search(logged), f"the server logged an error during the test:\n{logged[-4000:]}"

    def close(self) -> None:
        for context in self.contexts:
            context.close()
        self.contexts.clear()


@pytest.fixture
def open_page(request, browser, gunicorn_server):
    """``open_page(**context_options)``: a tab in a fresh context (its own cookies), watched.

    A failed test leaves a screenshot of each of its tabs; afterwards every tab must be healthy.
    """
    tabs = Browsing(browser, gunicorn_server, artifact_name(request.node))
    try:
        yield tabs.open
    finally:
        if has_failed(request.node):
            tabs.screenshot_failure()
        tabs.close()
    tabs.check()


@pytest.fixture
def page(open_page):
    return open_page()


# ---------------------------------------------------------------- people and signing in


@dataclass(frozen=True)
class Person:
    """Plain values of a member made through the services (no ORM object kept across requests)."""

    id: int
    email: str
    name: str


def person(
    role: str = "member", *, verified: bool = True, funds: dict | None = None, name: str | None = None
) -> Person:
    """``tests.helpers.make_member`` whose transaction is finished before the browser runs."""
    member = make_member(role, verified=verified, funds=funds, name=name)
    found = Person(member.id, member.email, member.display_name)
    db.session.remove()  # end this process's transaction: the server writes next
    return found


def sign_in(page, email: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label(re.compile(r"^Password")).fill(password)
    with page.expect_navigation():
        page.get_by_role("button", name="Sign in").click()
    assert page.locator(".nav-user").is_visible(), page.locator("main").inner_text()


def sign_out(page) -> None:
    with page.expect_navigation():
        page.get_by_role("button", name="Sign out").click()
    assert "You are signed out." in flash_text(page)
    assert page.locator(".nav-user").count() == 0


def flash_text(page) -> str:
    """The flashed messages on the current page, whitespace collapsed."""
    return re.sub(r"\s+", " ", page.locator(".flashes").inner_text()).strip()
