"""tslic.protocol.rdp: the sans-IO core of a real RDP server up to and through licensing.

Modules (each states its contract): `x224` (TPKT, X.224, RDP negotiation), `mcs` (T.125 BER
and PER), `gcc` (T.124 and the settings blocks), `keys` (RSA, proprietary certificate,
session keys), `security` (RC4, MACs, security headers, Security Exchange), `info` (Client
Info, Set Error Info), `licensing` and `license_crypto` (MS-RDPELE), `events` and
`connection` (the server state machine a listener drives). No I/O, clock or randomness here.
"""

from __future__ import annotations

from .connection import RdpServerConnection, State
from .events import (
    AcceptSettings,
    ClientConnect,
    ClientInfoReceived,
    DataReceived,
    LicensingReceived,
    SecurityEstablished,
    SendErrorInfo,
    SendLicensing,
    SendSharePdu,
)

__all__ = [
    "AcceptSettings",
    "ClientConnect",
    "ClientInfoReceived",
    "DataReceived",
    "LicensingReceived",
    "RdpServerConnection",
    "SecurityEstablished",
    "SendErrorInfo",
    "SendLicensing",
    "SendSharePdu",
    "State",
]
