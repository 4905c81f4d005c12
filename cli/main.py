"""The `tslic` command: one entry point, one subcommand per role or tool.

Contract: this module only dispatches. Each subcommand lives in the package that owns it and
exposes `add_arguments(parser)` and `run(args) -> int`; it is imported only when chosen, so
`tslic connect` does not load the license server. Errors reach the user as one line with
their wire code (`tslic: error: ... [CODE n]`) and exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import importlib
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
    "clock": ("tslic.cli.clock", "show or move a deployment's virtual clock"),
    "lab": ("tslic.cli.lab", "run a whole deployment and play the documented scenarios"),
    "load": ("tslic.client.load.cli", "load-test a license server"),
    "conformance": ("tslic.client.conformance.cli", "black-box conformance suite"),
}


def build_parser(chosen: str | None) -> argparse.ArgumentParser:
    """The parser; only the chosen subcommand's module is imported and asked for its
    arguments, so one broken or slow module cannot affect the others."""
    parser = argparse.ArgumentParser(
        prog="tslic",
        description="Emulated Windows 2000 / Windows Server 2003 Terminal Server Licensing.",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for name, (module, help_text) in SUBCOMMANDS.items():
        sub_parser = sub.add_parser(name, help=help_text, description=help_text)
        sub_parser.set_defaults(_module=module)
        if name == chosen:
            importlib.import_module(module).add_arguments(sub_parser)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    chosen = next((a for a in args_list if not a.startswith("-")), None)
    parser = build_parser(chosen if chosen in SUBCOMMANDS else None)
    args = parser.parse_args(args_list)
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
