"""HTML of the Clearinghouse web pages: plain, accessible forms (no JavaScript, no styling
that carries meaning).

Contract: pure functions from values to HTML text. Every value shown is escaped here. Each
form has a fieldset with a legend, every control a <label for=...>, errors an element with
role="alert" (id "error") that names the wire error code; results carry stable ids
(`license-server-id`, `keypack-code`) so scripts and tests can read them.
"""

from __future__ import annotations

from html import escape

from tslic.protocol.domain import CalProduct, Program

from .rules import TRANSITION_PRODUCTS

SELLABLE = (CalProduct.W2000_TS_CAL, CalProduct.W2003_DEVICE_CAL, CalProduct.W2003_USER_CAL)


def page(title: str, body: str) -> str:
    """A whole document."""
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        f"<title>{escape(title)} - Microsoft Clearinghouse (emulated)</title>\n</head>\n<body>\n"
        f'<header><p><a href="/">Microsoft Clearinghouse (emulated)</a></p></header>\n'
        f"<main>\n<h1>{escape(title)}</h1>\n{body}\n</main>\n</body>\n</html>\n"
    )


def error_box(message: str, code_name: str, code: int) -> str:
    return (
        f'<div role="alert" id="error"><p>{escape(message)}</p>'
        f"<p>Error code: {escape(code_name)} ({code})</p></div>\n"
    )


def text_field(
    name: str, label: str, values: dict[str, str], *, kind: str = "text", required: bool = False
) -> str:
    req = " required" if required else ""
    return (
        f'<p><label for="{name}">{escape(label)}</label>\n'
        f'<input type="{kind}" id="{name}" name="{name}" value="{escape(values.get(name, ""))}"'
        f"{req}></p>\n"
    )


def select_field(
    name: str, label: str, options: list[tuple[str, str]], values: dict[str, str]
) -> str:
    chosen = values.get(name, "")
    items = "".join(
        f'<option value="{escape(v)}"{" selected" if v == chosen else ""}>{escape(t)}</option>'
        for v, t in options
    )
    return (
        f'<p><label for="{name}">{escape(label)}</label>\n'
        f'<select id="{name}" name="{name}">{items}</select></p>\n'
    )


def form(action: str, legend: str, fields: str, button: str, *more: tuple[str, str]) -> str:
    """A POST form of one or more fieldsets (legend, fields) and one submit button."""
    sets = "".join(
        f"<fieldset>\n<legend>{escape(lg)}</legend>\n{fl}</fieldset>\n"
        for lg, fl in ((legend, fields), *more)
    )
    return (
        f'<form method="post" action="{action}">\n{sets}'
        f'<p><button type="submit" id="submit">{escape(button)}</button></p>\n</form>\n'
    )


def index() -> str:
    return page(
        "Terminal Server Licensing",
        "<p>Use these pages when the license server cannot reach the Clearinghouse with the"
        " Automatic connection method.</p>\n<ul>\n"
        '<li><a href="/activate">Activate a license server</a></li>\n'
        '<li><a href="/install">Install client access licenses</a></li>\n'
        '<li><a href="/transition">Windows Server 2003 Terminal Server transition offer'
        "</a></li>\n"
        '<li><a href="/deactivate">Deactivate or reactivate a license server</a></li>\n'
        "</ul>\n",
    )


_CONTACT = (
    ("first_name", "First name"),
    ("last_name", "Last name"),
    ("company", "Company"),
    ("country", "Country/Region"),
)


def activate_form(values: dict[str, str], error: str = "") -> str:
    fields = text_field("product_id", "Product ID of the license server", values, required=True)
    contact = "".join(text_field(n, lbl, values, required=True) for n, lbl in _CONTACT)
    contact += text_field("email", "eMail address", values, kind="email", required=True)
    body = (
        error + "<p>Type the product ID shown by the Terminal Server Licensing utility and the"
        " Required Information. All fields are required.</p>\n"
        + form("/activate", "License server", fields, "Next", ("Required Information", contact))
    )
    return page("Activate a license server", body)


