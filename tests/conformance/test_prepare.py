"""The agent preparation's ports and Clearinghouse root, the license-server doubles' chains
and faulty licenses (SEC-12), and the slow sender's pacing under a deadline (FRAME-5)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import trio
import trio.testing
from tslic.client.conformance import prepare as prep
from tslic.client.conformance.basics import Role
from tslic.client.conformance.peers import LicenseFault, LsDouble, LsMode
from tslic.client.conformance.wire import RawClient, Transcript
from tslic.protocol.domain import CalProduct, ClientOS, LicenseKind, LicensingMode
from tslic.protocol.errors import ProtocolError
from tslic.protocol.licenses import verify_license
from tslic.protocol.messages.licensing import IssueLicense, LicenseGranted
from tslic.runtime.clock import FileClock
from tslic.runtime.files import load_key, read_certs

NOW = 1_100_000_000_000


def test_agent_manifest_ports_are_outside_the_ephemeral_range(tmp_path: Path) -> None:
    manifest = prep.prepare(Role.AGENT, tmp_path, start_ms=NOW)
    low, high = prep._ephemeral_range()
    addresses = [*manifest["license_servers"].values(), manifest["directory"]["address"]]
    ports = [int(a.rsplit(":", 1)[1]) for a in addresses]
    assert len(set(ports)) == len(ports)
    assert all(p >= 20000 and not low <= p <= high for p in ports), (ports, low, high)


def test_a_port_drawn_twice_is_not_given_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Random draws can repeat (a CI run drew 64169 for two doubles): each port goes once."""
    draws = iter([24000, 24000, 24000, 24001, 24002, 24002, 24003, 24004, 24005, 24006])
    monkeypatch.setattr(prep._RANDOM, "randint", lambda first, last: next(draws))
    monkeypatch.setattr(prep, "_ephemeral_range", lambda: (32768, 60999))
    manifest = prep.prepare(Role.AGENT, tmp_path, start_ms=NOW)
    addresses = [*manifest["license_servers"].values(), manifest["directory"]["address"]]
    ports = [int(a.rsplit(":", 1)[1]) for a in addresses]
    assert sorted(ports) == list(range(24000, 24000 + len(ports)))


def test_agent_manifest_gives_the_agent_the_suites_root(tmp_path: Path) -> None:
    manifest = prep.prepare(Role.AGENT, tmp_path, start_ms=NOW)
    root = read_certs(Path(manifest["trust_root"]))[0]
    load_key(Path(manifest["root_key"]))  # readable: the run activates its doubles with it
    for command in (manifest["target_command"], manifest["fresh_agent_command"]):
        assert command[command.index("--trust-root") + 1] == manifest["trust_root"]
    assert root.not_valid_before_utc <= datetime.fromtimestamp(NOW / 1000, UTC)


def _double(tmp_path: Path, fault: LicenseFault) -> tuple[LsDouble, Any]:
    manifest = prep.prepare(Role.AGENT, tmp_path, start_ms=NOW)
    root = read_certs(Path(manifest["trust_root"]))[0]
    key = load_key(Path(manifest["root_key"]))
    double = LsDouble("CONF-LS2", FileClock(manifest["clock_file"]), LsMode.VALID, root=(key, root))
    double.fault = fault
    return double, root


@pytest.mark.parametrize("fault", list(LicenseFault))
def test_double_licenses_verify_only_without_a_fault(fault: LicenseFault, tmp_path: Path) -> None:
    double, root = _double(tmp_path, fault)
    request = IssueLicense(hwid=b"h" * 32, machine="C", user="u", client_os=ClientOS.XP_PRO,
                           mode=LicensingMode.PER_DEVICE)  # fmt: skip
    granted = double._grant(request, 2003)
    assert isinstance(granted, LicenseGranted)
    assert granted.license == double.last_issued
    now = datetime.fromtimestamp(double.clock.now() / 1000, UTC)
    if fault is LicenseFault.NONE:
        assert granted.kind is LicenseKind.TEMPORARY
        verify_license(granted.license, root, now)
        minted = double.mint(hwid=b"h" * 32, kind=LicenseKind.PERMANENT,
                             product=CalProduct.W2003_DEVICE_CAL, expires_at=NOW + 1)  # fmt: skip
        verify_license(minted, root, now)
    else:
        assert granted.kind is LicenseKind.PERMANENT
        with pytest.raises(ProtocolError):
            verify_license(granted.license, root, now)


async def test_slow_sender_ends_by_its_deadline_however_late_its_pauses(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each pause overshoots by 40 ms (a loaded machine): the pieces stop at `until` and the
    rest goes in one write, after several paced pieces."""
    left, right = trio.testing.memory_stream_pair()
    client = RawClient(cast(trio.SocketStream, left), Transcript())  # only send() is used
    real_sleep = trio.sleep

    async def late_sleep(seconds: float) -> None:
        await real_sleep(seconds + 0.04)

    data = bytes(range(200))
    until = trio.current_time() + 0.4
    received = bytearray()

    async def read() -> None:
        while len(received) < len(data):
            received.extend(await right.receive_some())

    async with trio.open_nursery() as nursery:
        nursery.start_soon(read)
        monkeypatch.setattr(trio, "sleep", late_sleep)
        pieces = await client.send_slowly(data, 0.01, budget=0.4, until=until)
        monkeypatch.undo()
        done = trio.current_time()
    assert bytes(received) == data
    assert 3 <= pieces < len(data)
    assert done <= until + 0.05
