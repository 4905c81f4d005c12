"""The web pages over real HTTP (server/clearinghouse/http.py), driven with urllib in a thread."""

from __future__ import annotations

import re
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol.clock import parse_date
from tslic.protocol.domain import CalProduct, PeerRole
from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.licenses import open_grant
from tslic.protocol.messages import Conversation
from tslic.protocol.messages.clearinghouse import (
    ChActivated,
    ChClaimActivation,
    ChClaimKeyPack,
    ChKeyPack,
)
from tslic.protocol.names import product_id_for
from tslic.runtime.clock import TrioClock
from tslic.runtime.peer import open_peer
from tslic.runtime.service import Server
from tslic.server.clearinghouse import purchases
from tslic.server.clearinghouse.service import ClearinghouseService
from tslic.server.clearinghouse.web import WebApp, serve_web

START = int(datetime(2005, 3, 1, tzinfo=UTC).timestamp() * 1000)
CONTACT = {"first_name": "Ada", "last_name": "Lovelace", "company": "Contoso", "country": "GB"}


@asynccontextmanager
async def site(data_dir: Path) -> AsyncIterator[tuple[ClearinghouseService, str, str]]:
    clock = TrioClock(START)
    service = ClearinghouseService(data_dir, clock)
    server = Server(service, key=service.ch.root_key, clock=clock)
    stop = trio.Event()
    try:
        async with trio.open_nursery() as nursery:
            tcp = await nursery.start(server.serve)
            web = await nursery.start(
                serve_web, WebApp(service.ch, clock), "127.0.0.1", 0, stop.wait
            )
            yield service, tcp, f"http://{web}"
            stop.set()
            server.shutdown()
    finally:
        service.close()


def _fetch(url: str, form: dict[str, str] | None, method: str | None) -> tuple[int, str]:
    data = urllib.parse.urlencode(form).encode() if form is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read().decode()


async def http(
    url: str, form: dict[str, str] | None = None, method: str | None = None
) -> tuple[int, str]:
    return await trio.to_thread.run_sync(_fetch, url, form, method)


def strong(html: str, ident: str) -> str:
    found = re.search(rf'id="{ident}">([^<]+)<', html)
    assert found, html
    return found.group(1)


async def test_web_activation_install_and_claims(tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    async with site(tmp_path) as (service, tcp, url):
        status, html = await http(url + "/")
        assert status == 200
        assert 'href="/transition"' in html
        assert 'lang="en"' in html
        status, html = await http(url + "/activate")
        assert status == 200
        assert '<label for="email">' in html
        assert "<fieldset>" in html
        product_id = product_id_for(key.public_key().public_bytes_raw())
        status, html = await http(url + "/activate", {"product_id": product_id, **CONTACT})
        assert status == 400
        assert 'role="alert"' in html
        assert "e-mail" in html
        assert "MISSING_REQUIRED_INFO (4003)" in html
        assert 'value="Lovelace"' in html
        form = {"product_id": product_id, **CONTACT, "email": "ada@contoso.com"}
        status, html = await http(url + "/activate", form)
        assert status == 200
        lsid = strong(html, "license-server-id")
        code = purchases.add_retail(
            service.ch, product=CalProduct.W2003_DEVICE_CAL, count=7, now=START
        ).retail_code
        install = {
            "license_server_id": lsid,
            "program": "retail",
            "retail_code": code,
            "product": "w2003-device-cal",
            "count": "",
        }
        status, html = await http(url + "/install", install)
        assert status == 400
        assert "UNKNOWN_LICENSE_SERVER" in html
        async with open_peer(
            tcp,
            conversation=Conversation.CLEARINGHOUSE,
            key=key,
            clock=TrioClock(START),
            role=PeerRole.LICENSE_SERVER,
            name="WEB-LS",
            version=2003,
        ) as s:
            # The ID was issued for this server's product ID: another server cannot use it.
            other = Ed25519PrivateKey.generate().public_key().public_bytes_raw()
            with pytest.raises(ServiceError) as refused:
                await s.request(ChClaimActivation(license_server_id_code=lsid, public_key=other))
            assert refused.value.code is ErrorCode.INVALID_CONFIRMATION_CODE
            assert f"issued for product ID {product_id}" in refused.value.message
            done = await s.request(
                ChClaimActivation(
                    license_server_id_code=lsid, public_key=key.public_key().public_bytes_raw()
                )
            )
            assert isinstance(done, ChActivated)
            assert done.license_server_id == lsid
            assert service.status(lsid)["method"] == "web"
            status, html = await http(url + "/install", install)
            assert status == 200
            kp_code = strong(html, "keypack-code")
            status, html = await http(url + "/install", install)
            assert status == 409
            assert "ALREADY_REDEEMED" in html
            kp = await s.request(ChClaimKeyPack(license_server_id=lsid, keypack_code=kp_code))
            assert isinstance(kp, ChKeyPack)
            assert open_grant(kp.grant, service.ch.root_cert).count == 7
        status, html = await http(
            url + "/deactivate", {"license_server_id": lsid, "first_name": "Ada", "last_name": "L"}
        )
        assert status == 400
        assert "METHOD_NOT_ALLOWED (4007)" in html
        assert service.status(lsid)["state"] == "activated"


async def test_web_transition_page_and_http_errors(tmp_path: Path) -> None:
    async with site(tmp_path) as (service, _, url):
        key = "BCDFG-HJKMP-QRTVW-XY234-6789B"
        purchases.add_xp(
            service.ch, product_key=key, acquired_at=parse_date("2002-01-01"), channel="oem"
        )
        form = {
            "license_type": "w2003-device-cal",
            "email": "it@contoso.com",
            "confirm_email": "it@contoso.co",
            "product_keys": key,
        }
        status, html = await http(url + "/transition", form)
        assert status == 400
        assert "do not match" in html
        form["confirm_email"] = "it@contoso.com"
        status, html = await http(url + "/transition", form)
        assert status == 200
        assert "License Code Request Successfully Processed" in html
        mails = list((tmp_path / "outbox").glob("*.eml"))
        assert len(mails) == 1
        assert "License token: " in mails[0].read_text()
        status, html = await http(url + "/transition", form)
        assert status == 409
        assert "already been redeemed" in html
        assert (await http(url + "/nowhere"))[0] == 404
        assert (await http(url + "/transition", method="DELETE"))[0] == 405
        assert (await http(url + "/install", {"x": "y" * 70_000}))[0] == 413
        status, html = await http(
            url + "/install", {"program": "bogus", "product": "w2003-user-cal"}
        )
        assert status == 400
        assert "Choose a program" in html
        assert (await http(url + "/"))[0] == 200  # still serving
