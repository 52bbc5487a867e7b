"""Typed registries: plugins are classes picked by name, never by ``if name == ...`` chains.

Example:
    >>> from dataclasses import dataclass
    >>> @dataclass(frozen=True)
    ... class HalfConfig:
    ...     factor: float = 0.5
    >>> SCALERS: Registry[object] = Registry("scaler")
    >>> @SCALERS.register("half", config=HalfConfig)
    ... class Half:
    ...     def __init__(self, cfg: HalfConfig) -> None:
    ...         self.cfg = cfg
    >>> SCALERS.create("half").cfg.factor
    0.5
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from faceplate.core.errors import ConfigError
from faceplate.core.profile import configured

T = TypeVar("T")


@dataclass(frozen=True)
class Entry(Generic[T]):
    """One registered plugin: its name, class, config dataclass and one-line summary."""

    name: str
    cls: Callable[..., T]
    config: type
    summary: str


class Registry(Generic[T]):
    """A name → plugin-class table, filled at import time and read-only afterwards.

    Args:
        kind: What the registry holds ("detector", "aligner", ...), used in messages.
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, Entry[T]] = {}

    def register(self, name: str, *, config: type) -> Callable[[Any], Any]:
        """Class decorator: register ``cls`` under ``name`` with its frozen config class."""

        def decorate(cls: Any) -> Any:
            if name in self._entries:
                raise ValueError(f"{self.kind} {name!r} registered twice")
            doc = (cls.__doc__ or "").strip().splitlines()
            self._entries[name] = Entry(name, cls, config, doc[0] if doc else "")
            cls.registry_name = name
            return cls

        return decorate

    def entry(self, name: str) -> Entry[T]:
        """The entry for ``name``; ``ConfigError`` listing the valid names otherwise."""
        try:
            return self._entries[name]
        except KeyError:
            raise ConfigError(
                f"unknown {self.kind} {name!r}; choose one of: {', '.join(self.names())}"
            ) from None

    def config_class(self, name: str) -> type:
        return self.entry(name).config

    def default_config(self, name: str) -> Any:
        """Plugin ``name``'s default config (with the active model profile's defaults)."""
        return configured(self.entry(name).config)

    def create(self, name: str, cfg: Any = None) -> T:
        """Instantiate plugin ``name`` with ``cfg`` (its default config when None, with the
        active model profile's defaults: :func:`faceplate.core.profile.configured`)."""
        entry = self.entry(name)
        if cfg is None:
            cfg = configured(entry.config)
        elif not isinstance(cfg, entry.config):
            raise ConfigError(
                f"{self.kind} {name!r} takes a {entry.config.__name__}, got {type(cfg).__name__}"
            )
        return entry.cls(cfg)

    def names(self) -> list[str]:
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[Entry[T]]:
        return iter(self._entries[n] for n in self.names())

    def __len__(self) -> int:
        return len(self._entries)
