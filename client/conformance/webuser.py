"""The person at a Clearinghouse web page, played by the suite: a form POSTed over HTTP/1.1.

Contract: `post_form(ctx, web, path, fields)` sends `fields` as
application/x-www-form-urlencoded to `http://WEB/PATH` (Connection: close) and returns the
status code and the page. What the page says is judged by the case: an alert names the wire
error code as "Error code: NAME (number)" (docs/CLEARINGHOUSE.md). Failures to connect or a
reply that is not HTTP are ConnectionLost (the case becomes a `fail` with the reason).
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

import trio
from tslic.protocol import ConnectionLost
from tslic.runtime.peer import split_address

from .context import Context

_ERROR = re.compile(r"Error code: ([A-Z_]+) \((\d+)\)")
_STRONG = re.compile(r'<strong id="([a-z-]+)">([^<]*)</strong>')


async def post_form(ctx: Context, web: str, path: str, fields: dict[str, str]) -> (
    tuple[int, str]
):  # fmt: skip
    host, port = split_address(web)
    body = urlencode(fields).encode()
    head = (f"POST {path} HTTP/1.1\r\nHost: {web}\r\nContent-Type: "
            f"application/x-www-form-urlencoded\r\nContent-Length: {len(body)}\r\n"
            "Connection: close\r\n\r\n").encode()  # fmt: skip
    ctx.transcript.event(f"-> POST http://{web}{path} {sorted(fields)}")
    try:
        with trio.fail_after(ctx.timeout * 2):
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                await stream.send_all(head + body)
                chunks = []
                while data := await stream.receive_some(65536):
                    chunks.append(data)
    except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
        raise ConnectionLost(f"the web pages at {web} did not answer: {exc}") from None
    raw = b"".join(chunks).decode("utf-8", "replace")
    status_line, _, rest = raw.partition("\r\n")
    parts = status_line.split(" ")
    if len(parts) < 2 or not parts[1].isdigit():
        raise ConnectionLost(f"not an HTTP answer from {web}: {status_line[:80]!r}")
    page = rest.partition("\r\n\r\n")[2]
    ctx.transcript.event(f"<- HTTP {parts[1]} {error_code(page) or ''}")
    return int(parts[1]), page


def error_code(page: str) -> str:
    """The wire error code a page's alert names ('' if none)."""
    found = _ERROR.search(page)
    return found.group(1) if found else ""


def strong(page: str, name: str) -> str:
    """The text of `<strong id=NAME>` on a page ('' if absent): codes the person copies."""
    for key, value in _STRONG.findall(page):
        if key == name:
            return str(value)
    return ""
