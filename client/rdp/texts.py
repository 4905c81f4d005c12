"""What the user of an RDP client was shown, in the words of the time
(MS-RDPBCGR 2.2.5.1.1, docs/PROTOCOL.md §8.3).

Contract: pure data shared by the terminal-server agent (which puts the text in its
ErrorAlert) and the client (which prints it, falling back on its own table by disconnect
reason, as mstsc did with the Set Error Info PDU).
"""

from __future__ import annotations

from tslic.protocol.messages.rdp import DisconnectReason

NO_LICENSE_SERVER = (
    "The remote session was disconnected because there are no Terminal Server License Servers "
    "available to provide a license. Please contact the server administrator."
)
CANT_UPGRADE = (
    "The remote session was disconnected because the local computer's client access license "
    "could not be upgraded or renewed."
)
NO_LICENSE = (
    "The remote session was disconnected because no valid software license was available. "
    "Please contact the server administrator."
)
BAD_LICENSE = (
    "The remote session was disconnected because the client access license stored on this "
    "computer is not valid. Delete the license store (MSLicensing) and connect again."
)
HWID_MISMATCH = (
    "The remote session was disconnected because the hardware ID does not match the one "
    "designated on the software license."
)
BAD_CLIENT_MSG = (
    "The remote session was disconnected because of an error in the licensing protocol."
)
INVALID_SERVER_CERTIFICATE = (
    "The remote computer's certificate is not valid; the connection was ended by this computer."
)
TEMPORARY_EXPIRING = (
    "Your terminal services temporary client license will expire in {days}. Please "
    "contact your system administrator to get a permanent license."
)
LOGON_FAILED = "The logon failed: the user name or password is incorrect."


def days(n: int) -> str:
    """'1 day', '2 days'."""
    return f"{n} day" if n == 1 else f"{n} days"


BY_REASON: dict[DisconnectReason, str] = {
    DisconnectReason.LICENSE_NO_LICENSE_SERVER: NO_LICENSE_SERVER,
    DisconnectReason.LICENSE_NO_LICENSE: NO_LICENSE,
    DisconnectReason.LICENSE_CANT_UPGRADE_LICENSE: CANT_UPGRADE,
    DisconnectReason.LICENSE_BAD_CLIENT_LICENSE: BAD_LICENSE,
    DisconnectReason.LICENSE_HWID_DOESNT_MATCH_LICENSE: HWID_MISMATCH,
    DisconnectReason.LICENSE_BAD_CLIENT_MSG: BAD_CLIENT_MSG,
}