def activated(code: str) -> str:
    return page(
        "License server activated",
        "<p>Type this License Server ID into the Terminal Server Licensing utility to complete"
        " the activation:</p>\n"
        f'<p><strong id="license-server-id">{escape(code)}</strong></p>\n'
        '<p><a href="/">Finish</a></p>\n',
    )


def _programs() -> list[tuple[str, str]]:
    return [(str(p), p.label) for p in Program]


def _products(products: tuple[CalProduct, ...]) -> list[tuple[str, str]]:
    return [(str(p), p.label) for p in products]


def install_form(values: dict[str, str], error: str = "") -> str:
    fields = (
        text_field("license_server_id", "License Server ID", values, required=True)
        + select_field("program", "License program", _programs(), values)
        + text_field("retail_code", "License code (License Pack, Retail Purchase)", values)
        + text_field("license_number", "License number (Open License)", values)
        + text_field("authorization_number", "Authorization number (Open License)", values)
        + text_field("agreement_number", "Enrollment or agreement number", values)
        + text_field("transition_token", "License token (transition offer)", values)
        + select_field("product", "Product", _products(SELLABLE), values)
        + text_field("count", "Quantity (0: the whole retail pack or token)", values, kind="number")
    )
    body = (
        error
        + "<p>Fill in the numbers for your license program; leave the others empty.</p>\n"
        + form("/install", "Client access licenses", fields, "Next")
    )
    return page("Install client access licenses", body)


def installed(code: str, description: str, count: int) -> str:
    return page(
        "License key pack ready",
        f"<p>{count} license(s): {escape(description)}.</p>\n"
        "<p>Type this license key pack code into the Terminal Server Licensing utility:</p>\n"
        f'<p><strong id="keypack-code">{escape(code)}</strong></p>\n'
        '<p><a href="/">Finish</a></p>\n',
    )


def transition_form(values: dict[str, str], error: str = "") -> str:
    fields = (
        select_field("license_type", "License Type", _products(TRANSITION_PRODUCTS), values)
        + text_field("email", "eMail Address", values, kind="email", required=True)
        + text_field("confirm_email", "Confirm eMail Address", values, kind="email", required=True)
        + '<p><label for="product_keys">Windows XP Professional product keys (one per line;'
        " hyphens are optional)</label>\n"
        '<textarea id="product_keys" name="product_keys" rows="6" cols="40" required>'
        f"{escape(values.get('product_keys', ''))}</textarea></p>\n"
    )
    body = (
        error + "<p>One Windows Server 2003 Terminal Server CAL for each Windows XP Professional"
        " license obtained through a retail or OEM channel before 24 April 2003. The offer"
        " ends on 30 June 2007. The license tokens are sent to your e-mail address.</p>\n"
        + form("/transition", "Windows Server 2003 Terminal Server Transition", fields, "Next")
    )
    return page("Windows Server 2003 Terminal Server Transition", body)


def transition_done(email: str, count: int, product: str) -> str:
    return page(
        "License Code Request Successfully Processed",
        f"<p>{count} {escape(product)} token(s) have been sent to"
        f' <strong id="email">{escape(email)}</strong>.</p>\n'
        "<p>Enter the license token you receive in the Terminal Server Licensing utility, with"
        " the Automatic connection, Web Browser or Telephone method.</p>\n"
        '<p><a href="/" id="finish">Finish</a></p>\n',
    )


def deactivate_form(values: dict[str, str], error: str = "") -> str:
    fields = (
        text_field("license_server_id", "License Server ID", values, required=True)
        + text_field("first_name", "First name", values, required=True)
        + text_field("last_name", "Last name", values, required=True)
    )
    body = (
        error + "<p>Deactivation and reactivation are possible only with the Automatic connection"
        " or the Telephone method (use <code>tslic clearinghouse phone</code>).</p>\n"
        + form("/deactivate", "Deactivate a license server", fields, "Deactivate")
    )
    return page("Deactivate or reactivate a license server", body)


def message_page(title: str, text: str) -> str:
    return page(title, f"<p>{escape(text)}</p>\n")
