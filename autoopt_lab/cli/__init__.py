"""The ``autoopt-lab`` command line.

Each subcommand lives in its own module in this package and exposes
``register(subparsers) -> None``, which adds an ``argparse`` parser whose ``func`` default
takes the parsed arguments and returns an exit code. Modules are discovered, so adding a
subcommand means adding a file.

Errors: a subcommand signals bad input by raising ``ValueError`` (or a subclass: an unknown
optimizer, an unavailable device, a bad scenario) and an input/output problem (missing data,
an unwritable path, a damaged store) by raising ``OSError`` or
:class:`~autoopt_lab.data.errors.DataUnavailableError`. :func:`main` prints one line,
``autoopt-lab <command>: <message>``, to stderr and exits with 2 (bad input) or 3
(input/output) without a traceback; ``-v`` shows the traceback. A closed pipe
(``autoopt-lab stream --list | head``) ends quietly. Ctrl-C prints one line saying what was
kept and how to resume (a subcommand's ``on_interrupt(args)`` default says it) and exits 130.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import os
import pkgutil
import sys


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="autoopt-lab",
        description="AutoOpt optimizers: reproduction, sweeps and streaming experiments.",
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        module.register(sub)
    return parser


#: Exit codes of :func:`main`.
EXIT_USAGE, EXIT_IO, EXIT_INTERRUPTED = 2, 3, 130


def error_exit_code(exc: BaseException) -> int | None:
    """The exit code for an expected error, or None for a bug (which keeps its traceback)."""
    from autoopt_lab.data.errors import DataUnavailableError

    if isinstance(getattr(exc, "exit_code", None), int):  # an error that says its own code
        return exc.exit_code
    if isinstance(exc, (DataUnavailableError, OSError)):
        return EXIT_IO
    if isinstance(exc, (ValueError, TypeError, KeyError, ImportError, argparse.ArgumentTypeError)):
        return EXIT_USAGE
    return None


def interrupted(args: argparse.Namespace) -> str:
    """What an interrupted command kept and how to resume it (never raises)."""
    hint = getattr(args, "on_interrupt", None)
    try:
        return hint(args) if hint is not None else "nothing more was written"
    except Exception as exc:  # noqa: BLE001 - the message must not fail
        return f"rerun the same command to resume ({exc})"


def store_kept(path: str | os.PathLike[str]) -> str:
    """``on_interrupt`` text for a command that writes runs into the results store ``path``."""
    from autoopt_lab.experiments import ResultsStore

    n = ResultsStore(path).count() if os.path.exists(path) else 0
    return (f"{n} finished run{'s' if n != 1 else ''} kept in {path}; rerun the same command "
            "to resume (finished runs are not redone)")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        if args.verbose:
            raise
        sys.stderr.write(f"autoopt-lab {args.command}: interrupted; {interrupted(args)}\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # the reader went away (``| head``): stop quietly, as other Unix tools do
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except Exception as exc:  # noqa: BLE001 - expected errors become one line
        code = error_exit_code(exc)
        if code is None or args.verbose:
            raise
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        sys.stderr.write(f"autoopt-lab {args.command}: {message}\n")
        return code


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
