"""A small named registry with lazy ``module:attr`` entries, entry-point plugins and helpful errors."""
from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from typing import Callable, Generic, Iterable, TypeVar

from .errors import SpecError

T = TypeVar("T")


class Registry(Generic[T]):
    """Map names to objects; ``get`` also accepts ``module:attr`` and installed entry points."""

    def __init__(self, kind: str, entry_point_group: str | None = None):
        self.kind = kind
        self.entry_point_group = entry_point_group
        self._items: dict[str, T] = {}

    def register(self, name: str, obj: T | None = None, overwrite: bool = False):
        """Register ``obj`` under ``name``; usable as a decorator when ``obj`` is omitted."""

        def _do(o: T) -> T:
            if name in self._items and not overwrite and self._items[name] is not o:
                raise SpecError(f"{self.kind} '{name}' is already registered")
            self._items[name] = o
            return o

        return _do if obj is None else _do(obj)

    def names(self) -> list[str]:
        """Registered names, sorted, including installed plugins."""
        return sorted(set(self._items) | set(self._plugin_names()))

    def _plugin_names(self) -> Iterable[str]:
        if not self.entry_point_group:
            return []
        return [ep.name for ep in entry_points(group=self.entry_point_group)]

    def get(self, name: str) -> T:
        """Return the object named ``name`` or raise a SpecError listing the valid names."""
        if name in self._items:
            return self._items[name]
        if ":" in name:
            return load_object(name, self.kind)
        if self.entry_point_group:
            for ep in entry_points(group=self.entry_point_group):
                if ep.name == name:
                    return ep.load()
        close = difflib.get_close_matches(name, self.names(), n=3)
        hint = f" Did you mean {', '.join(close)}?" if close else ""
        raise SpecError(
            f"unknown {self.kind} '{name}'. Valid names: {', '.join(self.names())}"
            f" (or 'module:function').{hint}"
        )

    def __contains__(self, name: str) -> bool:
        return name in self._items

    def items(self):
        return sorted(self._items.items())


def load_object(ref: str, kind: str = "object") -> Callable:
    """Import ``module:attr`` (attr may be dotted)."""
    mod_name, _, attr = ref.partition(":")
    try:
        obj = importlib.import_module(mod_name)
    except ImportError as e:
        raise SpecError(f"{kind} '{ref}': cannot import module '{mod_name}': {e}") from e
    for part in attr.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError as e:
            raise SpecError(f"{kind} '{ref}': module '{mod_name}' has no attribute '{attr}'") from e
    return obj
