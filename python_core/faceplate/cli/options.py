"""Generate argparse options from frozen config dataclasses (see ``faceplate.core.config``).

``add_config(parser, ConfigCls)`` adds one flag per field; ``config_from_args(ConfigCls, ns)``
builds the validated config back from the parsed namespace. Flags, help, choices and defaults
all come from the dataclass, so ``--help``, the OFX params and the docs agree.
"""

from __future__ import annotations

import argparse
from typing import Any, TypeVar

from faceplate.core.config import Param, params
from faceplate.core.profile import configured

C = TypeVar("C")


def _dest(prefix: str, p: Param) -> str:
    return f"{prefix}{p.name}"


def add_config(parser: argparse.ArgumentParser | Any, cls: type, *, prefix: str = "",
               flag_prefix: str = "", title: str | None = None,
               exclude: tuple[str, ...] = ()) -> None:
    """Add every field of config class ``cls`` as an option of ``parser``.

    Args:
        parser: An argparse parser (or argument group).
        cls: The frozen config dataclass.
        prefix: Prefix for the namespace attribute (keeps several configs apart).
        flag_prefix: Prefix inserted after ``--`` in flags (e.g. "hog-" → ``--hog-upsample``).
        title: When given, the options go into an argument group with this title.
        exclude: Field names not to expose.
    """
    target = parser.add_argument_group(title) if title else parser
    for p in params(cls):
        if p.name in exclude:
            continue
        flag = p.flag if not flag_prefix else "--" + flag_prefix + p.flag[2:]
        dest = _dest(prefix, p)
        default_txt = "" if p.default is None else f" (default: {_show(p.default)})"
        kw: dict[str, Any] = {"dest": dest, "default": argparse.SUPPRESS,
                              "help": (p.help + default_txt).replace("%", "%%")}
        if p.kind == "bool":
            kw["action"] = argparse.BooleanOptionalAction
        elif p.kind in ("floats", "strs"):
            kw["nargs"] = "*"
            kw["type"] = float if p.kind == "floats" else str
            kw["metavar"] = "X" if p.kind == "floats" else "NAME"
            if p.choices:
                kw["choices"] = list(p.choices)
        elif p.kind == "choice":
            kw["choices"] = list(p.choices or ())
            kw["type"] = type(p.choices[0]) if p.choices else str
        else:
            kw["type"] = {"int": int, "float": float, "str": str}[p.kind]
            kw["metavar"] = p.name.upper()
            if p.choices:
                kw["choices"] = list(p.choices)
        target.add_argument(flag, **kw)


def _show(v: Any) -> str:
    if isinstance(v, tuple):
        return " ".join(map(str, v)) or "none"
    return str(v)


def config_from_args(cls: type[C], ns: argparse.Namespace, *, prefix: str = "",
                     **overrides: Any) -> C:
    """Build a validated ``cls`` from the options present in ``ns`` (absent → defaults, those
    of the active model profile first: :func:`faceplate.core.profile.configured`)."""
    values: dict[str, Any] = {}
    for p in params(cls):
        dest = _dest(prefix, p)
        if hasattr(ns, dest):
            v = getattr(ns, dest)
            values[p.name] = tuple(v) if p.kind in ("floats", "strs") else v
    values.update(overrides)
    return configured(cls, **values)
