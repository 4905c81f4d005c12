"""Checking and describing changes to computer accounts (DirRegister, DirSetComputer).

Contract: pure functions over the topology's `Computer` values; no store, no view. A value
that breaks a rule raises `ServiceError` INVALID_REQUEST with the field named: an address not
like "host:port" (`checked_address`); an operating-system downgrade, a domain controller moved
to another domain, or the last domain controller of a domain demoted (`check_change`).
`describe_change` is the one-line account of a change, for DirAck's detail and the log.
"""

from __future__ import annotations

from collections.abc import Iterable

from tslic.protocol import ErrorCode, ServiceError
from tslic.runtime.peer import split_address

from .topology import Computer


def invalid(text: str, field: str) -> ServiceError:
    return ServiceError(text, code=ErrorCode.INVALID_REQUEST, detail={"field": field})


def check_change(old: Computer, new: Computer, computers: Iterable[Computer]) -> None:
    """Refuse an OS downgrade, moving a domain controller to another domain, and demoting
    the last domain controller of a domain (INVALID_REQUEST naming the field)."""
    if new.os_version < old.os_version:
        raise invalid(
            f"{old.name} runs Windows Server {old.os_version}; an operating system cannot "
            f"be downgraded to {new.os_version}",
            "computer.os_version",
        )
    if old.is_domain_controller and new.domain != old.domain:
        raise invalid(
            f"{old.name} is a domain controller of {old.domain}; demote it before moving "
            "it to another domain",
            "computer.domain",
        )
    leaving = old.is_domain_controller and not new.is_domain_controller
    others = [
        c
        for c in computers
        if c.is_domain_controller and c.domain == old.domain and c.name != old.name
    ]
    if leaving and not others:
        raise invalid(
            f"{old.name} is the last domain controller of {old.domain}; promote another "
            "computer first, or the domain would have none",
            "computer.is_domain_controller",
        )


def checked_address(address: str) -> str:
    try:
        split_address(address.strip())
    except ServiceError:
        raise invalid(f"{address!r} is not an address like 127.0.0.1:4000", "address") from None
    return address.strip()


def describe_change(old: Computer | None, new: Computer) -> str:
    role = "domain controller" if new.is_domain_controller else "member server"
    if old is None:
        return (
            f"{new.name} created: {role} of {new.domain} in site {new.site}, "
            f"Windows {new.os_version}"
        )
    changes = []
    if new.is_domain_controller and not old.is_domain_controller:
        changes.append("promoted to domain controller")
    if old.is_domain_controller and not new.is_domain_controller:
        changes.append("demoted to member server")
    if new.os_version != old.os_version:
        changes.append(f"upgraded to Windows Server {new.os_version}")
    if new.domain != old.domain:
        changes.append(f"moved to domain {new.domain}")
    if new.site != old.site:
        changes.append(f"moved to site {new.site}")
    return f"{new.name}: " + ("; ".join(changes) if changes else "unchanged")
