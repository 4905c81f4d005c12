"""The hostile operator at the licensing utility (`tslic admin`, `tslic connect`,
`tslic clearinghouse`): empty, huge, non-ASCII, control characters, markup and wrong types in
every field are refused with one line naming the option and the rule, exit status 2, and
nothing changes on the license server. Real processes: one Clearinghouse and one activated
license server for the whole module, driven through the CLI as a person would.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

TSLIC = [sys.executable, "-m", "tslic.cli.main"]
HANG_GUARD = 90  # seconds per command; each takes about one


def tslic(*args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TSLIC, *args], input=stdin, capture_output=True, text=True, timeout=HANG_GUARD
    )


def refused(done: subprocess.CompletedProcess[str], *words: str) -> str:
    """Assert a one-line refusal (status 2, no traceback) containing every word."""
    err = done.stderr.strip()
    assert done.returncode == 2, (done.returncode, done.stdout, err)
    assert "Traceback" not in err, err
    assert len(err.splitlines()) == 1, err
    for word in words:
        assert word in err, (word, err)
    assert "\x1b" not in err, err  # a control character typed is shown escaped, not echoed
    return err


class Deployment:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []
        self.ch = self._start("ch", "clearinghouse", "serve", "--data", str(tmp / "ch"))
        self.root = tmp / "root.pem"
        assert tslic("clearinghouse", "export-root", "--data", str(tmp / "ch"), "--out",
                     str(self.root)).returncode == 0  # fmt: skip
        self.ls = self._start(
            "ls", "server", "--data", str(tmp / "ls"), "--name", "LS1",
            "--clearinghouse", self.ch["address"], "--trust-root", str(self.root),
        )  # fmt: skip
        done = self.admin("properties", "--first-name", "Ada", "--last-name", "Admin",
                          "--company", "Contoso", "--country", "GB")  # fmt: skip
        assert done.returncode == 0, done.stderr
        done = self.admin("activate", "--method", "automatic")
        assert done.returncode == 0, done.stderr

    def _start(self, tag: str, *args: str) -> dict[str, Any]:
        ready = self.tmp / f"{tag}.ready"
        proc = subprocess.Popen(
            [*TSLIC, *args, "--ready-file", str(ready)],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self.procs.append(proc)
        deadline = time.monotonic() + HANG_GUARD
        while not ready.exists():  # waiting for another process, not for time to pass
            assert proc.poll() is None, f"{tag} exited with {proc.returncode}"
            assert time.monotonic() < deadline, f"{tag} did not become ready"
            time.sleep(0.02)
        info: dict[str, Any] = json.loads(ready.read_text())
        return info

    def admin(self, *args: str) -> subprocess.CompletedProcess[str]:
        return tslic("admin", "--server", self.ls["address"], "--credential",
                     self.ls["admin_credential"], *args)  # fmt: skip

    def status(self) -> dict[str, Any]:
        done = self.admin("--json", "status")
        assert done.returncode == 0, done.stderr
        status: dict[str, Any] = json.loads(done.stdout)["status"]
        return status

    def stop(self) -> None:
        for proc in self.procs:
            proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(timeout=HANG_GUARD)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


@pytest.fixture(scope="module")
def deployment(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    running = Deployment(tmp_path_factory.mktemp("utility"))
    try:
        yield running
    finally:
        running.stop()


HOSTILE_COMPUTERS = {
    "empty": ("", "cannot be empty"),
    "huge": ("X" * 10_000, "at most 15 characters"),
    "markup": ("<script>", "cannot contain '<'"),
    "space": ("MY PC", "cannot contain spaces"),
    "escape": ("PC\x1b[2J", "control characters"),
    "only digits": ("12345", "only digits"),
    "leading period": (".PC", "cannot start with a period"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_COMPUTERS))
def test_policy_add_refuses_what_no_computer_is_called(deployment: Deployment, case: str) -> None:
    value, rule = HOSTILE_COMPUTERS[case]
    err = refused(deployment.admin("policy", "--add", value), "--add", rule)
    assert err.count("--add") == 1  # the field is named once


def test_policy_add_takes_a_real_computer_name(deployment: Deployment) -> None:
    done = deployment.admin("policy", "--add", "W3KTS1", "--add", "Łódź-TS")
    assert done.returncode == 0, done.stderr
    # Only these two: none of the refused names above reached the server (the local list is
    # read at the next start, so it shows as pending).
    assert sorted(deployment.status()["security_group_pending"]) == ["W3KTS1", "ŁÓDŹ-TS"]


@pytest.mark.parametrize(
    ("option", "value", "rule"),
    [
        ("--first-name", "A" * 10_000, "at most 64 characters"),
        ("--company", "Contoso\x07", "control characters"),
        ("--email", "a" * 300 + "@example.com", "at most 254 characters"),
        ("--country", "G\u202eB", "control characters"),  # a bidirectional override
    ],
)
def test_properties_refuse_huge_and_control_characters(
    deployment: Deployment, option: str, value: str, rule: str
) -> None:
    refused(deployment.admin("properties", option, value), option, rule)


def test_properties_keep_markup_as_text(deployment: Deployment) -> None:
    done = deployment.admin("properties", "--company", "<b>Contoso</b> & [bold]Co[/bold]")
    assert done.returncode == 0, done.stderr
    contact = deployment.status()["contact"]
    # The refused values above changed nothing; this one is stored as typed.
    assert contact == {"first_name": "Ada", "last_name": "Admin", "country": "GB",
                       "company": "<b>Contoso</b> & [bold]Co[/bold]", "email": ""}  # fmt: skip
    shown = deployment.admin("status")
    assert "<b>Contoso</b> & [bold]Co[/bold]" in shown.stdout  # not taken as rich markup


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--program", "transition", "--token", "not-a-token"), ("license token",)),
        (("--program", "retail", "--code", "Z" * 10_000), ("--code", "at most 64")),
        (("--program", "retail", "--code", ""), ("license code",)),
        (("--program", "keypack-code", "--keypack-code", "\x1b]0;pwned\x07"), ("--keypack-code",)),
    ],
)
def test_install_refuses_bad_codes_by_their_name(
    deployment: Deployment, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    err = refused(deployment.admin("install", "--product", "w2003-device-cal", *args), *words)
    assert "a license code" not in err or "license code" in words


def _retail_totals(deployment: Deployment) -> list[int]:
    packs = json.loads(deployment.admin("--json", "keypacks").stdout)["keypacks"]
    return sorted(k["total"] for k in packs if k["program"] == "retail")


def _buy_retail(deployment: Deployment, count: int) -> str:
    bought = tslic("clearinghouse", "add-retail", "--data", str(deployment.tmp / "ch"),
                   "--product", "w2003-device-cal", "--count", str(count), "--json")  # fmt: skip
    assert bought.returncode == 0, bought.stderr
    return str(json.loads(bought.stdout)["reference"])


def test_the_same_retail_code_twice_says_already_installed(deployment: Deployment) -> None:
    # Other tests of this module may have installed packs on this worker's deployment
    # (pytest-xdist spreads a module's tests over workers): compare with what was there.
    before = _retail_totals(deployment)
    code = _buy_retail(deployment, 5)
    install = ("install", "--program", "retail", "--product", "w2003-device-cal", "--code", code)
    first = deployment.admin(*install)
    assert first.returncode == 0, first.stderr
    assert "was installed" in first.stdout
    again = deployment.admin(*install)
    assert again.returncode == 3, (again.stdout, again.stderr)
    assert "already installed, nothing changed" in again.stdout
    as_json = deployment.admin("--json", *install)
    assert as_json.returncode == 3
    assert json.loads(as_json.stdout)["already_installed"] is True
    # One pack more, not two; and none from the refused installs above.
    assert _retail_totals(deployment) == sorted([*before, 5])


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("--device", "X" * 16), ("--device", "at most 15 characters")),
        (("--device", "PC", "--count", "100000"), ("--count", "between 1 and 10000")),
        (("--device", "WORKSTATION", "--count", "1000"), ("--device", "WORKSTATION-1000")),
        (("--device", "PC", "--user", "a|b"), ("--user", "cannot contain |")),
        (("--device", "PC", "--user", "u" * 21), ("--user", "at most 20 characters")),
        (("--device", "PC", "--user", "..."), ("--user", "only periods and spaces")),
        (("--device", "PC\x1b[31m"), ("--device", "control characters")),
    ],
)
def test_connect_refuses_bad_names_before_connecting(
    tmp_path: Path, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    done = tslic("connect", "--agent", "127.0.0.1:1", "--store", str(tmp_path / "s"), *args)
    refused(done, *words)
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (("add-retail", "--product", "w2003-device-cal", "--count", "5", "--code", "<x>"),
         ("license code",)),
        (("add-retail", "--product", "w2003-device-cal", "--count", "x"), ("--count",)),
    ],
)  # fmt: skip
def test_clearinghouse_catalogue_refuses_bad_entries(
    deployment: Deployment, args: tuple[str, ...], words: tuple[str, ...]
) -> None:
    data = str(deployment.tmp / "ch")
    before = tslic("clearinghouse", "--data", data, "--json", "list").stdout
    done = tslic("clearinghouse", "--data", data, *args)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    for word in words:
        assert word in done.stderr
    assert tslic("clearinghouse", "--data", data, "--json", "list").stdout == before


def test_options_before_the_action(deployment: Deployment) -> None:
    done = tslic("clearinghouse", "--data", str(deployment.tmp / "ch"), "--json", "list")
    assert done.returncode == 0, done.stderr
    assert "entitlements" in json.loads(done.stdout)


def test_piped_tables_are_not_cut(deployment: Deployment) -> None:
    """Output to a pipe uses the full width: no cell is cut short with an ellipsis."""
    # A row to print, whichever tests ran before on this worker's deployment.
    installed = deployment.admin(
        "install", "--program", "retail", "--product", "w2003-device-cal",
        "--code", _buy_retail(deployment, 3),
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr
    done = deployment.admin("keypacks")
    assert done.returncode == 0, done.stderr
    assert "…" not in done.stdout
    assert "Windows Server 2003" in done.stdout
    env_narrow = {**os.environ, "COLUMNS": "40"}
    narrow = subprocess.run(
        [*TSLIC, "admin", "--server", deployment.ls["address"], "--credential",
         deployment.ls["admin_credential"], "keypacks"],
        capture_output=True, text=True, timeout=HANG_GUARD, env=env_narrow,
    )  # fmt: skip
    assert narrow.returncode == 0, narrow.stderr
    assert "…" not in narrow.stdout  # a narrow terminal folds cells; it never cuts them
