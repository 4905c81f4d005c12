"""End to end from the command line: a Clearinghouse and license servers as separate
processes, driven with `tslic admin` (issue 4 "Done when")."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

TSLIC = [sys.executable, "-m", "tslic.cli.main"]
ENV = {**os.environ, "PYTHONWARNINGS": "ignore::DeprecationWarning"}


def _tslic(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [*TSLIC, *args], capture_output=True, text=True, timeout=60, env=ENV, check=False
    )
    if check and done.returncode != 0:
        raise AssertionError(f"tslic {' '.join(args)} failed: {done.stderr}{done.stdout}")
    return done


class Daemons:
    def __init__(self) -> None:
        self.procs: list[subprocess.Popen[str]] = []

    def start(self, ready: Path, *args: str) -> dict[str, str]:
        proc = subprocess.Popen(
            [*TSLIC, *args, "--ready-file", str(ready)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=ENV,
        )
        self.procs.append(proc)
        deadline = time.monotonic() + 120  # a hang guard: start-up on a busy machine
        while not ready.exists():  # waiting for another process, not for time to pass
            if proc.poll() is not None:
                raise AssertionError(f"daemon exited: {proc.stderr.read() if proc.stderr else ''}")
            if time.monotonic() > deadline:
                raise AssertionError("daemon did not become ready")
            time.sleep(0.02)
        info: dict[str, str] = json.loads(ready.read_text())
        return info

    def stop(self) -> list[int]:
        codes = []
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
            try:
                codes.append(proc.wait(timeout=60))
            except subprocess.TimeoutExpired:
                proc.kill()
                codes.append(proc.wait())
            for pipe in (proc.stdout, proc.stderr):
                if pipe is not None:
                    pipe.close()
        return codes


@pytest.fixture
def daemons() -> Iterator[Daemons]:
    running = Daemons()
    yield running
    running.stop()


def test_activate_and_install_from_the_command_line(tmp_path: Path, daemons: Daemons) -> None:
    ch = daemons.start(
        tmp_path / "ch.ready", "clearinghouse", "serve", "--data", str(tmp_path / "ch")
    )
    root = tmp_path / "root.pem"
    _tslic("clearinghouse", "export-root", "--data", str(tmp_path / "ch"), "--out", str(root))

    def buy(product: str) -> str:
        out = _tslic(
            "clearinghouse", "add-retail", "--data", str(tmp_path / "ch"),
            "--product", product, "--count", "5", "--json",
        )  # fmt: skip
        return str(json.loads(out.stdout)["reference"])

    servers = {}
    for version in ("2003", "2000"):
        servers[version] = daemons.start(
            tmp_path / f"ls{version}.ready",
            "server", "--data", str(tmp_path / f"ls{version}"), "--version", version,
            "--name", f"LS{version}", "--clearinghouse", ch["address"],
            "--trust-root", str(root),
        )  # fmt: skip
        assert servers[version]["role"] == "license-server"
        assert servers[version]["activation"] == "unactivated"

    def admin(version: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        info = servers[version]
        return _tslic(
            "admin", "--server", info["address"], "--credential", info["admin_credential"],
            "--json", *args, check=check,
        )  # fmt: skip

    for version in ("2003", "2000"):
        admin(
            version, "properties", "--first-name", "Ada", "--last-name", "Admin",
            "--company", "Contoso", "--country", "US",
        )  # fmt: skip
        done = json.loads(admin(version, "activate", "--method", "automatic").stdout)
        assert done["status"]["activation"] == "activated"
        assert done["status"]["certificate_temporary"] is False

    installed = json.loads(
        admin(
            "2003", "install", "--program", "retail", "--product", "w2003-device-cal",
            "--count", "5", "--code", buy("w2003-device-cal"),
        ).stdout
    )  # fmt: skip
    assert installed["keypack"]["total"] == 5
    assert installed["keypack"]["available"] == 5
    packs = json.loads(admin("2003", "keypacks").stdout)
    assert [k["product"] for k in packs["keypacks"]] == ["w2003-device-cal"]

    refused = admin(
        "2000", "install", "--program", "retail", "--product", "w2003-device-cal",
        "--count", "5", "--code", buy("w2003-device-cal"), check=False,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "Licensing Wizard was unable to install the client license key pack" in refused.stderr
    assert "Message Number 0x13A7" in refused.stderr
    assert "KEYPACK_NOT_SUPPORTED 3003" in refused.stderr
    assert "Traceback" not in refused.stderr

    wrong = _tslic(
        "admin", "--server", servers["2003"]["address"],
        "--credential", servers["2000"]["admin_credential"], "status", check=False,
    )  # fmt: skip
    assert wrong.returncode == 2
    assert "ACCESS_DENIED" in wrong.stderr

    # SEC-14: a membership change waits for the next start, and both lists are shown.
    added = json.loads(admin("2003", "policy", "--add", "TS7").stdout)
    assert "take effect when the license server restarts" in added["note"]
    assert added["status"]["security_group_pending"] == ["TS7"]
    assert added["status"]["security_group_members"] == []
    info = servers["2003"]
    text = _tslic("admin", "--server", info["address"], "--credential",
                  info["admin_credential"], "status").stdout  # fmt: skip
    assert "at the next start (local list)" in text
    assert "TS7" in text
    assert "Virtual date on the server:" in text

    table = admin("2003", "status", check=True)
    assert json.loads(table.stdout)["status"]["name"] == "LS2003"
    assert daemons.stop() == [0, 0, 0]


def test_web_activation_codes_shown_and_typed_at_the_prompt(
    tmp_path: Path, daemons: Daemons
) -> None:
    import re
    import urllib.parse
    import urllib.request

    ch = daemons.start(
        tmp_path / "ch.ready", "clearinghouse", "serve", "--data", str(tmp_path / "ch")
    )
    ls = daemons.start(
        tmp_path / "ls.ready", "server", "--data", str(tmp_path / "ls"), "--name", "LSWEB",
        "--clearinghouse", ch["address"], "--clearinghouse-web", ch["url"],
    )  # fmt: skip
    base = ["admin", "--server", ls["address"], "--credential", ls["admin_credential"]]
    _tslic(
        *base, "properties", "--first-name", "Ada", "--last-name", "Admin", "--company", "C",
        "--country", "US", "--email", "ada@example.com", "--method", "web",
    )  # fmt: skip
    wizard = subprocess.Popen(
        [*TSLIC, *base, "activate"],  # the method set in properties: web
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=ENV,
    )
    daemons.procs.append(wizard)  # killed at teardown if the test fails half-way
    assert wizard.stdout is not None
    assert wizard.stdin is not None
    shown: list[str] = []
    while not any(line.startswith("Open ") for line in shown):
        line = wizard.stdout.readline()
        assert line, f"the wizard ended early: {shown}"
        shown.append(line)
    # The instructions name the emulated page's own address, and the form asks for no
    # request code, so none is shown.
    assert f"Open {ch['url']}activate," in "".join(shown)
    assert not any(line.startswith("Request code:") for line in shown)
    assert "microsoft.com" not in "".join(shown)
    product_id = next(x for x in shown if x.startswith("Product ID:")).split(":", 1)[1].strip()
    # The operator fills in the Clearinghouse's web form with the Product ID...
    form = urllib.parse.urlencode(
        {"product_id": product_id, "first_name": "Ada", "last_name": "Admin",
         "company": "C", "country": "US", "email": "ada@example.com"}
    ).encode()  # fmt: skip
    with urllib.request.urlopen(f"{ch['url']}activate", data=form, timeout=10) as page:
        html = page.read().decode()
    found = re.search(r'id="license-server-id">([^<]+)<', html)
    assert found is not None, html
    # ...and types the License Server ID it shows into the wizard's prompt.
    out, err = wizard.communicate(found.group(1) + "\n", timeout=30)
    assert wizard.returncode == 0, err
    assert "Type the License Server ID" in err
    assert "activated" in out
    status = json.loads(_tslic(*base, "--json", "status").stdout.strip())
    assert status["status"]["activation"] == "activated"
    assert status["status"]["license_server_id"] == found.group(1)
