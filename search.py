#!/usr/bin/env python
"""Command line for soft parameter-sharing search: wires the commands of nas.cli together.

    python search.py model SWRN-28-10-2                 # what a plan builds: params, MACs, groups
    python search.py train --dataset cifar10 --data DIR --arch swrn --depth 16 --width 4 --templates 2
    python search.py evaluate runs/x/model_best.pt      # test accuracy of a checkpoint
    python search.py study NAME --preset smoke          # the search (see --help)

Errors a user can cause print one line and exit 2; nothing computed so far is lost.
"""

from __future__ import annotations

import logging
import sys
from typing import Sequence

from nas.cli.commands import COMMANDS, EXIT_INTERRUPTED
from nas.cli.flags import EXIT_USAGE, OneLineParser

EXIT_IO = 74  # sysexits' EX_IOERR
__all__ = ["EXIT_INTERRUPTED", "EXIT_IO", "EXIT_USAGE", "build_parser", "main"]


def _os_error_line(exc: OSError) -> str:
    """What failed on the machine, and what to free or fix; finished work is kept on disk."""
    import errno

    where = f" ({exc.filename})" if exc.filename else ""
    what = exc.strerror or str(exc) or type(exc).__name__
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        todo = "free space there and re-run the same command"
    elif exc.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
        todo = "make it writable, or choose another folder, and re-run"
    else:
        todo = "fix it and re-run the same command"
    return f"{what}{where}: {todo}; what was finished is kept"


def build_parser() -> OneLineParser:
    parser = OneLineParser(
        prog="search.py", description="Search over soft parameter-sharing patterns."
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, parser_class=OneLineParser)
    for command in COMMANDS:
        p = sub.add_parser(command.name, help=command.help)
        command.arguments(p)
        p.set_defaults(func=command.run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(levelname)s %(name)s: %(message)s",
    )
    try:
        return args.func(args)
    except (ValueError, FileNotFoundError, NotADirectoryError, FileExistsError) as exc:
        print(
            f"search.py {args.command}: error: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            file=sys.stderr,
        )
        return EXIT_USAGE
    except OSError as exc:  # disk full, permission denied, ...: the machine's, not the input's
        print(f"search.py {args.command}: error: {_os_error_line(exc)}", file=sys.stderr)
        return EXIT_IO


if __name__ == "__main__":
    sys.exit(main())
