"""Plugin registries loaded from entry points.

Built-in exporters, runtimes and model sources register through the same entry-point
groups as third-party packages, so the core never names a backend. Plugins may also be
registered programmatically (tests do this); such plugins are remembered by module so an
isolated worker process can import them again.
"""

from __future__ import annotations

import importlib
import importlib.util
from collections.abc import Iterator
from dataclasses import dataclass
from importlib.metadata import EntryPoint, entry_points
from typing import ClassVar, Generic, Protocol, TypeVar

from deploybench.errors import DeployBenchError, MissingDependencyError, UnknownNameError


class Plugin(Protocol):
    """What every registered class declares: the name it registers under."""

    name: ClassVar[str]


T = TypeVar("T", bound=Plugin)


@dataclass(frozen=True)
class Availability:
    """Whether a plugin can run here, and if not, why and what installs it."""

    ok: bool
    reason: str = ""


def check_requirements(requires: tuple[str, ...], extra: str | None) -> Availability:
    """Check that every import name in ``requires`` can be found, without importing it."""
    for module in requires:
        try:
            spec = importlib.util.find_spec(module)
        except (ImportError, ValueError):
            spec = None
        # A folder without code (type stubs: tensorrt-stubs installs tensorrt/__init__.pyi)
        # imports as an empty namespace package; it is not the library.
        found = spec is not None and spec.origin not in (None, "namespace")
        if not found:
            hint = f"pip install 'deploybench[{extra}]'" if extra else f"pip install {module}"
            return Availability(False, f"'{module}' is not installed ({hint})")
    return Availability(True)


class Registry(Generic[T]):
    """Name -> plugin class, filled lazily from one entry-point group."""

    def __init__(self, group: str, kind: str) -> None:
        self.group, self.kind = group, kind
        self._classes: dict[str, type[T]] = {}
        self._entry_points: dict[str, EntryPoint] = {}
        self._loaded = False
        self.dynamic_modules: list[str] = []

    # -- discovery -------------------------------------------------------------------
    def _discover(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        for ep in entry_points(group=self.group):
            self._entry_points.setdefault(ep.name, ep)

    def register(self, cls: type[T], name: str | None = None) -> type[T]:
        """Register a plugin class in this process (usable as a decorator)."""
        self._discover()
        key = name or cls.name
        self._classes[key] = cls
        if cls.__module__ not in self.dynamic_modules:
            self.dynamic_modules.append(cls.__module__)
        return cls

    def unregister(self, name: str) -> None:
        self._classes.pop(name, None)

    def names(self) -> list[str]:
        self._discover()
        return sorted(set(self._entry_points) | set(self._classes))

    def _aliases(self) -> dict[str, str]:
        table: dict[str, str] = {}
        for name in self.names():
            try:
                cls = self.get(name)
            except DeployBenchError:
                continue
            for alias in getattr(cls, "aliases", ()):
                table[alias] = name
        return table

    def canonical(self, name: str) -> str:
        """Resolve a short name (``ov``, ``ts``, ``trt``) to the registered one."""
        self._discover()
        if name in self._classes or name in self._entry_points:
            return name
        aliases = self._aliases()
        if name in aliases:
            return aliases[name]
        raise UnknownNameError(self.kind, name, [*self.names(), *aliases])

    def get(self, name: str) -> type[T]:
        """The plugin class for ``name`` (aliases accepted). Importing it must be cheap."""
        self._discover()
        if name not in self._classes and name not in self._entry_points:
            name = self.canonical(name)
        if name not in self._classes:
            try:
                self._classes[name] = self._entry_points[name].load()
            except ImportError as exc:  # a broken third-party plugin must not break the rest
                raise DeployBenchError(f"{self.kind} plugin {name!r} failed to import: {exc}") from exc
        return self._classes[name]

    def availability(self, name: str) -> Availability:
        cls = self.get(name)
        return check_requirements(tuple(getattr(cls, "requires", ())), getattr(cls, "extra", None))

    def require(self, name: str) -> type[T]:
        """The plugin class, or a MissingDependencyError naming the extra to install."""
        cls = self.get(name)
        for module in getattr(cls, "requires", ()):
            if not check_requirements((module,), None).ok:
                raise MissingDependencyError(f"{self.kind} {cls.name!r}", module, getattr(cls, "extra", None))
        return cls

    def __iter__(self) -> Iterator[type[T]]:
        for name in self.names():
            yield self.get(name)


def import_plugin_modules(modules: list[str]) -> None:
    """Import modules that register plugins programmatically (used by worker processes)."""
    for module in modules:
        importlib.import_module(module)


# The three registries of the project. Their plugin base classes live in
# deploybench.exporters.base / deploybench.runtimes.base / deploybench.sources.
exporters: Registry = Registry("deploybench.exporters", "format")
runtimes: Registry = Registry("deploybench.runtimes", "runtime")
sources: Registry = Registry("deploybench.sources", "model source")


def known_precisions() -> list[str]:
    """Every precision some exporter or runtime declares in its capability table."""
    found: set[str] = set()
    for reg in (exporters, runtimes):
        for name in reg.names():
            try:
                found.update(getattr(reg.get(name), "precisions", ()))
            except DeployBenchError:  # a broken plugin declares nothing
                continue
    return sorted(found)


def dynamic_plugin_modules() -> list[str]:
    """Modules of every plugin registered by hand in this process, for worker processes."""
    seen: list[str] = []
    for reg in (exporters, runtimes, sources):
        for module in reg.dynamic_modules:
            if module not in seen:
                seen.append(module)
    return seen
