"""The generator's socket layer: `Link.read_available` and the `ReadySet` of many sockets."""

from __future__ import annotations

import socket

import trio
from tslic.client.load.link import ReadySet


async def test_ready_set_returns_the_readable_sockets_until_read(autojump_clock: object) -> None:
    pairs = [socket.socketpair() for _ in range(3)]
    ready: ReadySet[str] = ReadySet()
    try:
        for i, (ours, _) in enumerate(pairs):
            ours.setblocking(False)
            ready.add(ours.fileno(), f"agent{i}")
        pairs[0][1].send(b"x")
        pairs[2][1].send(b"y")
        with trio.fail_after(5):
            fds = await ready.wait()
        assert sorted(ready.get(fd) or "" for fd in fds) == ["agent0", "agent2"]
        # level-triggered: unread data is reported again; read data is not
        pairs[0][0].recv(10)
        with trio.fail_after(5):
            fds = await ready.wait()
        assert [ready.get(fd) for fd in fds] == ["agent2"]
        # a discarded socket is forgotten at once, even if it is still readable
        ready.discard(pairs[2][0].fileno())
        ready.discard(pairs[2][0].fileno())  # twice is harmless
        assert ready.get(pairs[2][0].fileno()) is None
        with trio.move_on_after(1) as scope:  # virtual time: nothing is readable
            await ready.wait()
        assert scope.cancelled_caught
    finally:
        ready.close()
        for a, b in pairs:
            a.close()
            b.close()
