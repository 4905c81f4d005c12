"""The minimal session after licensing: activation, one outcome bitmap, a clean end.

Contract (MS-RDPBCGR §1.3.1.1 phases 7-8, §2.2.1.13-§2.2.1.22, §2.2.3.1):
- `run_session(link, lines, hold=)` sends the Demand Active, answers the client's Confirm
  Active and finalization PDUs (Synchronize -> Synchronize, Control Cooperate -> Cooperate,
  Control Request -> Granted, Font List -> Font Map), then paints `lines` with the outcome
  bitmap (protocol.rdp.outcome). It then waits until the client closes (Disconnect Provider
  Ultimatum, Shutdown Request or end of stream) or `hold` seconds after the bitmap (0: at
  once) pass (or the caller cancels
  the scope `on_painted` was given), and ends with Deactivate All and a Disconnect Provider
  Ultimatum. Returns what ended the session.
- `link` is the listener's `Link` (`next_event()`, `send()`, `conn`); every wait is bounded
  by its step timeout during activation, and by `hold` afterwards.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import trio
from tslic.protocol.connection import PEER_CLOSED
from tslic.protocol.rdp import DataReceived, SendSharePdu, mcs, share
from tslic.protocol.rdp.outcome import render_lines

if TYPE_CHECKING:
    from .rdp_link import Link


OnPainted = Callable[[trio.CancelScope], None]


async def run_session(
    link: Link, lines: list[str], *, hold: float, on_painted: OnPainted | None = None
) -> str:
    conn = link.conn
    settings = conn.client_settings
    assert settings is not None  # licensing comes after the Connect-Initial
    core = settings.core
    session = share.SessionSettings(
        width=max(64, min(core.desktop_width, 4096)),
        height=max(64, min(core.desktop_height, 4096)),
    )
    user_channel = conn.user_channel
    await link.send(SendSharePdu(pdu=share.demand_active(session)))
    painted = False
    with trio.CancelScope() as waited:  # its deadline is set once the outcome shows
        while True:
            # once painted the client may stay silent until `hold` ends
            event = await link.next_event(bounded=not painted)
            if event is PEER_CLOSED:
                return "client closed the connection"
            if isinstance(event, mcs.DisconnectProviderUltimatum):
                return "client disconnected"
            if not isinstance(event, DataReceived):
                continue
            pdu = share.parse_client_pdu(event.data)
            kind = pdu.pdu_type2
            if kind == share.PduType2.SYNCHRONIZE:
                await link.send(SendSharePdu(pdu=share.synchronize(1002)))
            elif kind == share.PduType2.CONTROL:
                action = share.control_action(pdu)
                if action == share.ControlAction.COOPERATE:
                    await link.send(SendSharePdu(pdu=share.control(share.ControlAction.COOPERATE)))
                elif action == share.ControlAction.REQUEST_CONTROL:
                    granted = share.control(
                        share.ControlAction.GRANTED_CONTROL,
                        grant_id=user_channel,
                        control_id=1002,
                    )
                    await link.send(SendSharePdu(pdu=granted))
            elif kind == share.PduType2.FONT_LIST and not painted:
                await link.send(SendSharePdu(pdu=share.font_map()))
                for rect in render_lines(lines):
                    await link.send(SendSharePdu(pdu=share.bitmap_update([rect])))
                painted = True
                waited.deadline = trio.current_time() + hold
                if on_painted is not None:
                    on_painted(waited)  # the caller may end the session early by cancelling
            elif kind == share.PduType2.SHUTDOWN_REQUEST:
                ended = "client asked to shut down"
                break
    if waited.cancelled_caught:
        ended = "ended by the server"
    await link.send(SendSharePdu(pdu=share.deactivate_all()))
    await link.send(mcs.DisconnectProviderUltimatum(reason=1))
    return ended
