"""What the terminal server sends a client during licensing: alerts, the platform challenge,
and an upgraded or echoed license (MS-RDPELE semantics, KB 813052).

Contract: `ClientReplies` is a base of `licensing.Licensing` (and derives from
`grace.GraceKeeper`); it owns no state of its own (the counts live in `AgentState`). Each
reply returns whether licensing goes on, so `Licensing` can `return await` it:
- `_alert` sends an ErrorAlert; ST_TOTAL_ABORT counts the client as refused and returns False,
  any other transition returns True. `_valid_client` is STATUS_VALID_CLIENT +
  ST_NO_TRANSITION (counted as valid_client); `_no_license_server` is ERR_NO_LICENSE_SERVER,
  LICENSE_NO_LICENSE_SERVER, after logging 1010/1026/1027 when due (`note_no_server`).
- `_challenge(channel, expected_hwid)` sends a PlatformChallenge and returns the hardware id
  the response proves, or None: the client aborted, or it was sent ERR_INVALID_CLIENT because
  the response does not echo the challenge or names another hardware id than the key signing
  the client's envelopes (LICENSE_BAD_CLIENT_MSG), or than the presented license's
  (LICENSE_HWID_DOESNT_MATCH_LICENSE).
- `_upgrade(channel, blob, echoed=...)` sends UpgradeLicense; an echoed license (the client's
  own, sent back) is counted as echoed.
"""

from __future__ import annotations

from collections.abc import Callable

from tslic.protocol.messages.rdp import (
    DisconnectReason,
    ErrorAlert,
    PlatformChallenge,
    PlatformChallengeResponse,
    RdpError,
    StateTransition,
    UpgradeLicense,
)

from ..rdp import texts
from .channel import Channel
from .config import SCOPE
from .grace import GraceKeeper

_ABORT = StateTransition.ST_TOTAL_ABORT


class ClientReplies(GraceKeeper):
    """The replies of one terminal server to a client in licensing (set up by Licensing)."""

    _random: Callable[[int], bytes]

    async def _alert(
        self,
        stream: Channel,
        code: RdpError,
        reason: DisconnectReason,
        text: str,
        transition: StateTransition = _ABORT,
    ) -> bool:
        await stream.send(
            ErrorAlert(
                error_code=code, state_transition=transition, disconnect_reason=reason, text=text
            )
        )
        if transition is _ABORT:
            self.state.count("refused")
            return False
        return True

    async def _valid_client(self, stream: Channel) -> bool:
        self.state.count("valid_client")
        return await self._alert(
            stream,
            RdpError.STATUS_VALID_CLIENT,
            DisconnectReason.NONE,
            "",
            StateTransition.ST_NO_TRANSITION,
        )

    async def _no_license_server(self, stream: Channel) -> bool:
        self.note_no_server()
        return await self._alert(
            stream,
            RdpError.ERR_NO_LICENSE_SERVER,
            DisconnectReason.LICENSE_NO_LICENSE_SERVER,
            texts.NO_LICENSE_SERVER,
        )

    async def _challenge(self, stream: Channel, expected_hwid: bytes | None) -> bytes | None:
        """Send the platform challenge; return the proven hardware id, or None after an alert."""
        challenge = self._random(32)
        await stream.send(PlatformChallenge(challenge=challenge))
        reply = await stream.receive()
        if not isinstance(reply, PlatformChallengeResponse):
            return None  # the client aborted (ErrorAlert ST_TOTAL_ABORT)
        bound = stream.peer_key
        if reply.challenge != challenge or (bound is not None and reply.hwid != bound):
            await self._alert(
                stream,
                RdpError.ERR_INVALID_CLIENT,
                DisconnectReason.LICENSE_BAD_CLIENT_MSG,
                texts.BAD_CLIENT_MSG,
            )
            return None
        if expected_hwid is not None and reply.hwid != expected_hwid:
            await self._alert(
                stream,
                RdpError.ERR_INVALID_CLIENT,
                DisconnectReason.LICENSE_HWID_DOESNT_MATCH_LICENSE,
                texts.HWID_MISMATCH,
            )
            return None
        return reply.hwid

    async def _upgrade(self, stream: Channel, blob: bytes, *, echoed: bool) -> bool:
        if echoed:
            self.state.count("echoed")
        await stream.send(UpgradeLicense(license=blob, scope=SCOPE))
        return True
