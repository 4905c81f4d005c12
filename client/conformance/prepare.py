"""`tslic conformance prepare`: the surroundings the suite plays for a target, written down.

Contract: `prepare(role, out_dir)` writes `out_dir/manifest.json` and a clock file
`out_dir/clock`, and returns the manifest. For an agent target it chooses two loopback ports
for the license servers the suite will play during the run (`peers.LsDouble`, named CONF-LS1
and CONF-LS2) and gives the command line to start the agent with: the clock file (the suite
moves time through it) and those license servers as its LicenseServers registry entries. The
run then reads the manifest (`--manifest FILE`), binds the doubles to those ports and sets
their behaviour case by case. Other roles get the clock file only. `load_manifest(path)`
reads it back or raises ServiceError (INVALID_FIELD) naming the file.
The manifest's shape (`schema` "tslic-conformance/1/manifest") is documented in
docs/CONFORMANCE.md §2; fields are only added.
"""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path
from typing import Any

from tslic.protocol import ErrorCode, ServiceError
from tslic.protocol.clock import ClockSpec
from tslic.runtime.clock import write_clock_file
from tslic.runtime.files import write_atomic

from .basics import Role

SCHEMA = "tslic-conformance/1/manifest"
LICENSE_SERVERS = ("CONF-LS1", "CONF-LS2")


def _free_port() -> int:
    """A loopback port free now (the run binds it again; prepare just before the run)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def prepare(role: Role, out_dir: Path, *, start_ms: int | None = None) -> dict[str, Any]:
    """Write the manifest and clock file for a run against a target of `role`."""
    out_dir.mkdir(parents=True, exist_ok=True)
    clock = out_dir / "clock"
    start = start_ms if start_ms is not None else int(time.time() * 1000)
    write_clock_file(str(clock), ClockSpec(start=start, anchor=time.time(), speed=1.0))
    manifest: dict[str, Any] = {"schema": SCHEMA, "role": str(role), "clock_file": str(clock)}
    start_target = ["--clock-file", str(clock)]
    if role is Role.AGENT:
        servers = {name: f"127.0.0.1:{_free_port()}" for name in LICENSE_SERVERS}
        manifest["license_servers"] = servers
        for name, address in servers.items():
            start_target += ["--license-server", f"{name}={address}"]
        data = out_dir / "agent"
        manifest["target_command"] = ["tslic", "agent", "--version", "2003", "--name",
                                      "CONF-TS", "--data", str(data), "--listen",
                                      "127.0.0.1:0", *start_target]  # fmt: skip
        manifest["events_command"] = f"tslic agent events --data {data} --json"
    else:
        manifest["target_command"] = ["...", *start_target]
    path = str(out_dir / "manifest.json")
    manifest["suite_command"] = ["tslic", "conformance", "--role", str(role), "--target",
                                 "TARGET", "--manifest", path]  # fmt: skip
    if "events_command" in manifest:
        manifest["suite_command"] += ["--events-command", manifest["events_command"]]
    write_atomic(out_dir / "manifest.json", json.dumps(manifest, indent=1).encode())
    return manifest


def load_manifest(path: Path) -> dict[str, Any]:
    """The manifest `prepare` wrote.

    Raises:
        ServiceError: INVALID_FIELD if it cannot be read or is not a manifest.
    """
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ServiceError(f"cannot read the manifest {path}: {exc}",
                           code=ErrorCode.INVALID_FIELD) from None  # fmt: skip
    if not isinstance(data, dict) or data.get("schema") != SCHEMA:
        raise ServiceError(f"{path} is not a tslic conformance manifest (run `tslic conformance"
                           " prepare`)", code=ErrorCode.INVALID_FIELD)  # fmt: skip
    return data
