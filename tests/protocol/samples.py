"""One valid, realistic instance of every registered message (`sample_messages()`).

Contract: the list covers `REGISTRY` exactly, one instance per class (test_roundtrip checks
it, so a new message cannot be forgotten). Values look like a 2003 deployment: Contoso's
license server LS1, terminal server TS1, a Windows XP client WKS042 whose hardware id is a
real Ed25519 public key. Re-exported by helpers.py.
"""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from tslic.protocol import ErrorCode, Message, raw_public
from tslic.protocol.domain import (
    ActivationMethod,
    ActivationState,
    CalProduct,
    ClientOS,
    KeyPackType,
    LicenseKind,
    LicenseStatus,
    LicensingMode,
    PeerRole,
    Program,
    ServerRole,
    WindowsVersion,
)
from tslic.protocol.messages import Conversation, common, rdp
from tslic.protocol.messages import admin as adm
from tslic.protocol.messages import clearinghouse as ch
from tslic.protocol.messages import directory as dr
from tslic.protocol.messages import licensing as lic
from tslic.protocol.messages.records import (
    ComputerInfo,
    ContactInfo,
    IssuedLicenseInfo,
    KeyPackInfo,
    ProductInfo,
    ServerRef,
    ServerStatus,
    UserUsage,
)

NOW = 1_051_747_200_000  # 2003-05-01 00:00 UTC, virtual ms
DAY = 86_400_000

CLIENT_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
SERVER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32, 64)))
OTHER_KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(64, 96)))
CLIENT_PUB = raw_public(CLIENT_KEY)
SERVER_PUB = raw_public(SERVER_KEY)
HWID = raw_public(Ed25519PrivateKey.from_private_bytes(bytes(range(96, 128))))

# Plausible DER blobs (SEQUENCE headers and a body); the envelope does not parse them.
ROOT_DER = b"\x30\x82\x01\x0a" + bytes(range(256))[:266]
LS_DER = b"\x30\x82\x01\x2c" + bytes(reversed(range(256)))[:200]
TS_DER = b"\x30\x81\xf0" + b"TS1.example.com" * 16
LICENSE_BLOB = b"\x92\xc4\x20" + HWID + b"\xc4\x40" + bytes(64)


def _contact() -> ContactInfo:
    return ContactInfo(
        first_name="Dana",
        last_name="Lopez",
        company="Contoso Ltd",
        country="United States",
        email="dana@contoso.example",
    )


def _keypack(keypack_id: int = 7) -> KeyPackInfo:
    return KeyPackInfo(
        keypack_id=keypack_id,
        product=CalProduct.W2003_DEVICE_CAL,
        program=Program.OPEN_LICENSE,
        keypack_type=KeyPackType.OPEN,
        description=CalProduct.W2003_DEVICE_CAL.label,
        total=25,
        issued=3,
        available=22,
        installed_at=NOW - 30 * DAY,
        expires_at=0,
    )


def _server_ref(name: str = "LS1") -> ServerRef:
    return ServerRef(
        name=name,
        address="10.0.0.5:4170",
        domain="CONTOSO",
        site="Default-First-Site-Name",
        is_domain_controller=False,
    )


def _computer() -> ComputerInfo:
    return ComputerInfo(
        name="DC1",
        domain="CONTOSO",
        site="Default-First-Site-Name",
        is_domain_controller=True,
        os_version=2003,
        address="10.0.0.2:4171",
    )


def _status() -> ServerStatus:
    return ServerStatus(
        name="LS1",
        version=WindowsVersion.W2003,
        role=ServerRole.ENTERPRISE,
        domain="CONTOSO",
        site="Default-First-Site-Name",
        activation=ActivationState.ACTIVATED,
        method=ActivationMethod.AUTOMATIC,
        license_server_id="BCDFG-HJKMP-QRTVW-XY234-6789B-CDFGH-JKMPQ",
        product_id="69712-640-0000000-00000",
        contact=_contact(),
        certificate_temporary=False,
        security_group_enabled=True,
        security_group_members=("CONTOSO\\TS1", "CONTOSO\\TS2"),
        prevent_upgrade=False,
    )


def _issued() -> IssuedLicenseInfo:
    return IssuedLicenseInfo(
        license_id=42,
        keypack_id=7,
        product=CalProduct.W2003_DEVICE_CAL,
        kind=LicenseKind.PERMANENT,
        status=LicenseStatus.ACTIVE,
        machine="WKS042",
        user="dana",
        hwid=HWID,
        terminal_server="TS1",
        issued_at=NOW - 2 * DAY,
        expires_at=NOW + 60 * DAY,
        validated=True,
    )


