"""Limit and robustness cases (docs/PROTOCOL.md §9): slow senders, stalls, abrupt closes,
connection floods, and the conversation surviving a refusal.

Contract: these cases judge the target's resilience more than a single reply. The runner's
liveness check after each case (a well-behaved client must still be served) is the main
verdict of the abrupt-close case; the flood case performs that check itself while the flood
connections are still open. Budgets come from the options: `--slow-delay`, `--flood`,
`--handshake-timeout` (the target's documented Hello deadline).
"""

from __future__ import annotations

import re

import trio
from tslic.protocol import ConnectionLost, ErrorCode

from .cases_envelope import opening
from .context import Context
from .model import REQUEST_REPLY_ROLES, Case, Judgement, Verdict, case
from .wire import RawClient

CASES: list[Case] = []
E = ErrorCode


@case(CASES, "FRAME-5", "slow-sender", "the opening message written one byte at a time",
      ("the normal reply (Welcome; for an agent its next licensing message)",),
      heavy=True)  # fmt: skip
async def slow_sender(ctx: Context) -> Judgement:
    # The target's Hello deadline runs from its accept: the pieces are paced over the first
    # 40% of it, counted from before the connection opens, and whatever is left when that
    # time is up goes at once (wire.send_slowly), so a slow machine shortens the slow phase
    # instead of pushing the Hello past the deadline. A target that drops a sender pausing
    # inside its deadline still fails.
    deadline = ctx.config.handshake_timeout
    until = trio.current_time() + 0.4 * deadline
    client = await ctx.open_raw()
    frame = ctx.crafter().message(opening(ctx))
    budget = max(0.0, until - trio.current_time())
    delay = min(ctx.config.slow_delay, budget / len(frame))
    pieces = await client.send_slowly(frame, delay, budget=budget, until=until)
    reply = await client.read_frame(ctx.timeout)
    label = reply.label() if reply else "no reply"
    sent = f"{len(frame)} bytes in {pieces} pieces {delay * 1000:.1f} ms apart: {label}"
    if reply is None or (reply.error_code or 0) // 1000 == 1 or reply.problem:
        return Judgement(Verdict.FAIL, sent)
    return Judgement(Verdict.PASS, sent)


@case(CASES, "LIMIT-2", "stalled-handshake", "three bytes of a length prefix, then nothing "
      "(a slowloris connection)", ("Error HANDSHAKE_TIMEOUT (1013) within the target's Hello "
      "deadline, then close", "close (non-strict)"), negative=True, heavy=True)  # fmt: skip
