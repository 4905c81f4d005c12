"""Tests of `tslic directory`: the daemon as a separate process, and the offline commands."""

from __future__ import annotations

import argparse
import json
import signal
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from tslic.protocol.errors import ConnectionLost, ErrorCode, ServiceError
from tslic.server.directory import cli
from tslic.server.directory.topology import TopologyError

TSLIC = [sys.executable, "-m", "tslic.cli"]
SECRET = "s3cret-enterprise-admin"


def tslic(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*TSLIC, "directory", *args], capture_output=True, text=True, timeout=60, check=False
    )


def test_daemon_answers_a_site_query_from_other_processes(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    daemon = subprocess.Popen(
        [
            *TSLIC,
            "directory",
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data",
            str(tmp_path / "data"),
            "--credential",
            SECRET,
            "--ready-file",
            str(ready),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert daemon.stdout is not None
        line = daemon.stdout.readline()  # blocks until the daemon is accepting (or dies)
        assert line, daemon.communicate()[1]
        info = json.loads(line)
        assert info["role"] == "directory"
        assert info["address"].startswith("127.0.0.1:")
        assert info["pid"] == daemon.pid
        server = ["--server", info["address"]]

        published = tslic(
            "publish",
            *server,
            "--site",
            "BRANCH",
            "--computer",
            "W3KLS1",
            "--credential",
            SECRET,
            "--json",
        )
        assert published.returncode == 0, published.stderr
        assert json.loads(published.stdout)["ok"] is True

        denied = tslic(
            "publish", *server, "--site", "HQ", "--computer", "W3KLS2", "--credential", "wrong"
        )
        assert denied.returncode == 2
        assert "access denied" in denied.stderr
        assert "[PUBLISH_DENIED 5002]" in denied.stderr
        assert "Traceback" not in denied.stderr

        registered = tslic("register", *server, "W3KLS1", "127.0.0.1:4100")
        assert registered.returncode == 0, registered.stderr
        assert "W3KLS1 registered at 127.0.0.1:4100" in registered.stdout

        query = tslic("query-site", *server, "--json", "BRANCH")
        assert query.returncode == 0, query.stderr
        answer = json.loads(query.stdout)
        assert answer["distinguished_name"] == (
            "CN=TS-Enterprise-License-Server,CN=BRANCH,CN=Sites,CN=Configuration,"
            "DC=oldcorp,DC=example"
        )
        assert [(s["name"], s["address"]) for s in answer["servers"]] == [
            ("W3KLS1", "127.0.0.1:4100")
        ]

        table = tslic("query-dcs", *server, "OLDCORP")
        assert table.returncode == 0, table.stderr
        assert "W2KDC1" in table.stdout
        assert "domain controller" in table.stdout

        missing = tslic("query-site", *server, "MOON")
        assert missing.returncode == 2
        assert "[NOT_FOUND 5001]" in missing.stderr
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)
    assert daemon.returncode == 0
    # The ready file is written just after the line is printed; the daemon has exited now.
    assert json.loads(ready.read_text()) == info


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    cli.add_arguments(parser)
    return parser.parse_args(argv)


def test_check_prints_the_sample_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(parse("check", "--json")) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["forest"] == "DC=oldcorp,DC=example"
    assert summary["sites"] == ["HQ", "BRANCH"]
    assert {
        "group": "W3KLS1\\Terminal Services Computers",
        "members": ["W3KTS2", "W3KTS3", "W3KTS1"],
    } in summary["groups"]


def test_check_reports_a_bad_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text('[forest]\nroot_dn = "DC=x"\n[[domain]]\nname = "x"\n')
    with pytest.raises(TopologyError) as info:
        cli.run(parse("check", "--topology", str(bad)))
    assert "bad.toml, line 3: [domain #1] missing key" in info.value.message


def test_serve_options_work_before_or_after_the_action() -> None:
    assert parse("--listen", "127.0.0.1:0").listen == "127.0.0.1:0"
    args = parse("serve", "--data", "d", "--speed", "60")
    assert (args.action, args.data, args.speed) == ("serve", Path("d"), 60.0)
    assert not hasattr(args, "listen")  # the documented default applies in run()


def test_credential_file_is_created_private_and_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv(cli.CREDENTIAL_ENV, raising=False)
    first = cli.server_credential(None, None, tmp_path)
    path = tmp_path / cli.CREDENTIAL_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert len(first) >= 24
    assert cli.server_credential(None, None, tmp_path) == first
    monkeypatch.setenv(cli.CREDENTIAL_ENV, "from-env")
    assert cli.server_credential(None, None, tmp_path) == "from-env"
    assert cli.server_credential("flag", None, tmp_path) == "flag"
    empty = tmp_path / "empty"
    empty.write_text("\n")
    with pytest.raises(ServiceError) as info:
        cli.server_credential(None, empty, tmp_path)
    assert info.value.code is ErrorCode.INVALID_FIELD


def test_client_action_without_credential_says_how(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(cli.CREDENTIAL_ENV, raising=False)
    with pytest.raises(ServiceError) as info:
        cli.run(parse("publish", "--site", "HQ", "--computer", "W3KLS1"))
    assert "--credential" in info.value.message


def test_busy_port_is_one_clear_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        status = cli.run(
            parse(
                "serve",
                "--listen",
                f"127.0.0.1:{port}",
                "--data",
                str(tmp_path),
                "--credential",
                SECRET,
            )
        )
    assert status == 2
    err = capsys.readouterr().err
    assert f"cannot listen on 127.0.0.1:{port}" in err
    assert "Traceback" not in err


def test_unreachable_server_is_connection_lost() -> None:
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]  # bound, not listening: connections are refused
        with pytest.raises(ConnectionLost) as info:
            cli.run(parse("lookup", "--server", f"127.0.0.1:{port}", "W2KDC1"))
    assert f"cannot connect to 127.0.0.1:{port}" in info.value.message


def test_check_table_piped_keeps_whole_cells(capsys: pytest.CaptureFixture[str]) -> None:
    # capsys's stdout is not a terminal: the table must not be cut to 80 columns ("Wind…").
    assert cli.run(parse("check")) == 0
    out = capsys.readouterr().out
    assert "…" not in out
    assert "DC=oldcorp,DC=example" in out
    assert max(len(line) for line in out.splitlines()) > 80
