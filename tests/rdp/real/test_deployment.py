"""Real RDP clients licensed by a real deployment, every piece a `tslic` process.

A Clearinghouse, an activated 2003 license server with 2003 Device CALs and a 2003 agent
with `--rdp-listen`. For xfreerdp and rdesktop, over TLS and Standard RDP Security: the first
connection (user + password: a successful logon) gets a temporary license that the license
server records for the client's computer name; the next connection presents it and gets a
permanent 2003 Device CAL (Upgrade License); the one after presents that and is accepted
without a new license. Each outcome bitmap is photographed (PNG in the test's tmp folder).
A 2003 agent whose only license server is a 2000 one, past its grace period, disconnects
the client with the no-license-server error, and the client says so.
"""

from __future__ import annotations

import datetime
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from tslic.protocol.clock import MS_PER_DAY, ClockSpec, format_date
from tslic.protocol.licenses import open_license
from tslic.runtime.clock import FileClock, write_clock_file

from tests.rdp.real import support as rs

pytestmark = pytest.mark.skipif(
    bool(rs.MISSING), reason=f"real RDP clients not installed: {', '.join(rs.MISSING)}"
)


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rs.Deployment]:
    d = rs.Deployment(tmp_path_factory.mktemp("deployment"))
    try:
        d.clearinghouse()
        d.license_server("LS2003", "2003")
        d.activate_with_cals("LS2003", "w2003-device-cal", count=20)
        ls = d.info["LS2003"]["address"]
        d.start(
            "TS2003", "agent", "run", "--data", str(d.root / "TS2003"), "--name", "TS2003",
            "--version", "2003", "--listen", "127.0.0.1:0", "--rdp-listen", "127.0.0.1:0",
            "--rdp-hold", str(rs.LIMIT), "--license-server", f"LS2003={ls}",
        )  # fmt: skip
        yield d
    finally:
        codes = d.stop()
    assert codes == [0] * len(codes), codes


def _stored(home: Path, client: str) -> bytes:
    where = ".local/share/rdesktop/licenses" if client == "rdesktop" else ".config/freerdp/licenses"
    files = sorted((home / where).glob("*.cal"))
    assert len(files) == 1, files
    return files[0].read_bytes()


def _issued(d: rs.Deployment, machine: str) -> list[dict[str, Any]]:
    licenses: list[dict[str, Any]] = d.admin("LS2003", "licenses")["licenses"]
    return [x for x in licenses if x.get("machine") == machine]


CASES = [("xfreerdp", True), ("xfreerdp", False), ("rdesktop", True), ("rdesktop", False)]
IDS = ["xfreerdp-tls", "xfreerdp-rdp", "rdesktop-tls", "rdesktop-rdp"]


@pytest.mark.parametrize(("client", "tls"), CASES, ids=IDS)
async def test_temporary_then_permanent_then_presented(
    deployment: rs.Deployment, tmp_path: Path, client: str, tls: bool
) -> None:
    name = ("XF" if client == "xfreerdp" else "RD") + ("TLS" if tls else "STD")
    home = tmp_path / "home"
    address = deployment.info["TS2003"]["rdp_address"]
    argv = rs.client_argv(client, address, user="alice", name=name, tls=tls)
    if client == "rdesktop" and not tls:
        argv.insert(1, "-4")  # RDP 4: no RDP_NEG_REQ, so the server picks Standard Security
    async with rs.xvfb() as display:
        env = rs.client_env(home, display)
        _, out1 = await rs.run_until_outcome(argv, env, display, tmp_path, f"{name}-1")
        first = open_license(_stored(home, client)).body
        records = _issued(deployment, name)
        _, out2 = await rs.run_until_outcome(argv, env, display, tmp_path, f"{name}-2")
        second = open_license(_stored(home, client)).body
        stored_after_second = _stored(home, client)
        _, out3 = await rs.run_until_outcome(argv, env, display, tmp_path, f"{name}-3")
    assert str(first.kind) == "temporary", out1
    assert [str(r["kind"]) for r in records] == ["temporary"], records
    assert str(second.kind) == "permanent", out2
    assert str(second.product) == "w2003-device-cal"
    assert second.issuer == "LS2003"
    assert _stored(home, client) == stored_after_second, out3  # accepted, nothing new
    # the license server keeps the temporary record beside the permanent CAL it upgraded to;
    # the third connection added nothing
    assert sorted(str(r["kind"]) for r in _issued(deployment, name)) == ["permanent", "temporary"]


@pytest.fixture(scope="module")
def no_server_past_grace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[rs.Deployment]:
    d = rs.Deployment(tmp_path_factory.mktemp("past-grace"))
    try:
        d.start(
            "LS2000", "server", "serve", "--data", str(d.root / "LS2000"), "--name", "LS2000",
            "--version", "2000", "--listen", "127.0.0.1:0",
        )  # fmt: skip
        ls = d.info["LS2000"]["address"]
        clock = d.root / "clock"
        start = int(datetime.datetime(2003, 6, 1, tzinfo=datetime.UTC).timestamp() * 1000)
        write_clock_file(str(clock), ClockSpec(start=start, anchor=time.time()))
        d.start(
            "TS2003", "agent", "run", "--data", str(d.root / "TS2003"), "--name", "TS2003",
            "--version", "2003", "--listen", "127.0.0.1:0", "--rdp-listen", "127.0.0.1:0",
            "--license-server", f"LS2000={ls}", "--clock-file", str(clock),
        )  # fmt: skip
        yield d
    finally:
        codes = d.stop()
    assert codes == [0] * len(codes), codes


@pytest.mark.parametrize("client", ["xfreerdp", "rdesktop"])
async def test_past_grace_with_only_a_2000_server_the_client_hears_no_license_server(
    no_server_past_grace: rs.Deployment, tmp_path: Path, client: str
) -> None:
    d = no_server_past_grace
    address = d.info["TS2003"]["rdp_address"]
    argv = rs.client_argv(client, address, user="bob", name="LATE", tls=True)
    async with rs.xvfb() as display:
        env = rs.client_env(tmp_path / "home", display)
        # the first connection starts the grace period (as on a real terminal server)
        if not (d.root / "grace-started").exists():
            _, out = await rs.run_until_outcome(argv, env, display, tmp_path, "in-grace")
            (d.root / "grace-started").write_text(out)
            # move the shared virtual clock past the 120-day grace period of 2003
            now = FileClock(str(d.root / "clock")).now()
            spec = ClockSpec(start=now + 121 * MS_PER_DAY, anchor=time.time())
            write_clock_file(str(d.root / "clock"), spec)
        status, output = await rs.run_client(argv, env)
    status_doc = json.loads(
        rs.tslic("agent", "status", "--data", str(d.root / "TS2003"), "--json").stdout
    )
    assert status != 0
    if client == "rdesktop":
        assert "License error alert from server: No license server" in output, output
    else:
        assert "ERRINFO_LICENSE_NO_LICENSE_SERVER" in output, output
    # the grace period began at the first connection and ended before the virtual now
    assert status_doc["grace"]["started"] == "2003-06-01", status_doc["grace"]
    assert status_doc["grace"]["expires"] == "2003-09-29"
    now = FileClock(str(d.root / "clock")).now()
    assert format_date(now) > "2003-09-29"
