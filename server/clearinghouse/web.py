"""The Clearinghouse web site: the pages' application and its HTTP server.

Contract:
- `WebApp(ch, clock)` answers whole requests: `await app.respond(method, path, body)` ->
  (status, html). Pages (pages.py): `/` index; `/activate` (Web Browser activation: product
  ID + Required Information incl. e-mail -> License Server ID code bound to that product ID);
  `/install` (CAL installation -> license key pack code); `/transition` (KB823313 method 2:
  license type, e-mail twice, XP product keys -> "License Code Request Successfully
  Processed", tokens written to <data>/outbox/); `/deactivate` (always refused:
  METHOD_NOT_ALLOWED, KB814593).
- Forms are POSTed as application/x-www-form-urlencoded; other methods get 405, unknown paths
  404. Every field is checked (protocol/names.py: length limits, no control characters) before
  anything changes. A refusal re-shows the form with the person's entries and an alert
  naming the field, the rule and the wire error code (HTTP 400; 409 for a code already used;
  503 when storage fails). An unexpected exception is logged and answered with a plain 500
  page: no traceback reaches the browser and the daemon stays up.
- `serve_web(app, host, port, shutdown, limits=...)` serves the app with http.py's
  `HttpServer` (head and body time limits, body and connection caps, reason phrases) until
  `shutdown` returns, and reports the bound "host:port" through `task_status` (port 0
  allowed; a busy port is one line naming it).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar
from urllib.parse import parse_qs

import trio
from tslic.protocol.domain import ActivationMethod, CalProduct, Program
from tslic.protocol.errors import ErrorCode, ServiceError, StorageError, TslicError
from tslic.protocol.messages.admin import CODE_MAX
from tslic.protocol.messages.records import CONTACT_MAX, EMAIL_MAX, ContactInfo
from tslic.protocol.names import check_text
from tslic.runtime.clock import Clock

from . import pages
from .core import Clearinghouse
from .http import HttpServer, WebLimits, reason
from .installation import Purchase, install_by_hand
from .transition import request_transition

log = logging.getLogger(__name__)

Form = dict[str, str]

E = TypeVar("E", Program, CalProduct)
_STATUS = {ErrorCode.ALREADY_REDEEMED: 409, ErrorCode.STORAGE_ERROR: 503}


def _parse_form(body: bytes) -> Form:
    text = body.decode("utf-8", errors="replace")
    parsed = parse_qs(text, keep_blank_values=True, max_num_fields=64)
    return {k: v[0] for k, v in parsed.items() if v}


class WebApp:
    """The ASGI application. Handlers are short synchronous SQLite transactions."""

    def __init__(self, ch: Clearinghouse, clock: Clock) -> None:
        self.ch = ch
        self.clock = clock
        self._routes: dict[str, tuple[Callable[[], str], Callable[[Form], str]]] = {
            "/activate": (lambda: pages.activate_form({}), self._activate),
            "/install": (lambda: pages.install_form({}), self._install),
            "/transition": (lambda: pages.transition_form({}), self._transition),
            "/deactivate": (lambda: pages.deactivate_form({}), self._deactivate),
        }
        self._forms: dict[str, Callable[[Form, str], str]] = {
            "/activate": pages.activate_form,
            "/install": pages.install_form,
            "/transition": pages.transition_form,
            "/deactivate": pages.deactivate_form,
        }

    async def respond(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        """Answer one whole request (http.py has read it within its limits)."""
        try:
            return self._respond(method, path.rstrip("/") or "/", body)
        except Exception:
            log.exception("web request failed")
            return 500, pages.message_page("Internal error", "The request failed (logged).")

    def _respond(self, method: str, path: str, body: bytes) -> tuple[int, str]:
        if path == "/":
            if method not in ("GET", "HEAD"):
                return 405, pages.message_page("Not allowed", "Use GET for this page.")
            return 200, pages.index()
        route = self._routes.get(path)
        if route is None:
            return 404, pages.message_page("Not found", f"There is no page {path}.")
        if method in ("GET", "HEAD"):
            return 200, route[0]()
        if method != "POST":
            return 405, pages.message_page("Not allowed", "Use GET or POST for this page.")
        form = _parse_form(body)
        try:
            _check_form(form)
            return 200, route[1](form)
        except TslicError as exc:
            if isinstance(exc, StorageError):
                log.error("storage: %s", exc)
            box = pages.error_box(exc.message, exc.code.name, int(exc.code))
            return _STATUS.get(exc.code, 400), self._forms[path](form, box)

    # --- handlers (raise ServiceError to re-show the form with an alert) -------------------

    def _activate(self, form: Form) -> str:
        contact = ContactInfo(
            first_name=form.get("first_name", "").strip(),
            last_name=form.get("last_name", "").strip(),
            company=form.get("company", "").strip(),
            country=form.get("country", "").strip(),
            email=form.get("email", "").strip(),
        )
        code = self.ch.request_activation(
            method=ActivationMethod.WEB,
            product_id=form.get("product_id", ""),
            contact=contact,
            now=self.clock.now(),
        )
        return pages.activated(code)

    def _install(self, form: Form) -> str:
        purchase = Purchase(
            program=_choice(Program, form.get("program", ""), "program"),
            product=_choice(CalProduct, form.get("product", ""), "product"),
            count=_count(form.get("count", "")),
            retail_code=form.get("retail_code", ""),
            license_number=form.get("license_number", ""),
            authorization_number=form.get("authorization_number", ""),
            agreement_number=form.get("agreement_number", ""),
            transition_token=form.get("transition_token", ""),
        )
        code, grant = install_by_hand(
            self.ch,
            license_server_id=form.get("license_server_id", ""),
            purchase=purchase,
            now=self.clock.now(),
            method=ActivationMethod.WEB,
        )
        return pages.installed(code, grant.description, grant.count)

    def _transition(self, form: Form) -> str:
        result = request_transition(
            self.ch,
            product=_choice(CalProduct, form.get("license_type", ""), "license type"),
            email=form.get("email", ""),
            confirm=form.get("confirm_email", ""),
            keys_text=form.get("product_keys", ""),
            now=self.clock.now(),
        )
        return pages.transition_done(result.email, result.count, result.product.label)

    def _deactivate(self, form: Form) -> str:
        contact = ContactInfo(
            first_name=form.get("first_name", ""), last_name=form.get("last_name", "")
        )
        self.ch.deactivate(
            license_server_id=form.get("license_server_id", ""),
            method=ActivationMethod.WEB,
            contact=contact,
            now=self.clock.now(),
        )
        raise AssertionError("the web method never deactivates")  # pragma: no cover


# Every field a form has, with its length limit; anything else is ignored. Free text is one
# line without control characters; the product keys are one key per line.
_FIELDS = {
    "product_id": 64, "first_name": CONTACT_MAX, "last_name": CONTACT_MAX,
    "company": CONTACT_MAX, "country": CONTACT_MAX, "email": EMAIL_MAX,
    "confirm_email": EMAIL_MAX, "license_server_id": CODE_MAX, "program": 64, "product": 64,
    "retail_code": CODE_MAX, "license_number": CODE_MAX, "authorization_number": CODE_MAX,
    "agreement_number": CODE_MAX, "transition_token": CODE_MAX, "count": 16,
    "license_type": 64,
}  # fmt: skip
MAX_KEYS = 1000  # product keys in one transition request


def _check_form(form: Form) -> None:
    """Refuse, naming the field and the rule, any field over its limit or with control
    characters, before anything is looked up or changed."""
    for name, limit in _FIELDS.items():
        if name in form:
            check_text(form[name], name.replace("_", " "), limit)
    keys = form.get("product_keys", "").splitlines()
    if len(keys) > MAX_KEYS:
        raise ServiceError(
            f"product keys: at most {MAX_KEYS} keys in one request, not {len(keys)}",
            code=ErrorCode.INVALID_FIELD,
            detail={"field": "product keys"},
        )
    for line in keys:
        check_text(line, "product keys", CODE_MAX)


def _choice(kind: type[E], value: str, what: str) -> E:
    try:
        return kind(value)
    except ValueError:
        raise ServiceError(
            f"Choose a {what} from the list.", code=ErrorCode.INVALID_FIELD, detail={"field": what}
        ) from None


def _count(text: str) -> int:
    text = text.strip() or "0"
    if not text.isascii() or not text.isdigit() or int(text) > 1_000_000:
        raise ServiceError(
            "The quantity must be a whole number from 0 to 1,000,000.",
            code=ErrorCode.INVALID_FIELD,
            detail={"field": "count"},
        )
    return int(text)


async def serve_web(
    app: WebApp,
    host: str,
    port: int,
    shutdown: Callable[[], Awaitable[object]],
    *,
    limits: WebLimits | None = None,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve the pages until `shutdown()` returns; report "host:port"."""
    server = HttpServer(app.respond, limits, error_page=_error_page)
    async with trio.open_nursery() as nursery:
        address = await nursery.start(server.serve, host, port)
        task_status.started(address)
        await shutdown()
        server.shutdown()


def _error_page(status: int, text: str) -> str:
    return pages.message_page(reason(status), text)