async def stalled(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    await client.send(b"\x00\x00\x01")
    obs = await client.observe(ctx.config.handshake_timeout + ctx.timeout)
    return ctx.reject(obs, {E.HANDSHAKE_TIMEOUT})


@case(CASES, "FRAME-4", "abrupt-close-mid-frame", "half of a valid opening frame, then a TCP "
      "reset; a well-behaved client must still be served",
      ("a well-behaved client served afterwards",))  # fmt: skip
async def abrupt(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    frame = ctx.crafter().message(opening(ctx))
    await client.send(frame[: len(frame) // 2])
    await client.abort()
    served, detail = await ctx.served()
    verdict = Verdict.PASS if served else Verdict.FAIL
    return Judgement(verdict, f"reset sent mid-frame; well-behaved client: {detail}")


@case(CASES, "LIMIT-1", "connection-flood", "many connections opened at once and held without "
      "a handshake, while a well-behaved client connects",
      ("the well-behaved client served while the flood is open",), heavy=True)  # fmt: skip
async def flood(ctx: Context) -> Judgement:
    clients: list[RawClient] = []
    failures = 0

    async def one() -> None:
        nonlocal failures
        try:
            clients.append(await RawClient.connect(ctx.config.target))
        except ConnectionLost:
            failures += 1

    try:
        async with trio.open_nursery() as nursery:
            for _ in range(ctx.config.flood):
                nursery.start_soon(one)
        served, detail = await ctx.served()
    finally:
        for c in clients:
            await c.aclose()
    text = (
        f"{len(clients)} of {ctx.config.flood} flood connections open "
        f"({failures} refused at connect); well-behaved client: {detail}"
    )
    return Judgement(Verdict.PASS if served else Verdict.FAIL, text)


@case(CASES, "ERR-2", "refusal-keeps-conversation", "a request the target refuses or answers, "
      "then a second request on the same connection",
      ("two answers on one connection (a refusal does not end the conversation)",),
      roles=REQUEST_REPLY_ROLES)  # fmt: skip
async def refusal_keeps(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    crafter = ctx.crafter()
    welcome = await ctx.handshake(client, crafter)
    if welcome is None or welcome.name != "Welcome":
        return Judgement(Verdict.FAIL, "Hello not welcomed")
    answers = []
    for _ in range(2):
        await client.send(crafter.message(ctx.simple_request()))
        reply = await client.read_frame(ctx.timeout)
        answers.append(reply.label() if reply else "nothing")
        if reply is None or (reply.error_code or 0) // 1000 == 1:
            return Judgement(Verdict.FAIL, ", then ".join(answers))
    return Judgement(Verdict.PASS, ", then ".join(answers))


@case(CASES, "STATE-6", "goodbye-closes", "Goodbye after the Welcome",
      ("the target closes the connection without an Error",),
      roles=REQUEST_REPLY_ROLES)  # fmt: skip
async def goodbye(ctx: Context) -> Judgement:
    from tslic.protocol.messages import Goodbye

    client = await ctx.open_raw()
    crafter = ctx.crafter()
    welcome = await ctx.handshake(client, crafter)
    if welcome is None or welcome.name != "Welcome":
        return Judgement(Verdict.FAIL, "Hello not welcomed")
    await client.send(crafter.message(Goodbye(reason="conformance")))
    obs = await client.observe(ctx.timeout)
    if obs.end == "clean-close" and not obs.first_error:
        return Judgement(Verdict.PASS, obs.summary())
    if obs.end == "reset":
        return Judgement(Verdict.UNCLEAN, obs.summary())
    if obs.end == "open" and not obs.frames:
        return Judgement(Verdict.TIMEOUT, obs.summary())
    return Judgement(Verdict.FAIL, obs.summary())


# The same probes also evidence these rules (each case keeps one rule id, so they are listed
# again under the rule they show).
case(CASES, "STATE-5", "refusal-returns-to-ready", "a request the target refuses or answers, "
     "then a second request", ("both answered: a refusal returns the conversation to READY",),
     roles=REQUEST_REPLY_ROLES)(refusal_keeps)  # fmt: skip


@case(CASES, "LIMIT-3", "idle-timeout", "a Welcome, then silence for the target's idle timeout "
      "(--idle-timeout; 0 skips the case)", ("Error IDLE_TIMEOUT (1014), then close",),
      roles=REQUEST_REPLY_ROLES, negative=True, heavy=True)  # fmt: skip
async def idle(ctx: Context) -> Judgement:
    budget = ctx.config.idle_timeout
    if budget <= 0:
        return Judgement(Verdict.UNSUPPORTED, "skipped: give --idle-timeout SECONDS (the "
                         "target's idle timeout, 300 by default) to wait for it")  # fmt: skip
    client = await ctx.open_raw()
    welcome = await ctx.handshake(client, ctx.crafter())
    if welcome is None or welcome.name != "Welcome":
        return Judgement(Verdict.FAIL, "Hello not welcomed")
    return ctx.reject(await client.observe(budget + ctx.timeout), {E.IDLE_TIMEOUT})


@case(CASES, "STATE-3", "hello-first", "a Hello as the first message", ("Welcome",),
      roles=REQUEST_REPLY_ROLES)  # fmt: skip
async def hello_first(ctx: Context) -> Judgement:
    client = await ctx.open_raw()
    reply = await ctx.handshake(client, ctx.crafter())
    if reply is not None and reply.name == "Welcome":
        return Judgement(Verdict.PASS, "Welcome")
    return Judgement(Verdict.FAIL, reply.label() if reply else "no reply")


@case(CASES, "MSG-4", "name-too-long", "a Hello whose name has 65 characters",
      ("Error INVALID_FIELD (1006), then close",), roles=REQUEST_REPLY_ROLES,
      negative=True)  # fmt: skip
async def name_too_long(ctx: Context) -> Judgement:
    from tslic.protocol.codec import to_wire

    crafter = ctx.crafter()
    body = {**to_wire(ctx.hello()), "name": "N" * 65}
    client = await ctx.open_raw()
    await client.send(crafter.raw(1, body))
    return ctx.reject(await client.observe(ctx.timeout), {E.INVALID_FIELD})


@case(CASES, "ERR-4", "human-error-messages", "several malformed frames; the Error messages the "
      "target sends are read", ("non-empty sentences without stack traces or library names",),
      negative=True)  # fmt: skip
async def human_messages(ctx: Context) -> Judgement:
    bad = [b"\x00\x00\x00\x00", b"\x00\x00\x00\x01\xc1", b"\x00\x00\x00\x02\x81\x01"]
    messages = []
    for data in bad:
        client = await ctx.open_raw()
        await client.send(data)
        obs = await client.observe(ctx.timeout)
        err = obs.first_error
        if err is not None and err.body is not None:
            messages.append(str(err.body.get("message", "")))
    if not messages:
        return Judgement(Verdict.NON_STRICT, "no Error messages to read (the target closed)")
    hard = ("Traceback", 'File "', " object at 0x")
    bad_msgs = [m for m in messages if not m.strip() or any(w in m for w in hard)]
    if bad_msgs:
        return Judgement(Verdict.FAIL, f"unreadable messages: {bad_msgs}")
    # A library's exception class name is not a stack trace, but it is not for people either.
    library = [m for m in messages if re.search(r"\b[A-Z][A-Za-z]*(Error|Exception)\b", m)]
    if library:
        return Judgement(Verdict.NON_STRICT, f"library exception names in: {library}")
    return Judgement(Verdict.PASS, " | ".join(messages))
