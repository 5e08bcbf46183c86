"""The ``edgekd`` command. The only module that glues train, export and measure together.

Each subcommand lives in its own module with ``add_parser(subparsers)``; this file lists them.
Errors a user can act on print one line (exit 2); ``--verbose`` shows the traceback too.
"""
from __future__ import annotations

import argparse
import contextlib
import importlib
import sys

# module path -> one subcommand each (module defines add_parser(subparsers) -> parser with func)
COMMANDS = [
    "edgekd.commands.demo",
    "edgekd.commands.distill",
    "edgekd.commands.data",
    "edgekd.commands.bci",
    "edgekd.commands.generators",
    "edgekd.commands.selfdistill",
    "edgekd.commands.export",
    "edgekd.commands.bench",
]


def build_parser() -> argparse.ArgumentParser:
    from .commands.options import Parser, add_deprecated_aliases, subcommand_parsers

    parser = Parser(prog="edgekd", description="Distill, quantize, export and measure tiny students.")
    parser.add_argument("--verbose", "-v", action="store_true",
                        help="log progress and third-party library messages, and show tracebacks")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")  # subcommands inherit Parser
    for name in COMMANDS:
        importlib.import_module(name).add_parser(sub)
    for path, p in subcommand_parsers(parser):
        if path and "--verbose" not in p._option_string_actions:  # also after (nested) subcommands
            p.add_argument("--verbose", "-v", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
    add_deprecated_aliases(parser)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 0
    from .errors import EdgeKDError
    from .log import set_log_level
    from .quiet import quiet

    set_log_level(True if args.verbose else None)
    # --verbose shows everything; otherwise the lines in quiet.NOISE are dropped, at fd level too
    # when this process owns the real stderr (the program, not a caller capturing it)
    hush = contextlib.nullcontext() if args.verbose else quiet(native=sys.stderr is sys.__stderr__)
    try:
        with hush:
            result = args.func(args)
        return int(result or 0)
    except KeyboardInterrupt:
        print("edgekd: interrupted", file=sys.stderr)
        return 130
    except (EdgeKDError, FileNotFoundError, ValueError) as err:
        if args.verbose:
            raise
        if not _is_user_error(err):
            raise
        print(f"edgekd {args.command}: error: {err}", file=sys.stderr)
        return 2


def _is_user_error(err) -> bool:
    from .errors import EdgeKDError

    if isinstance(err, EdgeKDError):
        return True
    try:  # export errors come from firmware_export, which the CLI may not have imported
        from firmware_export.errors import ExportError
    except ImportError:
        return False
    return isinstance(err, ExportError)


if __name__ == "__main__":
    sys.exit(main())
