"""The shared `Limits` options of every daemon (runtime/args.py): parsed by each daemon's own
parser, defaults shown in --help, bad values refused in one line with exit status 2."""

from __future__ import annotations

import dataclasses

import pytest
from tslic.cli.main import build_parser, main
from tslic.client.agent.config import AGENT_LIMITS
from tslic.protocol import ErrorCode, ServiceError
from tslic.runtime.args import limits_from_args
from tslic.runtime.limits import Limits, option

DAEMONS = {
    "server": ["server", "--data", "D"],
    "clearinghouse": ["clearinghouse", "serve", "--data", "D"],
    "directory": ["directory", "serve"],
    "agent": ["agent", "--data", "D"],
}
SETTINGS = {
    "--max-connections": "77",
    "--handshake-timeout": "1.5",
    "--idle-timeout": "42",
    "--request-timeout": "9",
    "--max-frame": "4096",
    "--rate-per-second": "10",
    "--rate-burst": "20",
    "--shutdown-grace": "0",
    "--accept-rate": "0",
    "--accept-burst": "3",
    "--window-real-seconds": "60",
}


def test_every_limits_field_has_an_option() -> None:
    assert {option(f.name) for f in dataclasses.fields(Limits)} == set(SETTINGS)


@pytest.mark.parametrize("daemon", sorted(DAEMONS))
def test_each_daemon_takes_every_limit(daemon: str) -> None:
    argv = [*DAEMONS[daemon], *(x for pair in SETTINGS.items() for x in pair)]
    args = build_parser(daemon).parse_args(argv)
    limits = limits_from_args(args)
    assert limits == Limits(
        max_connections=77,
        handshake_timeout=1.5,
        idle_timeout=42.0,
        request_timeout=9.0,
        max_frame=4096,
        rate_per_second=10.0,
        rate_burst=20.0,
        shutdown_grace=0.0,
        accept_rate=0.0,
        accept_burst=3.0,
        window_real_seconds=60.0,
    )


@pytest.mark.parametrize("daemon", sorted(DAEMONS))
def test_defaults_when_not_given(daemon: str) -> None:
    args = build_parser(daemon).parse_args(DAEMONS[daemon])
    defaults = AGENT_LIMITS if daemon == "agent" else Limits()
    assert limits_from_args(args, defaults) == defaults


def test_options_before_the_serve_action_are_kept() -> None:
    args = build_parser("directory").parse_args(["directory", "--idle-timeout", "7", "serve"])
    assert limits_from_args(args).idle_timeout == 7.0


def test_help_shows_the_daemon_defaults(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser("agent").parse_args(["agent", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--idle-timeout N seconds a peer may stay silent" in text
    assert "(IDLE_TIMEOUT) (default 60)" in text  # the agent's own default
    assert "(default 15000)" not in text
    with pytest.raises(SystemExit):
        build_parser("server").parse_args(["server", "--help"])
    assert "(default 15000)" in " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--max-connections", "many"], "--max-connections 'many' is not a whole number"),
        (["--max-connections", "0"], "--max-connections must be at least 1 (got 0)"),
        (["--idle-timeout", "-1"], "--idle-timeout must be a positive number of seconds"),
        (["--max-frame", "10"], "--max-frame must be between 1024 and 16777216 bytes"),
        (["--rate-per-second", "nan"], "--rate-per-second must be a positive number"),
        (["--accept-rate", "inf"], "--accept-rate must be at least 0 (got inf)"),
    ],
)
def test_bad_values_are_one_line_errors(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(ServiceError) as refused:
        limits_from_args(build_parser("server").parse_args(["server", "--data", "D", *argv]))
    assert refused.value.code is ErrorCode.INVALID_FIELD
    assert message in refused.value.message
    # Through the command: one line, exit status 2, nothing started.
    assert main(["server", "--data", "/nonexistent/never-created", *argv]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith(f"tslic: error: {refused.value.message}")
    assert "[INVALID_FIELD 1006]" in err
