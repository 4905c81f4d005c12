"""Debian's real RDP clients against the stand-alone RDP listener (client/agent/rdp_listener.py).

For xfreerdp and rdesktop, over TLS and over Standard RDP Security: the first connection is
licensed (New License, the stand-alone decider's temporary license), the client activates
the session and the outcome bitmap appears on its Xvfb display (a screenshot is kept in the
test's tmp folder); the client stores the license under its HOME and presents it on the
next connection (License Information), which is accepted without a new license. A refusal
reaches each client as Set Error Info + Error Alert and the client prints its own text.
Skipped (with the reason) when a binary is missing; .ci/run installs them.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path

import pytest
import trio
from tslic.client.agent.rdp_licensing import ClientRequest, Decider, Outcome
from tslic.client.agent.rdp_link import ListenerConfig, RdpSessionReport
from tslic.client.agent.rdp_listener import serve_rdp, standalone_config
from tslic.protocol.rdp.info import ErrorInfo
from tslic.protocol.rdp.licensing import LicenseErrorCode

from tests.rdp.real import support as rs

pytestmark = pytest.mark.skipif(
    bool(rs.MISSING), reason=f"real RDP clients not installed: {', '.join(rs.MISSING)}"
)
CASES = [
    ("xfreerdp", True),
    ("xfreerdp", False),
    ("rdesktop", True),
    ("rdesktop", False),
]
IDS = ["xfreerdp-tls", "xfreerdp-rdp", "rdesktop-tls", "rdesktop-rdp"]


class Listening:
    """A running listener: its address, its reports, and the painted sessions' scopes."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.reports: list[RdpSessionReport] = []
        self.painted: list[trio.CancelScope] = []
        self.end_on_paint = False
        self.changed = trio.Event()
        self.first_painted = trio.Event()

    def report(self, report: RdpSessionReport) -> None:
        self.reports.append(report)
        self.changed.set()

    def on_painted(self, scope: trio.CancelScope) -> None:
        self.painted.append(scope)
        self.first_painted.set()
        if self.end_on_paint:
            scope.cancel()

    async def next_report(self, count: int) -> RdpSessionReport:
        with trio.fail_after(rs.LIMIT):
            while len(self.reports) < count:
                self.changed = trio.Event()
                await self.changed.wait()
        return self.reports[count - 1]


@asynccontextmanager
async def listening(config: ListenerConfig) -> AsyncIterator[Listening]:
    async with trio.open_nursery() as nursery:
        holder: list[Listening] = []

        def report(r: RdpSessionReport) -> None:
            holder[0].report(r)

        def painted(scope: trio.CancelScope) -> None:
            holder[0].on_painted(scope)

        listeners = await nursery.start(
            partial(serve_rdp, 0, config, on_report=report, on_painted=painted)
        )
        port = listeners[0].socket.getsockname()[1]
        holder.append(Listening(f"127.0.0.1:{port}"))
        yield holder[0]
        nursery.cancel_scope.cancel()


def _config(tmp_path: Path, tls: bool, decider: Decider | None = None) -> ListenerConfig:
    base = standalone_config(tmp_path / "agent-data" if tls else None, hold=rs.LIMIT)
    if decider is None:
        return base
    return ListenerConfig(server_key=base.server_key, decider=decider, tls=base.tls, hold=rs.LIMIT)


def _stored_licenses(home: Path, client: str) -> list[Path]:
    where = ".local/share/rdesktop/licenses" if client == "rdesktop" else ".config/freerdp/licenses"
    return sorted((home / where).glob("*.cal"))


@pytest.mark.parametrize(("client", "tls"), CASES, ids=IDS)
async def test_licensed_session_shows_the_outcome_then_the_stored_license_is_presented(
    tmp_path: Path, client: str, tls: bool
) -> None:
    name = "XF" if client == "xfreerdp" else "RD"
    name += "TLS" if tls else "RDP"
    home = tmp_path / "home"
    async with listening(_config(tmp_path, tls)) as server, rs.xvfb() as display:
        argv = rs.client_argv(client, server.address, user="alice", name=name, tls=tls)
        env = rs.client_env(home, display)
        async with trio.open_nursery() as nursery:
            result: list[tuple[int, str]] = []

            async def run() -> None:
                result.append(await rs.run_client(argv, env))

            nursery.start_soon(run)
            await rs.wait_for_outcome(
                display, tmp_path, f"{client}-{'tls' if tls else 'rdp'}", ran=result
            )
            with trio.fail_after(rs.LIMIT):
                await server.first_painted.wait()
            server.painted[0].cancel()  # end the session: Deactivate All + DPUM
        first = await server.next_report(1)
        _, output = result[0]
        assert first.error is None, (first, output)
        assert first.client_name == name
        assert first.user == "alice"
        assert first.selected_protocol == (1 if tls else (None if client == "xfreerdp" else 0))
        assert first.encryption_method == (0 if tls else 2)  # 128-bit RC4 without TLS
        assert first.outcome == "temporary"
        assert first.license_sent is True
        assert first.reached == "session"
        assert first.session_end == "ended by the server"
        assert _stored_licenses(home, client), output

        server.end_on_paint = True
        _, output = await rs.run_client(argv, env)
        second = await server.next_report(2)
        assert second.error is None, (second, output)
        assert second.presented is True
        assert second.license_message == "LicenseInformation"
        assert second.outcome == "presented temporary"
        assert second.license_sent is False
        assert second.hwid == first.hwid
        assert second.reached == "session"


class Refusing:
    async def decide(self, request: ClientRequest) -> Outcome:
        return Outcome(
            kind="refused",
            error_info=ErrorInfo.LICENSE_NO_LICENSE_SERVER,
            alert_code=LicenseErrorCode.ERR_NO_LICENSE_SERVER,
        )


@pytest.mark.parametrize("client", ["xfreerdp", "rdesktop"])
async def test_a_refusal_is_printed_by_the_client(tmp_path: Path, client: str) -> None:
    async with listening(_config(tmp_path, True, Refusing())) as server, rs.xvfb() as display:
        argv = rs.client_argv(client, server.address, user="bob", name="REFUSED", tls=True)
        status, output = await rs.run_client(argv, rs.client_env(tmp_path / "home", display))
        report = await server.next_report(1)
    assert report.reached == "refused", report
    assert report.error_info == ErrorInfo.LICENSE_NO_LICENSE_SERVER
    if client == "rdesktop":
        # rdesktop 1.9.0 prints the Error Alert's code; it does not print the Set Error
        # Info of a connection that never got past licensing (it exits with 76)
        assert "License error alert from server: No license server" in output, output
        assert status != 0
    else:
        assert "ERRINFO_LICENSE_NO_LICENSE_SERVER" in output, output
        assert status != 0


async def test_a_credssp_only_client_is_refused_at_negotiation(tmp_path: Path) -> None:
    """xfreerdp /sec:nla asks for SSL|HYBRID but accepts only HYBRID: it gets our TLS answer
    and gives up at once, without a hang."""
    async with listening(_config(tmp_path, True)) as server, rs.xvfb() as display:
        argv = ["xfreerdp", f"/v:{server.address}", "/sec:nla", "/u:eve", "/p:pw"]
        status, output = await rs.run_client(argv, rs.client_env(tmp_path / "home", display))
        report = await server.next_report(1)
    assert status != 0
    assert "Protocol Security Negotiation Failure" in output, output
    assert report.reached == "x224"
