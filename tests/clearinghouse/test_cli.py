"""`tslic clearinghouse` as separate processes: purchases, serve (readiness line, ready file,
automatic activation and a retail install over TCP, SIGTERM), the telephone session."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol.domain import ActivationMethod, CalProduct, PeerRole, Program, WindowsVersion
from tslic.protocol.licenses import open_grant
from tslic.protocol.messages import Conversation
from tslic.protocol.messages.admin import ActivationAction
from tslic.protocol.messages.clearinghouse import (
    ChActivate,
    ChActivated,
    ChInstallKeyPack,
    ChKeyPack,
)
from tslic.protocol.messages.records import ContactInfo
from tslic.protocol.pki import cert_from_der, validate_chain
from tslic.runtime.clock import WallClock
from tslic.runtime.files import read_certs
from tslic.runtime.peer import open_peer

CMD = [sys.executable, "-m", "tslic.cli", "clearinghouse"]
CONTACT = ContactInfo(first_name="Ada", last_name="Lovelace", company="Contoso", country="GB")


def tslic(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [*CMD, *args], input=stdin, capture_output=True, text=True, timeout=60, env=env
    )


async def _line(stream: trio.abc.ReceiveStream, buffer: bytearray) -> bytes:
    while b"\n" not in buffer:
        chunk = await stream.receive_some(4096)
        if not chunk:
            raise AssertionError(f"the daemon closed stdout; got {bytes(buffer)!r}")
        buffer += chunk
    line, _, rest = bytes(buffer).partition(b"\n")
    buffer[:] = rest
    return line


async def test_serve_activates_and_installs_over_tcp_then_stops_on_sigterm(tmp_path: Path) -> None:
    data = tmp_path / "ch"
    added = tslic(
        "add-retail",
        "--data",
        str(data),
        "--product",
        "w2003-device-cal",
        "--count",
        "10",
        "--json",
    )
    assert added.returncode == 0, added.stderr
    code = json.loads(added.stdout)["reference"]
    ready = tmp_path / "ready.json"
    args = [
        "serve",
        "--data",
        str(data),
        "--listen",
        "127.0.0.1:0",
        "--web",
        "127.0.0.1:0",
        "--ready-file",
        str(ready),
        "--start-date",
        "2005-01-01",
        "--json",
    ]
    proc = await trio.lowlevel.open_process(
        [*CMD, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    try:
        assert proc.stdout is not None
        with trio.fail_after(30):
            line = await _line(proc.stdout, bytearray())
        info = json.loads(line)
        assert info["role"] == "clearinghouse"
        assert info["web"].startswith("127.0.0.1:")
        key = Ed25519PrivateKey.generate()
        clock = WallClock.starting(int(datetime(2005, 1, 1, tzinfo=UTC).timestamp() * 1000))
        with trio.fail_after(30):
            async with open_peer(
                info["address"],
                conversation=Conversation.CLEARINGHOUSE,
                key=key,
                clock=clock,
                role=PeerRole.LICENSE_SERVER,
                name="LS-CLI",
                version=2003,
            ) as s:
                done = await s.request(
                    ChActivate(
                        action=ActivationAction.ACTIVATE,
                        method=ActivationMethod.AUTOMATIC,
                        product_id="69712-640-1234567-12345",
                        name="LS-CLI",
                        version=WindowsVersion.W2003,
                        public_key=key.public_key().public_bytes_raw(),
                        contact=CONTACT,
                    )
                )
                assert isinstance(done, ChActivated)
                root = read_certs(Path(info["root"]))[0]
                chain = [cert_from_der(c) for c in done.cert_chain]
                ident = validate_chain(
                    chain, root, datetime(2005, 1, 2, tzinfo=UTC), leaf_role="license-server"
                )
                assert ident.name == "LS-CLI"
                kp = await s.request(
                    ChInstallKeyPack(
                        license_server_id=done.license_server_id,
                        program=Program.RETAIL,
                        product=CalProduct.W2003_DEVICE_CAL,
                        count=0,
                        retail_code=code,
                    )
                )
                assert isinstance(kp, ChKeyPack)
                assert open_grant(kp.grant, root).count == 10
        proc.send_signal(signal.SIGTERM)
        with trio.fail_after(30):
            status = await proc.wait()
        assert status == 0
        assert json.loads(ready.read_text()) == info  # written before the daemon served
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
        for stream in (proc.stdout, proc.stderr):
            if stream is not None:
                await stream.aclose()
    shown = json.loads(tslic("activations", "--data", str(data), "--json").stdout)
    assert [a["name"] for a in shown["activations"]] == ["LS-CLI"]
    assert (
        json.loads(tslic("list", "--data", str(data), "--json").stdout)["entitlements"][0]["used"]
        == 10
    )


def test_purchase_commands_validate_and_export_root(tmp_path: Path) -> None:
    data = str(tmp_path / "ch")
    bad = tslic(
        "add-retail",
        "--data",
        data,
        "--product",
        "w2003-user-cal",
        "--count",
        "5",
        "--code",
        "BBBBB",
    )
    assert bad.returncode == 2
    assert "Message Number 0x13A7" in bad.stderr
    assert "Traceback" not in bad.stderr
    bad = tslic(
        "add-agreement",
        "--data",
        data,
        "--program",
        "select",
        "--number",
        "12",
        "--product",
        "w2003-user-cal",
        "--count",
        "5",
    )
    assert bad.returncode == 2
    assert "exactly 7 digits" in bad.stderr
    ok = tslic(
        "add-xp",
        "--data",
        data,
        "--key",
        "BCDFGHJKMPQRTVWXY23467898",
        "--acquired",
        "2003-04-23",
        "--channel",
        "oem",
        "--json",
    )
    assert ok.returncode == 0
    assert json.loads(ok.stdout)["product_key"] == "BCDFG-HJKMP-QRTVW-XY234-67898"
    out = tmp_path / "root.pem"
    ok = tslic("export-root", "--data", data, "--out", str(out))
    assert ok.returncode == 0
    assert "CN=Microsoft Clearinghouse" in read_certs(out)[0].subject.rfc4514_string()


def test_phone_session_piped(tmp_path: Path) -> None:
    data = str(tmp_path / "ch")
    answers = "1\n69712-640-1234567-12345\nAda\nLovelace\nContoso\nGB\n5\n"
    done = tslic("phone", "--data", data, "--json", stdin=answers)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    assert result["action"] == "activate"
    assert len(result["license_server_id"]) == 41
    assert "Product ID or request code" in done.stderr  # prompts go to stderr with --json
    refused = tslic("phone", "--data", data, stdin="3\nBBBBB\nAda\nLovelace\n")
    assert refused.returncode == 1
    assert "INVALID_CONFIRMATION_CODE" in refused.stdout
