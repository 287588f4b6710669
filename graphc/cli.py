"""The ``graphc`` command."""

from __future__ import annotations

import argparse
import sys


def build_parser():
    from . import __version__
    parser = argparse.ArgumentParser(
        prog="graphc", description="Compile symbolic expressions to fast gradient code.")
    parser.add_argument("--version", action="version", version=f"graphc {__version__}")
    parser.add_subparsers(dest="command", metavar="COMMAND")
    return parser


def main(argv=None):
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
