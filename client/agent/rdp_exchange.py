"""The MS-RDPELE exchange of one RDP connection, server side, around a `Decider`.

Contract:
- `start(info)` (after the Client Info PDU) sends the License Request: server random,
  ProductInfo (Windows Server 2003, "A02"), RSA key exchange, the proprietary certificate
  (always, also under TLS, where the client has no other RSA key) and the scope
  (ELE §2.2.2.1, §3.2.5.1).
- `receive(event)` handles one client licensing PDU and returns the `Outcome` once licensing
  is decided, after sending what it asks for (New/Upgrade License or "valid client"); None
  while the exchange goes on. New License Request -> Platform Challenge (ELE §3.2.5.2);
  Platform Challenge Response -> MAC checked, hardware id decrypted, decision (§3.2.5.5);
  License Information -> hardware id decrypted and MAC checked, the stored license presented
  to the decider (§3.2.5.3). A client Error Alert ends licensing as refused
  (LICENSE_CLIENT_ENDED_PROTOCOL). A bad MAC raises `RemoteProtocolError` (BAD_SIGNATURE).
- `alert(code)` sends the Error Alert of a refusal with ST_TOTAL_ABORT.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from tslic.protocol.errors import ErrorCode, RemoteProtocolError
from tslic.protocol.rdp import LicensingReceived, SendLicensing
from tslic.protocol.rdp.info import ClientInfo, ErrorInfo
from tslic.protocol.rdp.keys import proprietary_certificate
from tslic.protocol.rdp.license_crypto import (
    LicensingKeys,
    decrypt_premaster,
    derive_licensing_keys,
)
from tslic.protocol.rdp.license_data import ChallengeResponseData, HardwareId, NewLicenseInfo
from tslic.protocol.rdp.licensing import (
    Blob,
    BlobType,
    LicenseError,
    LicenseErrorCode,
    LicenseInformation,
    LicenseRequest,
    NewLicense,
    NewLicenseRequest,
    PlatformChallenge,
    PlatformChallengeResponse,
    ProductInfo,
    StateTransition,
)

from .rdp_licensing import COMPANY, PRODUCT_ID, PRODUCT_VERSION_2003, ClientRequest, Outcome

if TYPE_CHECKING:
    from .rdp_link import Link, ListenerConfig, RdpSessionReport

CHALLENGE = "TEST".encode("utf-16-le") + b"\x00\x00"  # 10 bytes, as rdesktop requires


class LicensingExchange:
    def __init__(
        self,
        link: Link,
        report: RdpSessionReport,
        config: ListenerConfig,
        server_random: bytes,
    ) -> None:
        self.link = link
        self.report = report
        self.config = config
        self.server_random = server_random
        self.info = ClientInfo()
        self.keys: LicensingKeys | None = None
        self.request: NewLicenseRequest | None = None

    async def start(self, info: ClientInfo) -> None:
        self.info = info
        certificate = Blob(
            kind=BlobType.CERTIFICATE, data=proprietary_certificate(self.config.server_key)
        )
        scope = Blob(kind=BlobType.SCOPE, data=self.config.scope.encode("ascii") + b"\x00")
        product = ProductInfo(
            version=PRODUCT_VERSION_2003, company_name=COMPANY, product_id=PRODUCT_ID
        )
        request = LicenseRequest(
            server_random=self.server_random,
            product=product,
            certificate=certificate,
            scopes=(scope,),
        )
        await self.link.send(SendLicensing(message=request))

    def _keys(self, message: NewLicenseRequest | LicenseInformation) -> LicensingKeys:
        premaster = decrypt_premaster(message.encrypted_premaster.data, self.config.server_key)
        self.keys = derive_licensing_keys(premaster, message.client_random, self.server_random)
        return self.keys

    def _client(self, hwid: bytes, presented: bytes | None) -> ClientRequest:
        request = self.request
        return ClientRequest(
            client_name=self.report.client_name or "",
            user=self.info.user_name,
            domain=self.info.domain,
            password_given=bool(self.info.password),
            machine=request.machine if request else (self.report.client_name or ""),
            platform_id=HardwareId.parse(hwid).platform_id,
            hwid=hwid,
            presented=presented,
        )

    def _note_hwid(self, hwid: bytes) -> None:
        parsed = HardwareId.parse(hwid)
        self.report.hwid = f"{parsed.platform_id:08x}:" + hwid[4:].hex()  # Data1..4 as sent

    async def receive(self, event: LicensingReceived) -> Outcome | None:
        message = event.message
        report = self.report
        report.license_message = type(message).__name__
        report.license_encrypted = event.encrypted
        report.reached = "licensing"
        if isinstance(message, NewLicenseRequest):
            self.request = message
            report.license_user = message.user
            report.license_machine = message.machine
            report.platform_id = message.platform_id
            encrypted, mac = self._keys(message).seal(CHALLENGE)
            blob = Blob(kind=BlobType.ENCRYPTED_DATA, data=encrypted)
            challenge = PlatformChallenge(encrypted_challenge=blob, mac=mac)
            await self.link.send(SendLicensing(message=challenge))
            return None
        if isinstance(message, PlatformChallengeResponse):
            keys = self.keys
            if keys is None or self.request is None:
                raise RemoteProtocolError(
                    "licensing: Platform Challenge Response before a request",
                    code=ErrorCode.ILLEGAL_STATE,
                )
            response = keys.decrypt(message.encrypted_response.data)
            hwid = keys.decrypt(message.encrypted_hwid.data)
            # rdesktop echoes the challenge without the spec's wrapper: the MAC covers both
            # plaintexts either way (docs/RDP.md)
            keys.check_mac(response + hwid, message.mac)
            report.challenge_ok = response == CHALLENGE or (
                ChallengeResponseData.parse(response).challenge == CHALLENGE
            )
            if not report.challenge_ok:
                raise RemoteProtocolError(
                    "licensing: the platform challenge response does not echo the challenge",
                    code=ErrorCode.BAD_SIGNATURE,
                )
            self._note_hwid(hwid)
            report.reached = "platform challenge response"
            return await self._decided(self._client(hwid, None))
        if isinstance(message, LicenseInformation):
            report.platform_id = message.platform_id
            report.presented = True
            keys = self._keys(message)
            hwid = keys.open(message.encrypted_hwid.data, message.mac)
            self._note_hwid(hwid)
            return await self._decided(self._client(hwid, message.license_info.data))
        if isinstance(message, LicenseError):
            return Outcome(
                kind=f"client ended licensing (error 0x{message.error_code:x})",
                error_info=ErrorInfo.LICENSE_CLIENT_ENDED_PROTOCOL,
            )
        raise RemoteProtocolError(
            f"licensing: unexpected {type(message).__name__}", code=ErrorCode.ILLEGAL_STATE
        )

    async def _decided(self, client: ClientRequest) -> Outcome:
        outcome = await self.config.decider.decide(client)
        self.report.outcome = outcome.kind
        self.report.error_info = outcome.error_info
        if outcome.refused:
            return outcome
        if outcome.license is None:
            await self.alert(LicenseErrorCode.STATUS_VALID_CLIENT, StateTransition.ST_NO_TRANSITION)
            return outcome
        keys = self.keys
        assert keys is not None  # decided only after the premaster secret arrived
        info = NewLicenseInfo(
            version=PRODUCT_VERSION_2003,
            scope=self.config.scope.encode("ascii") + b"\x00",
            company_name=COMPANY.encode("utf-16-le") + b"\x00\x00",
            product_id=PRODUCT_ID.encode("utf-16-le") + b"\x00\x00",
            license_info=outcome.license,
        )
        encrypted, mac = keys.seal(info.build())
        blob = Blob(kind=BlobType.ENCRYPTED_DATA, data=encrypted)
        message = NewLicense(encrypted_license_info=blob, mac=mac, upgrade=outcome.upgrade)
        await self.link.send(SendLicensing(message=message))
        self.report.license_sent = True
        return outcome

    async def alert(
        self, code: int, transition: StateTransition = StateTransition.ST_TOTAL_ABORT
    ) -> None:
        message = LicenseError(error_code=code, state_transition=transition)
        await self.link.send(SendLicensing(message=message))
