"""`python -m tslic.client.agent`: the same command as `tslic agent`, without the dispatcher
(which imports every subcommand's module to build its parser)."""

from __future__ import annotations

import argparse
import sys

from tslic.protocol.errors import TslicError

from .cli import add_arguments, run


def main() -> int:
    parser = argparse.ArgumentParser(prog="tslic agent")
    add_arguments(parser)
    args = parser.parse_args()
    try:
        return run(args)
    except TslicError as exc:
        print(f"tslic: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
