"""Configs are frozen dataclasses; their fields describe the CLI options, OFX params and docs.

A config field is declared with :func:`option`, which records the help text, the allowed
choices and the numeric range in the field's metadata. :func:`params` turns a config class into
a list of :class:`Param` descriptions that ``faceplate.cli`` (argparse) and later ``faceplate.ofx``
(host parameters) both consume, so the three never drift apart. Every config validates itself on
construction through :class:`Config`, the one validator.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class Blur(Config):
    ...     radius: float = option(2.0, "Blur radius in pixels.", minimum=0.0)
    >>> Blur(radius=-1.0)
    Traceback (most recent call last):
    ...
    faceplate.core.errors.ConfigError: radius: -1.0 is below the minimum 0.0
"""

from __future__ import annotations

import dataclasses
import types
import typing
from dataclasses import dataclass
from typing import Any, Literal, get_args, get_origin

from faceplate.core.errors import ConfigError


def option(
    default: Any,
    help: str,
    *,
    choices: tuple[Any, ...] | None = None,
    minimum: float | None = None,
    maximum: float | None = None,
    flag: str | None = None,
) -> Any:
    """Declare one config field with its help, choices and range.

    Args:
        default: The default value (immutable: tuples, not lists).
        help: One sentence for ``--help``, the OFX hint and the docs.
        choices: Allowed values; for ``Literal`` fields they are taken from the type.
        minimum: Inclusive lower bound for numbers.
        maximum: Inclusive upper bound for numbers.
        flag: CLI flag override (default: ``--field-name``).
    """
    meta = {"help": help, "choices": choices, "minimum": minimum, "maximum": maximum, "flag": flag}
    return dataclasses.field(default=default, metadata=meta)


@dataclass(frozen=True)
class Param:
    """A config field described for a front end (CLI flag, OFX parameter, docs row).

    ``kind`` is one of ``bool``, ``int``, ``float``, ``str``, ``choice``, ``floats`` (a tuple of
    floats), ``strs`` (a tuple of strings).
    """

    name: str
    kind: str
    default: Any
    help: str
    choices: tuple[Any, ...] | None
    minimum: float | None
    maximum: float | None
    flag: str
    optional: bool


def _unwrap_optional(tp: Any) -> tuple[Any, bool]:
    if get_origin(tp) in (typing.Union, types.UnionType):
        args = [a for a in get_args(tp) if a is not type(None)]
        if len(args) == 1 and len(get_args(tp)) == 2:
            return args[0], True
    return tp, False


def _kind(tp: Any) -> tuple[str, tuple[Any, ...] | None]:
    origin = get_origin(tp)
    if origin is Literal:
        return "choice", tuple(get_args(tp))
    if origin is tuple:
        inner = get_args(tp)[0]
        return ("floats" if inner in (float, int) else "strs"), None
    for base, name in ((bool, "bool"), (int, "int"), (float, "float"), (str, "str")):
        if tp is base:
            return name, None
    raise TypeError(f"unsupported config field type {tp!r}")


def params(cls: type) -> list[Param]:
    """Describe every field of config class ``cls`` (a frozen dataclass) as a :class:`Param`."""
    hints = typing.get_type_hints(cls)
    out: list[Param] = []
    for f in dataclasses.fields(cls):
        tp, optional = _unwrap_optional(hints[f.name])
        kind, literal_choices = _kind(tp)
        meta = f.metadata
        out.append(
            Param(
                name=f.name,
                kind=kind,
                default=f.default,
                help=meta.get("help", ""),
                choices=meta.get("choices") or literal_choices,
                minimum=meta.get("minimum"),
                maximum=meta.get("maximum"),
                flag=meta.get("flag") or "--" + f.name.replace("_", "-"),
                optional=optional,
            )
        )
    return out


def _check(p: Param, value: Any) -> None:
    if value is None:
        if not p.optional:
            raise ConfigError(f"{p.name}: a value is required")
        return
    values = value if p.kind in ("floats", "strs") else (value,)
    for v in values:
        if p.choices is not None and v not in p.choices:
            allowed = ", ".join(map(str, p.choices))
            raise ConfigError(f"{p.name}: {v!r} is not one of {allowed}")
        if isinstance(v, (int, float)) and not isinstance(v, bool):
            if v != v:  # NaN
                raise ConfigError(f"{p.name}: NaN is not a valid value")
            if p.minimum is not None and v < p.minimum:
                raise ConfigError(f"{p.name}: {v} is below the minimum {p.minimum}")
            if p.maximum is not None and v > p.maximum:
                raise ConfigError(f"{p.name}: {v} is above the maximum {p.maximum}")


class Config:
    """Mixin for frozen config dataclasses: validates every field on construction."""

    def __post_init__(self) -> None:
        for p in params(type(self)):
            _check(p, getattr(self, p.name))

    def replace(self, **changes: Any) -> Any:
        """A validated copy with ``changes`` applied."""
        return dataclasses.replace(self, **changes)  # type: ignore[type-var]

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)  # type: ignore[call-overload]
