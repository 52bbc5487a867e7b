"""``faceplate`` entry point: builds the sub-command parsers and maps errors to exit codes.

Each sub-command module exposes ``register(subparsers)``, which adds its parser and sets
``func`` (a callable taking the parsed namespace and returning an exit code).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from typing import Any

from faceplate import __version__
from faceplate.core.errors import ConfigError, FaceplateError
from faceplate.core.profile import PROFILE_ENV, PROFILES, active_profile, use_profile

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


class _ProfileAction(argparse.Action):
    """``--profile NAME``: makes NAME the process's model profile as soon as it is read (so a
    later ``--version`` shows it, and processes the command starts inherit it)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        use_profile(str(values))
        setattr(namespace, self.dest, values)


class _VersionAction(argparse.Action):
    """``--version``: the version and the active model profile."""

    def __init__(self, option_strings: list[str], dest: str = argparse.SUPPRESS,
                 default: str = argparse.SUPPRESS, help: str | None = None) -> None:
        super().__init__(option_strings, dest=dest, default=default, nargs=0, help=help)

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: Any, option_string: str | None = None) -> None:
        try:
            prof = active_profile()
        except ConfigError as err:
            parser.error(str(err))
        print(f"faceplate {__version__}\nmodel profile: {prof.name} — {prof.summary}")
        parser.exit()


def _add_profile(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--profile", action=_ProfileAction, choices=list(PROFILES),
                        default=argparse.SUPPRESS,
                        help=f"model profile: which face models may run ({PROFILE_ENV} sets it "
                             f"too; default: default). commercial = only permissively licensed "
                             f"models trained on permissive data (README: 'Models and their "
                             f"licences')")


def build_parser() -> argparse.ArgumentParser:
    import importlib

    parser = argparse.ArgumentParser(
        prog="faceplate",
        description="Face replacement for film and video post-production.",
    )
    parser.add_argument("--version", action=_VersionAction,
                        help="show the version and the model profile, then exit")
    _add_profile(parser)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for mod_name in COMMANDS:
        importlib.import_module(mod_name).register(sub)
    for cmd in sub.choices.values():
        _add_profile(cmd)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the CLI; returns the process exit code (0 ok, 1 nothing found, 2 error, 130 ^C)."""
    before = os.environ.get(PROFILE_ENV)
    try:
        return _run(argv)
    finally:  # --profile holds for this command (and what it starts), not for the caller
        if before is None:
            os.environ.pop(PROFILE_ENV, None)
        else:
            os.environ[PROFILE_ENV] = before


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        active_profile()  # a bad FACEPLATE_PROFILE is an error before any work
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
