"""The RDP front end's own choices, without a real client: the X.224 answer, the TLS
certificate kept in the data directory, and how the agent's conversation outcome becomes
MS-RDPELE answers (AgentDecider._translate)."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from tslic.client.agent.rdp_decisions import AgentDecider, _RelayStore, logon_succeeds
from tslic.client.agent.rdp_licensing import ClientRequest, StandaloneDecider
from tslic.client.agent.rdp_listener import _negotiate
from tslic.client.agent.rdp_tls import CERT_FILE, KEY_FILE, RdpTlsError, server_context
from tslic.client.rdp.client import LicenseSummary
from tslic.client.rdp.client import Outcome as ClientOutcome
from tslic.protocol.rdp import x224
from tslic.protocol.rdp.info import ErrorInfo
from tslic.protocol.rdp.licensing import LicenseErrorCode
from tslic.runtime.clock import ManualClock


@pytest.mark.parametrize(
    ("requested", "tls", "answer"),
    [
        (None, True, x224.ConnectionConfirm(selected_protocol=None)),
        (0, True, x224.ConnectionConfirm(selected_protocol=x224.Protocol.RDP)),
        (1, True, x224.ConnectionConfirm(selected_protocol=x224.Protocol.SSL)),
        (3, True, x224.ConnectionConfirm(selected_protocol=x224.Protocol.SSL)),
        (3, False, x224.ConnectionConfirm(selected_protocol=x224.Protocol.RDP)),
        (2, True, x224.NegotiationFailure(code=x224.FailureCode.SSL_REQUIRED_BY_SERVER)),
        (2, False, x224.NegotiationFailure(code=x224.FailureCode.SSL_NOT_ALLOWED_BY_SERVER)),
        (8, True, x224.NegotiationFailure(code=x224.FailureCode.SSL_REQUIRED_BY_SERVER)),
    ],
)
def test_negotiation(requested: int | None, tls: bool, answer: object) -> None:
    request = x224.ConnectionRequest(cookie=b"alice", requested_protocols=requested)
    assert _negotiate(request, tls) == answer


def test_the_certificate_is_made_once_and_kept(tmp_path: Path) -> None:
    server_context(tmp_path)
    cert = (tmp_path / CERT_FILE).read_bytes()
    assert (tmp_path / KEY_FILE).stat().st_mode & 0o777 == 0o600
    context = server_context(tmp_path)
    assert isinstance(context, ssl.SSLContext)
    assert (tmp_path / CERT_FILE).read_bytes() == cert
    (tmp_path / KEY_FILE).write_text("not a key")
    with pytest.raises(RdpTlsError, match="cannot load the RDP TLS certificate"):
        server_context(tmp_path)


def _request(
    *, user: str = "alice", password_given: bool = True, presented: bytes | None = None
) -> ClientRequest:
    return ClientRequest(
        client_name="PC1",
        user=user,
        domain="",
        password_given=password_given,
        machine="PC1",
        platform_id=0x04010000,
        hwid=bytes(20),
        presented=presented,
    )


def test_a_logon_succeeds_with_a_user_and_a_password() -> None:
    assert logon_succeeds(_request())
    assert not logon_succeeds(_request(password_given=False))
    assert not logon_succeeds(_request(user=""))


def _summary(kind: str) -> LicenseSummary:
    return LicenseSummary(
        license_id=1,
        kind=kind,
        product="w2003-device-cal",
        product_label="Windows Server 2003 TS Per Device CAL",
        version=2003,
        issuer="LS2003",
        issued_at=0,
        expires_at=10 * 86_400_000,
    )


def _decider(tmp_path: Path) -> AgentDecider:
    return AgentDecider("127.0.0.1:1", tmp_path, ManualClock(86_400_000))


def test_an_issued_license_is_sent_and_a_kept_one_is_not(tmp_path: Path) -> None:
    decider = _decider(tmp_path)
    store = _RelayStore(tmp_path / "d", presented=b"old")
    store.issued = b"signed CAL"
    new = ClientOutcome(device="PC1", status="licensed", received="upgrade")
    new.license = _summary("permanent")
    issued = decider._translate(new, store)
    assert issued.license == b"signed CAL"
    assert issued.upgrade is True
    assert issued.issuer == "LS2003"
    assert issued.days_left == 9
    kept = ClientOutcome(device="PC1", status="licensed", presented_stored=True)
    kept.license = _summary("permanent")
    accepted = decider._translate(kept, _RelayStore(tmp_path / "d", presented=b"old"))
    assert accepted.license is None
    assert not accepted.refused


def test_a_refusal_keeps_the_agents_codes(tmp_path: Path) -> None:
    refused = ClientOutcome(
        device="PC1",
        status="disconnected",
        alert="ERR_NO_LICENSE_SERVER/ST_TOTAL_ABORT",
        disconnect_reason="LICENSE_NO_LICENSE_SERVER",
        text="no license server",
    )
    outcome = _decider(tmp_path)._translate(refused, _RelayStore(tmp_path / "d", None))
    assert outcome.error_info == ErrorInfo.LICENSE_NO_LICENSE_SERVER
    assert outcome.alert_code == LicenseErrorCode.ERR_NO_LICENSE_SERVER
    broken = ClientOutcome(device="PC1", status="error", text="the agent did not answer")
    internal = _decider(tmp_path)._translate(broken, _RelayStore(tmp_path / "d", None))
    assert internal.error_info == ErrorInfo.LICENSE_INTERNAL
    assert "did not answer" in internal.lines("PC1", "alice")[-1]


async def test_the_standalone_decider_accepts_only_its_own_license() -> None:
    decider = StandaloneDecider()
    first = await decider.decide(_request())
    assert first.license is not None
    again = await decider.decide(_request(presented=first.license))
    assert again.kind == "presented temporary"
    foreign = await decider.decide(_request(presented=b"something else"))
    assert foreign.error_info == ErrorInfo.LICENSE_BAD_CLIENT_LICENSE


def test_a_valid_client_without_agent_state_shows_no_grace_days(tmp_path: Path) -> None:
    valid = ClientOutcome(device="PC1", status="valid-client")
    outcome = _decider(tmp_path)._translate(valid, _RelayStore(tmp_path / "d", None))
    assert outcome.kind == "valid client"
    assert outcome.days_left is None
    assert outcome.license is None
    assert not outcome.refused


def test_a_failed_logon_still_delivers_the_license(tmp_path: Path) -> None:
    store = _RelayStore(tmp_path / "d", presented=None)
    store.issued = b"temporary CAL"
    failed = ClientOutcome(
        device="PC1", status="logon-failed", received="new", text="the password is wrong"
    )
    failed.license = _summary("temporary")
    outcome = _decider(tmp_path)._translate(failed, store)
    assert outcome.license == b"temporary CAL"
    assert not outcome.refused
    assert outcome.lines("PC1", "alice")[-1] == "logon failed: the password is wrong"
