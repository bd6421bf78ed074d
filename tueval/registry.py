"""A small named registry with lazy ``module:attr`` entries, entry-point plugins, construction from settings
and helpful errors."""
from __future__ import annotations

import difflib
import importlib
from importlib.metadata import entry_points
from typing import Any, Callable, Generic, Iterable, TypeVar

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

    def entry_point(self, name: str):
        """The installed entry point that provides ``name`` (None for registered names and ``module:attr``)."""
        if name in self._items or ":" in name or not self.entry_point_group:
            return None
        return next((ep for ep in entry_points(group=self.entry_point_group) if ep.name == name), None)

    def build(self, name: str, params: dict[str, Any] | None, base: type,
              wrap: Callable[[Callable, str, dict[str, Any]], Any] | None = None):
        """An instance of ``base`` from the entry ``name`` and its settings ``params``.

        A ``base`` subclass is built with ``params`` (unknown settings are refused, naming the valid ones); a
        registered ``base`` instance is returned as is (settings that differ from its own are refused); any other
        callable is handed to ``wrap(obj, name, params)`` when given, else called as a factory ``obj(**params)``."""
        obj = self.get(name)
        params = dict(params or {})
        if isinstance(obj, type) and issubclass(obj, base):
            valid = obj._param_names()
            bad = sorted(set(params) - set(valid))
            if bad:
                raise SpecError(f"{self.kind} '{name}': unknown setting(s) {', '.join(bad)}. Valid: "
                                f"{', '.join(valid) or '(none)'}")
            return obj(**params)
        if isinstance(obj, base):
            own = obj.get_params()
            changed = sorted(k for k, v in params.items() if k not in own or own[k] != v)
            if changed:
                raise SpecError(f"{self.kind} '{name}' is an instance; it takes no settings (got "
                                f"{', '.join(changed)})")
            return obj
        if callable(obj):
            if wrap is not None:
                return wrap(obj, name, params)
            built = obj(**params)
            if not isinstance(built, base):
                raise SpecError(f"{self.kind} '{name}' did not build an instance of {base.__name__} (got "
                                f"{type(built).__name__})")
            return built
        raise SpecError(f"{self.kind} '{name}' is neither a {base.__name__} subclass or instance nor a callable "
                        f"(got {type(obj).__name__})")

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


def is_plugin(obj: Any) -> bool:
    """Whether a built scorer or objective runs code from outside tueval (its ``code_target``, else its class)."""
    target = getattr(obj, "code_target", None) or type(obj)
    module = getattr(target, "__module__", None) or ""
    return not (module == "tueval" or module.startswith("tueval."))


def code_identity(registry: Registry, name: str, obj: Any) -> dict[str, str] | None:
    """What identifies a plugin's code for the run hash: the sha256 of its source and, for an entry point, the
    installed distribution and version; None for tueval's own scorers and objectives (their hashes stay put)."""
    if not is_plugin(obj):
        return None
    from .hashing import source_digest

    out = {"source_sha256": source_digest(getattr(obj, "code_target", None) or type(obj))}
    ep = registry.entry_point(name)
    dist = getattr(ep, "dist", None) if ep is not None else None
    if dist is not None:
        out["distribution"] = f"{dist.name}=={dist.version}"
    return out
