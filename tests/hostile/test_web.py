"""The hostile visitor at the Clearinghouse's web pages: a real `tslic clearinghouse serve`
process, driven over real HTTP with a plain socket client. Empty, huge, non-ASCII, control
characters, markup and wrong types in every field are refused with an alert naming the field
and the rule, and nothing changes; stalled clients do not keep a browser out; every status
line has its reason phrase. One daemon for the module; hang guards only, no timing.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TSLIC = [sys.executable, "-m", "tslic.cli.main"]
HANG_GUARD = 90.0


class Site:
    def __init__(self, tmp: Path) -> None:
        self.data = tmp / "ch"
        ready = tmp / "ch.ready"
        self.proc = subprocess.Popen(
            [*TSLIC, "clearinghouse", "serve", "--data", str(self.data), "--ready-file",
             str(ready)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        )  # fmt: skip
        deadline = time.monotonic() + HANG_GUARD
        while not ready.exists():  # waiting for another process, not for time to pass
            assert self.proc.poll() is None, "the Clearinghouse exited"
            assert time.monotonic() < deadline, "the Clearinghouse did not become ready"
            time.sleep(0.02)
        info: dict[str, Any] = json.loads(ready.read_text())
        host, port = info["web"].rsplit(":", 1)
        self.address = (host, int(port))

    def connect(self) -> socket.socket:
        sock = socket.create_connection(self.address, timeout=HANG_GUARD)
        return sock

    def request(self, raw: bytes) -> tuple[int, str, str]:
        """Send raw bytes; return (status, status line, body) of the answer."""
        with self.connect() as sock:
            sock.sendall(raw)
            data = b""
            while b"</html>" not in data:
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        line = head.split(b"\r\n", 1)[0].decode()
        return int(line.split()[1]), line, body.decode("utf-8", "replace")

    def post(self, path: str, form: dict[str, str]) -> tuple[int, str]:
        body = urllib.parse.urlencode(form).encode()
        raw = (
            f"POST {path} HTTP/1.1\r\nHost: ch\r\nConnection: close\r\n"
            "Content-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        status, _, page = self.request(raw)
        return status, page

    def catalogue(self) -> str:
        done = subprocess.run(
            [*TSLIC, "clearinghouse", "activations", "--data", str(self.data), "--json"],
            capture_output=True, text=True, timeout=HANG_GUARD,
        )  # fmt: skip
        assert done.returncode == 0, done.stderr
        return done.stdout

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            assert self.proc.wait(timeout=HANG_GUARD) == 0
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            if self.proc.stderr is not None:
                err = self.proc.stderr.read().decode()
                self.proc.stderr.close()
                assert "Traceback" not in err, err


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    running = Site(tmp_path_factory.mktemp("web"))
    try:
        yield running
    finally:
        running.stop()


CONTACT = {
    "first_name": "Ada", "last_name": "Lovelace", "company": "Contoso", "country": "GB",
    "email": "ada@contoso.com",
}  # fmt: skip
PRODUCT_ID = "69712-640-1234567-12345"

HOSTILE = {
    "empty": "",
    "huge": "A" * 10_000,
    "markup": "<script>alert(1)</script>",
    "escape": "Ada\x1b[2J",
    "nul": "Ada\x00",
    "bidi": "Ada\u202e",
}


def alert(page: str) -> str:
    start = page.index('role="alert"')
    return page[start : page.index("</div>", start)]


@pytest.mark.parametrize("field", ["product_id", *sorted(CONTACT)])
@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_activation_form_refuses_hostile_fields(site: Site, field: str, case: str) -> None:
    form = {"product_id": PRODUCT_ID, **CONTACT, field: HOSTILE[case]}
    status, page = site.post("/activate", form)
    assert "<script>" not in page  # whatever was typed is escaped on the page
    if case == "markup" and field != "product_id":
        # Markup is text in a name or company: accepted, and shown escaped.
        assert status == 200, page
        return
    assert status in (400, 413), status
    if status == 400:
        box = alert(page)
        assert "INVALID_FIELD" in box or "MISSING_REQUIRED_INFO" in box, box
        if case != "empty":
            assert field.replace("_", " ") in box or "product ID" in box, box
    assert 'id="license-server-id"' not in page


@pytest.mark.parametrize(
    "product_id",
    ["not-a-product-id", "69712-640-1", "6971-2640-1234567-12345", "٦٩٧١٢-٦٤٠-١٢٣٤٥٦٧-١٢٣٤٥"],
)
def test_activation_needs_a_5_3_7_5_product_id(site: Site, product_id: str) -> None:
    status, page = site.post("/activate", {"product_id": product_id, **CONTACT})
    assert status == 400
    assert "5-3-7-5 digits" in alert(page)


def test_non_ascii_names_are_fine(site: Site) -> None:
    form = {"product_id": PRODUCT_ID, **CONTACT, "first_name": "Zoë", "company": "Société Œ"}
    status, page = site.post("/activate", form)
    assert status == 200, page
    assert 'id="license-server-id"' in page


def test_only_the_accepted_requests_were_recorded(site: Site) -> None:
    # Self-contained: pytest-xdist may run this module's other tests on other workers,
    # each with its own site, so count what this test's own requests add.
    def recorded() -> int:
        events = json.loads(site.catalogue())["events"]
        return len([e for e in events if "activate-request" in json.dumps(e)])

    before = recorded()
    refused, _ = site.post(
        "/activate", {"product_id": PRODUCT_ID, **CONTACT, "email": HOSTILE["nul"]}
    )
    assert refused == 400
    accepted, page = site.post("/activate", {"product_id": PRODUCT_ID, **CONTACT})
    assert accepted == 200, page
    assert recorded() == before + 1


@pytest.mark.parametrize(
    ("form", "words"),
    [
        ({"program": "nope"}, ("program",)),
        ({"program": "retail", "product": "w2003-device-cal", "count": "-1"}, ("quantity",)),
        ({"program": "retail", "product": "w2003-device-cal", "count": "1e9"}, ("quantity",)),
        ({"program": "retail", "product": "<b>", "count": ""}, ("product",)),
        ({"program": "retail", "product": "w2003-device-cal", "retail_code": "x" * 5000},
         ("retail code", "at most 64")),
        ({"program": "retail", "product": "w2003-device-cal", "license_server_id": "\x1b[1m"},
         ("license server id", "control characters")),
    ],
)  # fmt: skip
def test_install_form_refuses_wrong_types(
    site: Site, form: dict[str, str], words: tuple[str, ...]
) -> None:
    status, page = site.post("/install", {"license_server_id": "ABCDE", **form})
    assert status == 400
    box = alert(page)
    for word in words:
        assert word in box, box


def test_transition_form_refuses_a_flood_of_keys(site: Site) -> None:
    keys = "\n".join(["BBBBB-BBBBB-BBBBB-BBBBB-BBBBB"] * 1001)
    status, page = site.post(
        "/transition",
        {"license_type": "w2003-device-cal", "email": "a@b.c", "confirm_email": "a@b.c",
         "product_keys": keys},
    )  # fmt: skip
    assert status == 400
    assert "at most 1000 keys" in alert(page)


@pytest.mark.parametrize(
    ("raw", "line"),
    [
        (b"GET / HTTP/1.1\r\nHost: ch\r\nConnection: close\r\n\r\n", "HTTP/1.1 200 OK"),
        (b"GET /nope HTTP/1.1\r\nHost: ch\r\nConnection: close\r\n\r\n", "HTTP/1.1 404 Not Found"),
        (b"DELETE /activate HTTP/1.1\r\nHost: ch\r\nConnection: close\r\n\r\n",
         "HTTP/1.1 405 Method Not Allowed"),
        (b"\x00\xff garbage\r\n\r\n", "HTTP/1.1 400 Bad Request"),
        (b"POST /activate HTTP/1.1\r\nHost: ch\r\nContent-Length: 99999999\r\n\r\n",
         "HTTP/1.1 413 "),
    ],
)  # fmt: skip
def test_status_lines_have_reason_phrases(site: Site, raw: bytes, line: str) -> None:
    _, got, _ = site.request(raw)
    assert got.startswith(line), got


def test_stalled_posts_do_not_keep_a_browser_out(site: Site) -> None:
    """300 clients whose POST body stops arriving: the port still serves a browser at once
    (the oldest waiting connections are evicted past the cap), and the daemon closes every
    stalled connection (by eviction or the body time limit) rather than holding it."""
    stalled = []
    try:
        for _ in range(300):
            sock = site.connect()
            sock.sendall(
                b"POST /activate HTTP/1.1\r\nHost: ch\r\nContent-Length: 1000\r\n\r\nproduct_id="
            )
            stalled.append(sock)
        _status, line, page = site.request(
            b"GET / HTTP/1.1\r\nHost: ch\r\nConnection: close\r\n\r\n"
        )
        assert line == "HTTP/1.1 200 OK"
        assert "Terminal Server Licensing" in page
        for sock in stalled:  # each is closed by the server: recv returns (or resets)
            sock.settimeout(HANG_GUARD)
            try:
                while sock.recv(65536):
                    pass
            except ConnectionResetError:
                pass
    finally:
        for sock in stalled:
            sock.close()
