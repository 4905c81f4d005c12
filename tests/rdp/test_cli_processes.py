"""Issue 5's "Done when", with separate processes: a 2003 agent whose preferred list names a
2000 license server first skips it and licenses a Windows XP client through the 2003 server;
the client's second connection presents its stored license. The license servers are the
in-process fakes (real signed messages); the agent and the clients are `tslic` processes."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import trio
from cryptography.hazmat.primitives.serialization import Encoding
from tslic.protocol.clock import ClockSpec
from tslic.protocol.domain import CalProduct, WindowsVersion
from tslic.runtime.clock import WallClock

from tests.agent import fakes

PY = sys.executable


async def tslic(*args: str) -> tuple[int, str, str]:
    result = await trio.run_process(
        [PY, "-m", "tslic.cli", *args], capture_stdout=True, capture_stderr=True, check=False
    )
    return result.returncode, result.stdout.decode(), result.stderr.decode()


async def read_line(process: trio.Process) -> str:
    assert process.stdout is not None
    data = b""
    with trio.fail_after(60):  # a hang guard: process start-up on a busy machine
        while not data.endswith(b"\n"):
            chunk = await process.stdout.receive_some(4096)
            assert chunk, "the agent exited before announcing itself"
            data += chunk
    return data.decode()


async def test_agent_and_client_processes(tmp_path: Path) -> None:
    clock = WallClock(ClockSpec())
    root = fakes.Root.make(clock)
    (tmp_path / "root.pem").write_bytes(root.cert.public_bytes(Encoding.PEM))
    old = fakes.FakeLicenseServer(
        name="LS2000", version=WindowsVersion.W2000, clock=clock, root=root
    )
    new = fakes.FakeLicenseServer(
        name="LS2003",
        version=WindowsVersion.W2003,
        clock=clock,
        root=root,
        available={CalProduct.W2003_DEVICE_CAL: 5},
    )
    async with fakes.serve(old, clock) as s_old, fakes.serve(new, clock) as s_new:
        data = tmp_path / "agent"
        agent = await trio.lowlevel.open_process(
            [
                PY,
                "-m",
                "tslic.cli",
                "agent",
                "--version",
                "2003",
                "--name",
                "TS1",
                "--license-server",
                f"LS2000={s_old.address}",
                "--license-server",
                f"LS2003={s_new.address}",
                "--trust-root",
                str(tmp_path / "root.pem"),
                "--data",
                str(data),
                "--ready-file",
                str(tmp_path / "ready.json"),
                "--clock",
                "real",
            ],
            stdout=subprocess.PIPE,
        )
        try:
            ready = json.loads(await read_line(agent))
            assert ready["role"] == "agent"
            assert ready["version"] == 2003
            assert ready["mode"] == "per-device"
            connect = [
                "connect",
                "--agent",
                ready["address"],
                "--device",
                "XP1",
                "--user",
                "alice",
                "--os",
                "windows-xp-professional",
                "--store",
                str(tmp_path / "xp1"),
                "--trust-root",
                str(tmp_path / "root.pem"),
            ]
            code, out, err = await tslic(*connect, "--json")
            assert code == 0, err
            first = json.loads(out)
            # announce() prints, then writes the ready file; both are done by now.
            assert json.loads((tmp_path / "ready.json").read_text()) == ready
            assert first["status"] == "licensed"
            assert first["presented_stored_license"] is False
            assert first["license"]["type"] == "temporary"
            assert first["license"]["issuer"] == "LS2003"

            code, out, err = await tslic(*connect, "--json")
            second = json.loads(out)
            assert second["presented_stored_license"] is True
            assert second["license"]["type"] == "permanent"
            assert second["license"]["product"] == "w2003-device-cal"

            code, out, _ = await tslic(*connect)
            assert code == 0
            assert "presented the license stored on this computer" in out
            assert "Windows Server 2003 Terminal Server Per Device CAL" in out

            code, out, _ = await tslic(*connect, "--reset-store", "--json")
            assert json.loads(out)["presented_stored_license"] is False

            many = [
                "connect",
                "--agent",
                ready["address"],
                "--device",
                "PC",
                "--os",
                "windows-98",
                "--store",
                str(tmp_path / "many"),
                "--count",
                "3",
            ]
            code, out, _ = await tslic(*many)
            assert code == 0
            assert "Summary: licensed (temporary) 3" in out
            assert sorted(p.name for p in (tmp_path / "many").iterdir()) == ["PC-1", "PC-2", "PC-3"]

            code, out, _ = await tslic("agent", "status", "--data", str(data), "--json")
            assert code == 0
            status = json.loads(out)
            by_name = {s["name"]: s for s in status["servers"]}
            assert by_name["LS2000"]["connectivity_value"] == 4  # LS_CONNECTABLE_LOWER_VERSION
            assert by_name["LS2003"]["connectivity"] == "VALID_LS"
            assert by_name["LS2003"]["how"] == "registry"
            assert status["license_server_in_use"] == "LS2003"
            assert status["licenses"]["upgraded"] == 1
            code, out, _ = await tslic("agent", "status", "--data", str(data))
            assert "LOWER_VERSION (4)" in out

            # A wrong password: licensing went through, the logon did not; the status and the
            # exit code say so.
            code, out, _ = await tslic(*connect, "--wrong-password", "--json")
            assert code == 1
            failed = json.loads(out)
            assert failed["status"] == "logon-failed"
            assert failed["logged_on"] is False
            assert "password" in failed["text"]
            code, out, _ = await tslic(*connect, "--wrong-password")
            assert code == 1
            assert "could not log you on" in out

            # A Per User fleet is one command: three users from one device, or a pattern.
            users = [*many[:-2], "--count", "1", "--users", "3", "--user", "clerk{n}", "--json"]
            code, out, err = await tslic(*users)
            assert code == 0, err
            fleet = json.loads(out)["devices"]
            assert [(d["device"], d["user"]) for d in fleet] == [
                ("PC", "clerk1"),
                ("PC", "clerk2"),
                ("PC", "clerk3"),
            ]
            code, out, err = await tslic(*many[:-2], "--count", "2", "--users", "4", "--json")
            assert code == 0, err
            pairs = [(d["device"], d["user"]) for d in json.loads(out)["devices"]]
            assert pairs == [("PC-1", "user-1"), ("PC-2", "user-2"), ("PC-1", "user-3"),
                             ("PC-2", "user-4")]  # fmt: skip
        finally:
            agent.send_signal(signal.SIGTERM)
            with trio.fail_after(60):  # a hang guard: process start-up on a busy machine
                code = await agent.wait()
            assert agent.stdout is not None
            await agent.stdout.aclose()
        assert code == 0
        code, out, _ = await tslic("agent", "events", "--data", str(data), "--json")
        assert code == 0
        assert json.loads(out) == []


async def test_cli_errors_are_one_line(tmp_path: Path) -> None:
    code, _, err = await tslic(
        "agent", "--version", "2000", "--mode", "per-user", "--data", str(tmp_path / "a")
    )
    assert code == 2
    assert "Per User licensing exists only on Windows Server 2003" in err
    assert "Traceback" not in err
    code, _, err = await tslic("agent", "status", "--data", str(tmp_path / "none"))
    assert code == 2
    assert "holds no agent state" in err
    code, _, err = await tslic("connect", "--agent", "nowhere", "--device", "D", "--store", "s")
    assert code == 2
    assert "HOST:PORT" in err
