"""``faceplate`` entry point: builds the sub-command parsers and maps errors to exit codes.

Each sub-command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` (a callable taking the parsed namespace and returning an exit code).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from faceplate import __version__
from faceplate.core.errors import FaceplateError

#: Sub-command modules, in ``--help`` order.
COMMANDS = (
    "faceplate.cli.extract",
    "faceplate.cli.sort",
    "faceplate.cli.faceset",
    "faceplate.cli.train",
    "faceplate.cli.convert",
    "faceplate.cli.preview",
    "faceplate.cli.evaluate",
    "faceplate.cli.verify",
    "faceplate.cli.media",
    "faceplate.cli.demo",
    "faceplate.cli.studio",
    "faceplate.cli.mask",
)


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="faceplate",
        description="Face replacement for film and video post-production.",
    )
    parser.add_argument("--version", action="version", version=f"faceplate {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod_name in COMMANDS:
        importlib.import_module(mod_name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 nothing found, 2 error, 130 ^C)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        code: int = args.func(args)
        return code
    except FaceplateError as err:
        print(f"faceplate {args.command}: error: {err}", file=sys.stderr)
        return err.exit_code
    except KeyboardInterrupt:
        print(f"faceplate {args.command}: interrupted; work already written is kept",
              file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
