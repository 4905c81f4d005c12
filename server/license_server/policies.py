"""The license server's run-time policies and the License Server Security Group check.

Contract: one `Policies` per running server, shared by the handlers and the issuer (they
receive it, not the daemon). `security_group` and `prevent_upgrade` start from the database
(or the command line's override) and change when the administrator sets them; the directory's
group members are read once at start, as membership changes took effect only at service
restart (docs/PROTOCOL.md §7.3, SEC-14), the local list likewise. `admit` refuses a terminal
server outside the group with NOT_IN_SECURITY_GROUP and termsrv event 1043's text.
"""

from __future__ import annotations

from dataclasses import dataclass

from tslic.protocol.errors import ErrorCode, ServiceError
from tslic.protocol.events import TermsrvEvent


def not_in_group_text(ls_name: str) -> str:
    """termsrv event 1043's text (docs/PROTOCOL.md §7.3)."""
    return (
        "This Terminal Server is not able to communicate with the License Server. Please make"
        " sure that this Terminal Server's computer account is a member of the \"Terminal"
        f' Server Computers" group on License Server ({ls_name}).'
    )


@dataclass(slots=True, kw_only=True)
class Policies:
    """What the administrator may switch at run time, and the directory's group."""

    server_name: str
    security_group: bool = False
    prevent_upgrade: bool = False
    directory_members: frozenset[str] = frozenset()
    local_members: frozenset[str] = frozenset()

    def admit(self, name: str) -> None:
        """Refuse terminal server `name` if the group policy is on and it is not a member.
        The members are those read when the service started (SEC-14; TechNet "Control the
        issuance of Terminal Server licenses": membership changes take effect after a
        restart).

        Raises:
            ServiceError: NOT_IN_SECURITY_GROUP.
        """
        if (
            self.security_group
            and name.upper() not in self.directory_members
            and name.upper() not in self.local_members
        ):
            raise ServiceError(
                not_in_group_text(self.server_name),
                code=ErrorCode.NOT_IN_SECURITY_GROUP,
                detail={
                    "license_server": self.server_name,
                    "event_id": str(TermsrvEvent.NOT_IN_TS_COMPUTERS_GROUP),
                },
            )
