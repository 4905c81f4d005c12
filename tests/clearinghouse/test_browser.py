"""End to end in a real browser: headless Chromium walks the transition page (KB823313 method
2), the license token arrives in the outbox e-mail, and a license server installs it.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe: JSON
messages ending in NUL on file descriptors 3 and 4), so no extra package is needed. The form
is filled by typing (Input.insertText) and sent by clicking its submit button: the browser
makes the POST itself. CI installs the Debian package `chromium`; elsewhere the test is
skipped when no browser is installed.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shutil
import signal
import time
from datetime import UTC, datetime
from email import message_from_bytes
from email.policy import default
from pathlib import Path
from typing import Any

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol.clock import parse_date
from tslic.protocol.domain import CalProduct, Program
from tslic.protocol.licenses import open_grant
from tslic.protocol.messages.records import ContactInfo
from tslic.runtime.clock import TrioClock
from tslic.server.clearinghouse import purchases
from tslic.server.clearinghouse.core import Clearinghouse
from tslic.server.clearinghouse.installation import Purchase, install
from tslic.server.clearinghouse.web import WebApp, serve_web

START = int(datetime(2005, 3, 1, tzinfo=UTC).timestamp() * 1000)
XP_KEYS = ("BCDFG-HJKMP-QRTVW-XY234-6789B", "CCCCCDDDDDFFFFFGGGGGHHHHH")
BROWSERS = ("chromium", "chromium-browser", "google-chrome")


def find_browser() -> str:
    for name in BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    if os.environ.get("CI"):
        pytest.fail("CI must install Chromium (Debian package `chromium`) for the browser walk")
    pytest.skip("no Chromium installed (apt-get install chromium)")


class Browser:
    """A minimal blocking DevTools client over Chromium's debugging pipe."""

    def __init__(self, binary: str, profile: Path) -> None:
        to_browser_r, self._to_browser = os.pipe()
        self._from_browser, from_browser_w = os.pipe()
        devnull = os.open(os.devnull, os.O_RDWR)
        args = [
            binary,
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-extensions",
            f"--user-data-dir={profile}",
            "--remote-debugging-pipe",
            "about:blank",
        ]
        # posix_spawn rather than preexec_fn: Trio's threads make fork-then-exec hooks unsafe.
        actions = [
            (os.POSIX_SPAWN_DUP2, devnull, 0),
            (os.POSIX_SPAWN_DUP2, devnull, 1),
            (os.POSIX_SPAWN_DUP2, devnull, 2),
            (os.POSIX_SPAWN_DUP2, to_browser_r, 3),
            (os.POSIX_SPAWN_DUP2, from_browser_w, 4),
        ]
        self.pid = os.posix_spawn(binary, args, os.environ, file_actions=actions, setpgroup=0)
        for fd in (to_browser_r, from_browser_w, devnull):
            os.close(fd)
        self._next = 0
        self._buffer = b""
        self.events: list[dict[str, Any]] = []

    def close(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        os.waitpid(self.pid, 0)
        os.close(self._to_browser)
        os.close(self._from_browser)

    def _receive(self, deadline: float) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self._from_browser], [], [], max(0.0, left))
            if not ready:
                raise TimeoutError("Chromium did not answer in time")
            chunk = os.read(self._from_browser, 65536)
            if not chunk:
                raise RuntimeError("Chromium closed its debugging pipe")
            self._buffer += chunk
        raw, _, self._buffer = self._buffer.partition(b"\0")
        message: dict[str, Any] = json.loads(raw)
        return message

    def call(self, method: str, session: str | None = None, **params: Any) -> dict[str, Any]:
        self._next += 1
        request: dict[str, Any] = {"id": self._next, "method": method, "params": params}
        if session:
            request["sessionId"] = session
        os.write(self._to_browser, json.dumps(request).encode() + b"\0")
        deadline = time.monotonic() + 30
        while True:
            message = self._receive(deadline)
            if message.get("id") == self._next:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result
            self.events.append(message)

    def wait_event(self, name: str, session: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            for i, event in enumerate(self.events):
                if event.get("method") == name and event.get("sessionId") == session:
                    del self.events[: i + 1]
                    return
            self.events.append(self._receive(deadline))

    def evaluate(self, session: str, expression: str) -> Any:
        reply = self.call("Runtime.evaluate", session, expression=expression, returnByValue=True)
        return reply["result"].get("value")


def walk(binary: str, profile: Path, url: str) -> tuple[str, str]:
    """Fill in and submit the transition form twice (a mismatch, then right); return the
    text after each submission."""
    browser = Browser(binary, profile)
    try:
        target = browser.call("Target.createTarget", url="about:blank")["targetId"]
        session = browser.call("Target.attachToTarget", targetId=target, flatten=True)["sessionId"]
        browser.call("Page.enable", session)
        browser.call("Page.navigate", session, url=url + "/transition")
        browser.wait_event("Page.loadEventFired", session)

        def type_into(field: str, text: str) -> None:
            browser.evaluate(session, f"document.getElementById({field!r}).value = ''")
            browser.evaluate(session, f"document.getElementById({field!r}).focus()")
            browser.call("Input.insertText", session, text=text)

        def submit() -> str:
            browser.evaluate(session, "document.getElementById('submit').click()")
            browser.wait_event("Page.loadEventFired", session)
            return str(
                browser.evaluate(session, "document.title + '\\n' + document.body.innerText")
            )

        browser.evaluate(
            session, "document.getElementById('license_type').value = 'w2003-user-cal'"
        )
        type_into("email", "admin@contoso.com")
        type_into("confirm_email", "admin@contoso.org")
        type_into("product_keys", "\n".join(XP_KEYS))
        mismatch = submit()
        # the page came back with the entries kept; correct the confirmation and send again
        type_into("confirm_email", "admin@contoso.com")
        return mismatch, submit()
    finally:
        browser.close()


async def test_browser_walk_through_the_transition_page(tmp_path: Path) -> None:
    binary = find_browser()
    ch = Clearinghouse(tmp_path / "ch")
    try:
        for key in XP_KEYS:
            purchases.add_xp(
                ch, product_key=key, acquired_at=parse_date("2002-09-01"), channel="retail"
            )
        stop = trio.Event()
        async with trio.open_nursery() as nursery:
            web = await nursery.start(
                serve_web, WebApp(ch, TrioClock(START)), "127.0.0.1", 0, stop.wait
            )
            mismatch, done = await trio.to_thread.run_sync(
                walk, binary, tmp_path / "profile", f"http://{web}"
            )
            stop.set()
        assert "The e-mail addresses do not match" in mismatch
        assert "INVALID_FIELD" in mismatch
        assert done.startswith("License Code Request Successfully Processed")
        assert "admin@contoso.com" in done
        (mail,) = (tmp_path / "ch" / "outbox").glob("*.eml")
        msg = message_from_bytes(mail.read_bytes(), policy=default)
        assert msg["To"] == "admin@contoso.com"
        part = msg.get_body()
        assert part is not None
        body = part.get_content()
        found = re.search(r"License token: (\S+)", body)
        assert found is not None
        token = found.group(1)
        assert "Licenses: 2" in body
        # the operator enters the token in the licensing utility; the license server redeems it
        contact = ContactInfo(first_name="A", last_name="B", company="C", country="GB")
        ls_key = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
        lsid = ch.activate(
            public_key=ls_key,
            name="LS",
            version=2003,
            product_id="69712-640-1234567-12345",
            contact=contact,
            now=START,
        ).license_server_id
        p = Purchase(
            program=Program.RETAIL,
            product=CalProduct.W2003_USER_CAL,
            count=0,
            transition_token=token,
        )
        _, blob = install(ch, license_server_id=lsid, purchase=p, now=START)
        assert open_grant(blob, ch.root_cert).count == 2
    finally:
        ch.close()