def sample_messages() -> list[Message]:
    """One valid instance of every registered message, with realistic values."""
    A = adm.ActivationAction
    return [
        common.Hello(
            role=PeerRole.TERMINAL_SERVER,
            name="TS1",
            version=2003,
            conversation=Conversation.LICENSING,
            cert_chain=(ROOT_DER, LS_DER, TS_DER),
            features=("per-user",),
        ),
        common.Welcome(
            role=PeerRole.LICENSE_SERVER,
            name="LS1",
            version=2003,
            cert_chain=(ROOT_DER, LS_DER),
            features=("per-user",),
            server_time=NOW,
        ),
        common.Error(
            code=int(ErrorCode.NOT_FOUND),
            message="no license server is published for site 'Branch'",
            detail={"site": "Branch"},
        ),
        common.Goodbye(reason="done"),
        rdp.LicenseRequest(
            server_random=bytes(range(32)),
            product=ProductInfo(
                version=0x00050002, company="Microsoft Corporation", product_id="A02"
            ),
            cert_chain=(ROOT_DER, LS_DER, TS_DER),
            scopes=("microsoft.com",),
            mode=LicensingMode.PER_DEVICE,
        ),
        rdp.PlatformChallenge(challenge=bytes(range(100, 116)), connect_flags=0),
        rdp.NewLicense(license=LICENSE_BLOB),
        rdp.UpgradeLicense(license=LICENSE_BLOB, scope="microsoft.com"),
        rdp.LicenseInfo(
            platform_id=0x04010000,
            client_random=bytes(range(1, 33)),
            license=LICENSE_BLOB,
            user_name="dana",
            machine_name="WKS042",
            client_os=ClientOS.XP_PRO,
        ),
        rdp.NewLicenseRequest(
            platform_id=0x04010000,
            client_random=bytes(range(2, 34)),
            user_name="dana",
            machine_name="WKS042",
            client_os=ClientOS.W2000_PRO,
        ),
        rdp.PlatformChallengeResponse(challenge=bytes(range(100, 116)), hwid=HWID),
        rdp.ClientLogon(user_name="dana", domain="CONTOSO"),
        rdp.LogonComplete(logged_on=True, session_id=3, text="Welcome to Windows"),
        rdp.ErrorAlert(
            error_code=rdp.RdpError.STATUS_VALID_CLIENT,
            state_transition=rdp.StateTransition.ST_NO_TRANSITION,
        ),
        lic.RequestTermServCert(
            name="TS1",
            domain="CONTOSO",
            site="Default-First-Site-Name",
            version=WindowsVersion.W2003,
            public_key=CLIENT_PUB,
        ),
        lic.TermServCert(cert_chain=(ROOT_DER, LS_DER, TS_DER)),
        lic.IssueLicense(
            hwid=HWID,
            machine="WKS042",
            user="dana",
            client_os=ClientOS.XP_HOME,
            mode=LicensingMode.PER_DEVICE,
            had_temporary=True,
        ),
        lic.LicenseGranted(
            license=LICENSE_BLOB,
            license_id=42,
            kind=LicenseKind.TEMPORARY,
            product=CalProduct.W2003_DEVICE_CAL,
            expires_at=NOW + 90 * DAY,
            event_ids=(1001, 1002),
        ),
        lic.UpgradeLicenseRequest(
            license=LICENSE_BLOB,
            hwid=HWID,
            machine="WKS042",
            user="dana",
            client_os=ClientOS.XP_PRO,
            mode=LicensingMode.PER_DEVICE,
        ),
        lic.MarkLicense(license_id=42, hwid=HWID),
        lic.LicenseMarked(license_id=42, validated=True),
        lic.ReturnLicense(license_id=42, hwid=HWID),
        lic.LicenseReturned(license_id=42),
        lic.Referral(
            product=CalProduct.W2003_USER_CAL,
            servers=(_server_ref("LS2"), _server_ref("LS3")),
            reason="no Per User CALs here",
        ),
        adm.AdminGetStatus(),
        adm.AdminStatus(status=_status()),
        adm.AdminSetProperties(contact=_contact(), method=ActivationMethod.WEB),
        adm.AdminActivate(action=A.REACTIVATE, method=ActivationMethod.TELEPHONE, reason="lost"),
        adm.AdminActivationStep(
            action=A.ACTIVATE,
            method=ActivationMethod.TELEPHONE,
            state=ActivationState.UNACTIVATED,
            product_id="69712-640-0000000-00000",
            request_code="BCDFG-HJKMP-QRTVW-XY234-6789B-CDFGH-JKMPQ",
            instructions="Call the Clearinghouse and read the Product ID.",
        ),
        adm.AdminCompleteActivation(action=A.ACTIVATE, code="BCDFG-HJKMP-QRTVW-XY234-6789B"),
        adm.AdminInstallKeyPack(
            program=Program.OPEN_LICENSE,
            product=CalProduct.W2003_DEVICE_CAL,
            count=25,
            license_number="12345678",
            authorization_number="1A2B3C4D5E6F7G8",
        ),
        adm.AdminKeyPackInstalled(keypack=_keypack(), event_ids=(17,)),
        adm.AdminKeyPacks(keypacks=(_keypack(7), _keypack(8)), next_cursor=b"\x94\x01\x02"),
        adm.AdminListKeyPacks(product=CalProduct.W2003_USER_CAL, cursor=b"\x01", limit=50),
        adm.AdminListLicenses(
            since=NOW - 30 * DAY,
            until=NOW,
            product=CalProduct.W2003_USER_CAL,
            kind=LicenseKind.PERMANENT,
            status=LicenseStatus.ACTIVE,
            machine="PC7",
            user="dana",
            cursor=b"\x95\x01",
            limit=100,
        ),
        adm.AdminLicenses(licenses=(_issued(),), next_cursor=b"\x95\x01"),
        adm.AdminListUsers(since=NOW - 30 * DAY, until=NOW, user="dana", limit=10),
        adm.AdminUsers(
            users=(
                UserUsage(
                    user="dana",
                    product=CalProduct.W2003_USER_CAL,
                    connections=12,
                    first_seen=NOW - 10 * DAY,
                    last_seen=NOW,
                ),
            ),
        ),
        adm.AdminSetPolicy(security_group_enabled=True, add_members=("CONTOSO\\TS3",)),
        ch.ChActivate(
            action=A.ACTIVATE,
            method=ActivationMethod.AUTOMATIC,
            product_id="69712-640-0000000-00000",
            name="LS1",
            version=WindowsVersion.W2003,
            public_key=SERVER_PUB,
            contact=_contact(),
        ),
        ch.ChActivated(
            license_server_id="BCDFG-HJKMP-QRTVW-XY234-6789B-CDFGH-JKMPQ",
            cert_chain=(ROOT_DER, LS_DER),
        ),
        ch.ChDeactivate(
            license_server_id="BCDFG-HJKMP-QRTVW-XY234-6789B-CDFGH-JKMPQ",
            method=ActivationMethod.TELEPHONE,
            contact=_contact(),
        ),
        ch.ChDeactivated(
            license_server_id="BCDFG-HJKMP-QRTVW-XY234-6789B-CDFGH-JKMPQ",
            confirmation_code="QRTVW-XY234",
        ),
        ch.ChInstallKeyPack(
            license_server_id="BCDFG-HJKMP-QRTVW-XY234-6789B-CDFGH-JKMPQ",
            program=Program.RETAIL,
            product=CalProduct.W2000_TS_CAL,
            count=5,
            retail_code="BCDFG-HJKMP-QRTVW-XY234-6789B",
        ),
        ch.ChKeyPack(grant=b"\x92" + bytes(range(200)), keypack_code="BCDFG-HJKMP-QRTVW"),
        ch.ChClaimActivation(license_server_id_code="BCDFG-HJKMP-QRTVW", public_key=SERVER_PUB),
        ch.ChClaimKeyPack(
            license_server_id="BCDFG-HJKMP-QRTVW-XY234-6789B-CDFGH-JKMPQ",
            keypack_code="BCDFG-HJKMP-QRTVW",
        ),
        dr.DirRegister(computer="LS1", address="10.0.0.5:4170"),
        dr.DirAck(detail="registered"),
        dr.DirPublish(site="Default-First-Site-Name", computer="LS1", credential="s3cret"),
        dr.DirUnpublish(site="Default-First-Site-Name", computer="LS1", credential="s3cret"),
        dr.DirQueryEnterprise(site="Default-First-Site-Name"),
        dr.DirServers(
            servers=(_server_ref(),),
            distinguished_name="CN=TS-Enterprise-License-Server,CN=Default-First-Site-Name",
        ),
        dr.DirQueryDomainControllers(domain="CONTOSO"),
        dr.DirLookupComputer(name="DC1"),
        dr.DirComputer(computer=_computer()),
        dr.DirGroupMembers(group="Terminal Server Computers"),
        dr.DirGroup(group="Terminal Server Computers", members=("TS1", "TS2")),
        dr.DirSetComputer(computer=_computer(), credential="s3cret"),
    ]
