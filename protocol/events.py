"""Event ids, each defined once: the terminal server's (termsrv) and the license server's.

Contract: plain enums, no behaviour. `TermsrvEvent` holds the termsrv.dll event ids the
terminal-server agent logs (docs/PROTOCOL.md §7.4); `LsEvent` the license-server event ids
(§7.5: the Windows Server 2008 numbering, as the 2003 numbers are not public, plus our own
ids for what has no documented one). Every module that logs or names an event id imports it
from here.
"""

from __future__ import annotations

import enum


class TermsrvEvent(enum.IntEnum):
    """termsrv.dll event ids (§3, §7.4)."""

    CANNOT_ISSUE_LICENSE = 1004
    GRACE_EXPIRED = 1008  # grace expired, not registered with a license server with licenses
    GRACE_EXPIRING = 1009  # grace period about to expire on %1
    NO_LICENSE_SERVER = 1010
    TEMPORARY_EXPIRED = 1011
    NO_LICENSE_SERVER_DOMAIN = 1026
    NO_LICENSE_SERVER_WORKGROUP = 1027
    PERMANENT_NOT_RENEWED = 1028
    NOT_IN_TS_COMPUTERS_GROUP = 1043  # License Server Security Group refusal
    CONVERTED_TO_PER_USER = 1044


class LsEvent(enum.IntEnum):
    """License-server event ids (Windows Server 2008 numbering, §7.5)."""

    STARTED = 0
    ACTIVATED = 4
    NOT_ACTIVATED = 18
    NO_PERMANENT_LICENSE = 21  # TLS_W_NOPERMLICENSE
    POLICY_MODULE = 41  # TermServLicensing: can't initialize policy module (KB839878)
    PUBLISHED = 64
    ACCESS_DENIED = 5003  # TLS_E_ACCESS_DENIED, used as the id of refusal records
