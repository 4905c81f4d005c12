"""The emulated RDP client: its store, the stored license on the next connection, reset."""

from __future__ import annotations

from pathlib import Path

from trio.testing import MockClock
from tslic.client.agent.config import AgentConfig, NamedAddress
from tslic.client.rdp import texts
from tslic.client.rdp.client import LicenseSummary, Outcome
from tslic.client.rdp.store import LicenseStore
from tslic.protocol.domain import CalProduct, ClientOS, WindowsVersion
from tslic.protocol.licenses import open_license
from tslic.protocol.messages.records import ProductInfo
from tslic.runtime.clock import TrioClock

from tests.agent import fakes

PRODUCT = ProductInfo(version=0x00050002, company="Microsoft Corporation", product_id="A02")


def test_store_creates_hwid_once_and_reset_deletes_it(tmp_path: Path) -> None:
    store = LicenseStore(tmp_path / "s")
    hwid = store.hwid()
    assert len(hwid) == 32
    assert LicenseStore(tmp_path / "s").hwid() == hwid  # reused on the next run
    assert store.load(PRODUCT, "microsoft.com") is None
    store.save(PRODUCT, "microsoft.com", b"blob")
    assert LicenseStore(tmp_path / "s").load(PRODUCT, "microsoft.com") == b"blob"
    assert (tmp_path / "s" / "HardwareID" / "key.pem").stat().st_mode & 0o777 == 0o600
    assert store.reset() is True
    assert not (tmp_path / "s").exists()
    assert store.reset() is False
    assert LicenseStore(tmp_path / "s").hwid() != hwid  # a new hardware id


async def test_stored_license_presented_and_reset_store(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    root = fakes.Root.make(clock)
    ls = fakes.FakeLicenseServer(
        name="LS",
        version=WindowsVersion.W2003,
        clock=clock,
        root=root,
        available={CalProduct.W2003_DEVICE_CAL: 5},
    )
    async with fakes.serve(ls, clock) as s:
        config = AgentConfig(
            name="TS1",
            version=WindowsVersion.W2003,
            registry_servers=(NamedAddress(name="LS", address=s.address),),
        )
        async with fakes.run_agent(config, tmp_path / "a", clock) as (_, address):
            path = tmp_path / "pc"
            first = await fakes.rdp(address, path, clock, client_os=ClientOS.NT4)
            assert not first.presented_stored
            store = LicenseStore(path)
            blob = store.load(PRODUCT, "microsoft.com")
            assert blob is not None
            body = open_license(blob).body
            assert body.hwid == store.hwid()  # bound to this device's key
            assert body.client_os is ClientOS.NT4
            second = await fakes.rdp(address, path, clock, client_os=ClientOS.NT4)
            assert second.presented_stored  # LicenseInfo with the stored license
            assert second.license is not None
            assert second.license.kind == "permanent"
            assert len(ls.devices) == 1
            LicenseStore(path).reset()
            third = await fakes.rdp(address, path, clock, client_os=ClientOS.NT4)
            assert not third.presented_stored
            assert third.license is not None
            assert third.license.kind == "temporary"
            assert len(ls.devices) == 2  # a new hardware id is a new device to the server


async def test_a_copied_license_is_useless_on_another_device(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    ls = fakes.FakeLicenseServer(name="LS", version=WindowsVersion.W2003, clock=clock, root=None)
    async with fakes.serve(ls, clock) as s:
        config = AgentConfig(
            name="TS1",
            version=WindowsVersion.W2003,
            registry_servers=(NamedAddress(name="LS", address=s.address),),
        )
        async with fakes.run_agent(config, tmp_path / "a", clock) as (agent, address):
            await fakes.rdp(address, tmp_path / "pc1", clock)
            stolen = LicenseStore(tmp_path / "pc1").load(PRODUCT, "microsoft.com")
            assert stolen is not None
            LicenseStore(tmp_path / "pc2").save(PRODUCT, "microsoft.com", stolen)
            outcome = await fakes.rdp(address, tmp_path / "pc2", clock, device="PC2")
            assert outcome.status == "disconnected"
            assert outcome.disconnect_reason == "LICENSE_HWID_DOESNT_MATCH_LICENSE"
            assert agent.state.counts["refused"] == 1


async def test_a_corrupt_stored_license_is_reported(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    config = AgentConfig(name="TS1", version=WindowsVersion.W2003)
    async with fakes.run_agent(config, tmp_path / "a", clock) as (_, address):
        LicenseStore(tmp_path / "pc").save(PRODUCT, "microsoft.com", b"\x93garbage")
        outcome = await fakes.rdp(address, tmp_path / "pc", clock)
        assert outcome.status == "disconnected"
        assert outcome.disconnect_reason == "LICENSE_BAD_CLIENT_LICENSE"
        assert "MSLicensing" in outcome.text


async def test_unreachable_agent_is_an_error_outcome(
    tmp_path: Path, autojump_clock: MockClock, clock: TrioClock
) -> None:
    outcome = await fakes.rdp("127.0.0.1:1", tmp_path / "pc", clock)
    assert outcome.status == "error"
    assert "127.0.0.1:1" in outcome.text


def test_a_refused_connection_carries_the_refusal_not_a_license() -> None:
    held = LicenseSummary(
        license_id=7, kind="temporary", product="w2003-device-cal",
        product_label="Windows Server 2003 Terminal Server Per Device CAL", version=0x50002,
        issuer="LS1", issued_at=0, expires_at=1,
    )  # fmt: skip
    refused = Outcome(
        device="PC1", user="u", status="disconnected", presented_stored=True, license=held,
        text=texts.NO_LICENSE,
    )  # fmt: skip
    doc = refused.to_json()
    assert doc["license"] is None
    assert doc["refusal"] == texts.NO_LICENSE
    assert doc["presented_license"] == held.to_json()
    licensed = Outcome(device="PC1", user="u", status="licensed", license=held).to_json()
    assert licensed["license"] == held.to_json()
    assert licensed["refusal"] is None


def test_expiry_warning_plurals() -> None:
    assert "will expire in 1 day." in texts.TEMPORARY_EXPIRING.format(days=texts.days(1))
    assert "will expire in 15 days." in texts.TEMPORARY_EXPIRING.format(days=texts.days(15))
