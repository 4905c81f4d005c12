"""State-machine cases derived from the tables of protocol/states.py (docs/PROTOCOL.md §6).

Contract: for each role's conversation and each state the suite's peer can reach black-box
(request/response: START on a fresh connection and READY after the Welcome; an agent's RDP
conversation: LICENSE_REQUESTED after its greeting), every client-sent message whose
(direction, type, variant) is absent from that state's row is sent, correctly signed and
with valid fields, and must be refused with ILLEGAL_STATE (1011) and a close. A message of
another conversation is refused the same way. The lists are generated from the tables, so a
new message or transition gets its cases without editing this module.
"""

from __future__ import annotations

from tslic.protocol import ErrorCode
from tslic.protocol.messages import REGISTRY, Conversation, Error, Message
from tslic.protocol.messages.rdp import ErrorAlert, StateTransition
from tslic.protocol.states import READY, REQUESTED, START, Direction, next_state

from .basics import CONVERSATION
from .context import Context
from .model import Case, Judgement, Role, Verdict, case
from .samples import sample

CASES: list[Case] = []
E = ErrorCode


def _variants(cls: type[Message]) -> list[Message]:
    """One valid instance per state-table variant of the class."""
    if cls is Error:
        return [
            Error(code=int(E.NO_LICENSE_AVAILABLE), message="conformance refusal"),
            Error(code=int(E.MALFORMED_FRAME), message="conformance fatal"),
        ]
    if cls is ErrorAlert:
        base = sample(ErrorAlert)
        return [ErrorAlert(error_code=base.error_code, state_transition=t) for t in StateTransition]
    return [sample(cls)]


def illegal_messages(conversation: Conversation, state: str) -> list[Message]:
    """Client-sent messages of `conversation` that are illegal in `state`, plus one message
    from each other conversation."""
    out: list[Message] = []
    for cls in REGISTRY.values():
        if conversation not in cls.CONVERSATIONS:
            continue
        for msg in _variants(cls):
            if next_state(conversation, state, Direction.CLIENT, msg.TYPE, msg.variant()) is None:
                out.append(msg)
    for other in Conversation:
        if other is conversation:
            continue
        foreign = next(
            (c for c in REGISTRY.values() if frozenset({other}) == c.CONVERSATIONS), None
        )
        if foreign is not None:
            out.append(sample(foreign))
    return out


def _slug(conversation: Conversation, state: str, msg: Message) -> str:
    variant = msg.variant()
    name = type(msg).__name__ + (f"-{variant}" if variant else "")
    return f"{conversation}.{state}.{name}"


def _state_case(role: Role, state: str, msg: Message) -> None:
    conversation = CONVERSATION[role]
    foreign = conversation not in msg.CONVERSATIONS
    where = "another conversation's message" if foreign else "a message illegal in this state"
    description = (
        f"{type(msg).__name__} ({where}) sent by the client in state {state} of the "
        f"{conversation} conversation"
    )

    @case(CASES, "MSG-5" if foreign else "STATE-2", _slug(conversation, state, msg),
          description, ("Error ILLEGAL_STATE (1011), then close",), roles=frozenset({role}),
          negative=True)  # fmt: skip
    async def run(ctx: Context) -> Judgement:
        client = await ctx.open_raw()
        crafter = ctx.crafter()
        if state == READY:
            welcome = await ctx.handshake(client, crafter)
            if welcome is None or welcome.name != "Welcome":
                label = welcome.label() if welcome else "no reply"
                return Judgement(Verdict.FAIL, f"could not reach READY: {label}")
        elif state == REQUESTED and (ctx.greeting is None or ctx.greeting.name != "LicenseRequest"):
            label = ctx.greeting.label() if ctx.greeting else "nothing"
            return Judgement(Verdict.FAIL, f"no LicenseRequest greeting: {label}")
        await client.send(crafter.message(msg), type(msg).__name__)
        return ctx.reject(await client.observe(ctx.timeout), {E.ILLEGAL_STATE})


for _role in (Role.LICENSE_SERVER, Role.CLEARINGHOUSE, Role.DIRECTORY):
    for _state in (START, READY):
        for _msg in illegal_messages(CONVERSATION[_role], _state):
            _state_case(_role, _state, _msg)
for _msg in illegal_messages(Conversation.RDP, REQUESTED):
    _state_case(Role.AGENT, REQUESTED, _msg)
