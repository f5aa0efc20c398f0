"""A real server in a thread and Debian's chromium driven by Playwright.

The server runs the same app (and database) as the rest of the suite, so a
test can set data up through the services and then use the browser.
Skipped when /usr/bin/chromium is missing (make test / .ci/run install it);
a browser is never downloaded.

Every browser context is watched (``page.watch``): a request for anything
outside the live server is aborted and recorded, and so are uncaught page
errors, console errors, failed sub-resources and dialogs. After each test no
page may have made a foreign request, thrown an uncaught error, failed to
load a sub-resource or raised an ``alert``/``prompt``.
"""

from __future__ import annotations

import os
import re
import threading
from dataclasses import dataclass, field

import pytest
from werkzeug.serving import WSGIRequestHandler, make_server

from marketplace.extensions import db
from tests.helpers import PASSWORD, make_member

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]


class KeepAliveHandler(WSGIRequestHandler):
    """HTTP/1.1 keeps the browser's connections open: a page and its assets load much faster."""

    protocol_version = "HTTP/1.1"


@pytest.fixture(scope="session")
def live_server(app):
    server = make_server("127.0.0.1", 0, app, threaded=True, request_handler=KeepAliveHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()


@pytest.fixture(scope="session")
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


@dataclass
class Watch:
    """What one browser context did that a healthy page never does."""

    origin: str
    foreign_requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    page_errors: list[str] = field(default_factory=list)
    failed_resources: list[str] = field(default_factory=list)
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
            # A document may answer 4xx on purpose (a form with errors); a sub-resource never should.
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
        assert self.failed_resources == [], f"sub-resources failed: {self.failed_resources}"
        unexpected = [d for d in self.dialogs if d[0] != "confirm"]
        assert unexpected == [], f"unexpected dialogs: {unexpected}"


@pytest.fixture
def open_page(browser, live_server):
    """``open_page(**context_options)``: a tab in a fresh context (its own cookies), watched."""
    contexts, watches = [], []

    def opener(**options):
        context = browser.new_context(base_url=live_server, **options)
        watch = Watch(live_server)
        watch.attach(context)
        tab = context.new_page()
        tab.set_default_timeout(10_000)
        watch.watch_page(tab)
        tab.watch = watch
        contexts.append(context)
        watches.append(watch)
        return tab

    try:
        yield opener
    finally:
        for context in contexts:
            context.close()
    for watch in watches:
        watch.assert_healthy()


@pytest.fixture
def page(open_page):
    return open_page()


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
    db.session.remove()  # end the test thread's transaction: the server thread writes next
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
