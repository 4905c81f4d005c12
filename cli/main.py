"""The `tslic` command: one entry point, one subcommand per role or tool.

Contract: this module only dispatches. Each subcommand lives in the package that owns it and
exposes `add_arguments(parser)` and `run(args) -> int`; it is imported only when chosen, so
`tslic connect` does not load the license server. Errors reach the user as one line with
their wire code (`tslic: error: ... [CODE n]`) and exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import sys
from collections.abc import Sequence

from tslic.protocol.errors import TslicError

SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "clearinghouse": ("tslic.server.clearinghouse.cli", "run the emulated Microsoft Clearinghouse"),
    "directory": ("tslic.server.directory.cli", "run the emulated Active Directory"),
    "server": ("tslic.server.license_server.cli", "run a Terminal Server license server"),
    "admin": ("tslic.client.admin.cli", "the Terminal Server Licensing utility"),
    "agent": ("tslic.client.agent.cli", "run an emulated terminal server"),
    "connect": ("tslic.client.rdp.cli", "connect emulated RDP clients to a terminal server"),
    "lab": ("tslic.cli.lab", "run a whole deployment and play the documented scenarios"),
    "load": ("tslic.client.load.cli", "load-test a license server"),
    "conformance": ("tslic.client.conformance.cli", "black-box conformance suite"),
}


def available() -> dict[str, tuple[str, str]]:
    """Subcommands whose modules exist in this installation."""
    found = {}
    for name, (module, help_text) in SUBCOMMANDS.items():
        try:
            spec = importlib.util.find_spec(module)
        except ModuleNotFoundError:
            spec = None
        if spec is not None:
            found[name] = (module, help_text)
    return found


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tslic",
        description="Emulated Windows 2000 / Windows Server 2003 Terminal Server Licensing.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in available().items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module)
        importlib.import_module(module).add_arguments(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    module = importlib.import_module(args._module)
    try:
        status: int = module.run(args)
    except TslicError as exc:
        print(f"tslic: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    return status


if __name__ == "__main__":
    sys.exit(main())
