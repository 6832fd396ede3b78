"""Finding, validating and handing out broker plugins.

Plugins come from the entry point group ``brokersync.brokers`` (entry point name = broker key; one
distribution may declare several) and from :func:`register_broker` at runtime. Each broker gets its
own pluggy ``PluginManager`` holding the hookspecs and exactly one plugin, so pluggy validates hook
names and argument names when the plugin is registered, and a call reaches only that broker.

A plugin that fails to import, misnames a hook, takes an unknown argument, returns invalid metadata,
targets another plugin API version, or claims a key another plugin already has is recorded as a
:class:`PluginFailure` with the reason; every other plugin keeps working.
"""

from __future__ import annotations

import difflib
import importlib.metadata
import inspect
import os
import threading
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any

import attrs
import pluggy

from brokersync import hookspecs
from brokersync._versions import PLUGIN_API_VERSION, api_version_matches
from brokersync.errors import ConfigurationError, PluginError
from brokersync.models import AuthType, BrokerMetadata

if TYPE_CHECKING:
    from brokersync._broker import Broker

__all__ = ["ENTRY_POINT_GROUP", "BrokerRegistry", "PluginFailure", "PluginInfo", "get_registry"]

ENTRY_POINT_GROUP = "brokersync.brokers"
_ALLOW_ENV = "BROKERSYNC_PLUGINS"


@attrs.frozen(kw_only=True)
class PluginFailure:
    """A broker plugin that could not be loaded, and why."""

    key: str
    distribution: str | None
    version: str | None
    error: str


@attrs.frozen(kw_only=True)
class PluginInfo:
    """One distribution that provides broker plugins, as ``brokersync plugins`` lists it."""

    distribution: str
    version: str | None
    brokers: tuple[str, ...]
    hooks: tuple[str, ...]
    failures: tuple[PluginFailure, ...] = ()


@attrs.frozen(kw_only=True)
class _Loaded:
    key: str
    plugin: Any
    manager: pluggy.PluginManager
    metadata: BrokerMetadata
    hooks: tuple[str, ...]
    distribution: str | None
    version: str | None


def _allow_list() -> frozenset[str] | None:
    raw = os.environ.get(_ALLOW_ENV)
    if raw is None:
        return None
    return frozenset(part.strip() for part in raw.split(",") if part.strip())


def _allowed(allow: frozenset[str] | None, key: str, dist: str | None) -> bool:
    """``allow`` holds broker keys, or ``key=distribution`` to pick one of several claimants."""
    if allow is None:
        return True
    return key in allow or f"{key}={dist}" in allow


def _describe_exception(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _candidate_functions(plugin: Any) -> list[str]:
    names = []
    for name in dir(plugin):
        if name.startswith("_"):
            continue
        try:
            value = getattr(plugin, name)
        except Exception:  # noqa: S112 - a plugin attribute that fails to read is simply not a hook
            continue
        if inspect.isfunction(value) or inspect.ismethod(value):
            names.append(name)
    return names


_SPEC_OPTS: dict[str, Any] | None = None


class _Manager(pluggy.PluginManager):
    """A plugin manager that reads brokersync's hookspecs from a table parsed once per process.

    Every broker gets a manager of its own (a call reaches one broker only); parsing the hookspecs
    module anew for each (~100 with brokersync-ccxt) costs more than the rest of a listing's
    registrations. The table is what ``parse_hookspec_opts`` (pluggy's extension point) returns.
    """

    def parse_hookspec_opts(self, module_or_class: Any, name: str) -> Any:
        global _SPEC_OPTS
        if module_or_class is not hookspecs:
            return super().parse_hookspec_opts(module_or_class, name)
        table = _SPEC_OPTS
        if table is None:
            parse = super().parse_hookspec_opts
            table = _SPEC_OPTS = {n: o for n in dir(hookspecs) if (o := parse(hookspecs, n)) is not None}
        return table.get(name)


def build_manager(key: str, plugin: Any) -> tuple[pluggy.PluginManager, BrokerMetadata, tuple[str, ...]]:
    """Register ``plugin`` in a fresh manager for ``key`` and validate it against the contract.

    Raises:
        PluginError: with a message naming the broker key and what is wrong.
    """
    if inspect.isclass(plugin):
        try:
            plugin = plugin()
        except Exception as exc:
            raise PluginError(
                f"broker {key!r}: cannot instantiate plugin class: {_describe_exception(exc)}", broker=key
            ) from exc
    manager = _Manager(hookspecs.PROJECT_NAME)
    manager.add_hookspecs(hookspecs)
    try:
        manager.register(plugin, name=key)
    except pluggy.PluginValidationError as exc:
        raise PluginError(f"broker {key!r}: {exc}", broker=key) from exc
    except ValueError as exc:
        raise PluginError(f"broker {key!r}: {exc}", broker=key) from exc
    implemented = tuple(sorted(name for name in manager.hook.__dict__ if getattr(manager.hook, name).get_hookimpls()))
    unknown = [n for n in implemented if n not in hookspecs.REQUIRED_HOOKS + hookspecs.OPTIONAL_HOOKS]
    try:
        manager.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginError(_unknown_hook_message(key, unknown, str(exc)), broker=key) from exc
    file_only = "file_formats" in implemented and not any(h in implemented for h in hookspecs.API_HOOKS)
    required = ("broker_metadata", "file_formats") if file_only else hookspecs.REQUIRED_HOOKS
    missing = [hook for hook in required if hook not in implemented]
    if missing:
        hints = []
        candidates = _candidate_functions(plugin)
        for hook in missing:
            close = difflib.get_close_matches(hook, candidates, n=1)
            if close and close[0] == hook:
                hints.append(f"{hook} (defined, but not marked @brokersync.hookimpl)")
            elif close:
                hints.append(f"{hook} (did you mean {close[0]!r}? mark it @brokersync.hookimpl)")
            else:
                hints.append(hook)
        raise PluginError(f"broker {key!r}: missing required hook(s): {', '.join(hints)}", broker=key)
    try:
        raw_metadata = manager.hook.broker_metadata()
    except Exception as exc:
        raise PluginError(f"broker {key!r}: broker_metadata() failed: {_describe_exception(exc)}", broker=key) from exc
    metadata = _coerce_metadata(key, raw_metadata)
    if file_only != (metadata.auth_type is AuthType.FILE):
        raise PluginError(
            f"broker {key!r}: "
            + (
                "implements only file_formats, so its metadata must say auth_type=AuthType.FILE"
                if file_only
                else "says auth_type=AuthType.FILE but implements API hooks; a file-only plugin implements "
                "broker_metadata and file_formats only"
            ),
            broker=key,
        )
    if metadata.key != key:
        raise PluginError(
            f"broker {key!r}: broker_metadata() says its key is {metadata.key!r}; it must equal the entry point name",
            broker=key,
        )
    try:
        compatible = api_version_matches(metadata.plugin_api)
    except ValueError as exc:
        raise PluginError(f"broker {key!r}: {exc}", broker=key) from exc
    if not compatible:
        raise PluginError(
            f"broker {key!r} supports plugin API {metadata.plugin_api}, but this brokersync implements "
            f"plugin API {PLUGIN_API_VERSION}; install a matching version of the plugin or of brokersync",
            broker=key,
        )
    return manager, metadata, implemented


def _unknown_hook_message(key: str, unknown: list[str], pluggy_message: str) -> str:
    known = hookspecs.REQUIRED_HOOKS + hookspecs.OPTIONAL_HOOKS
    if not unknown:
        return f"broker {key!r}: {pluggy_message}"
    parts = []
    for name in unknown:
        close = difflib.get_close_matches(name, known, n=1)
        parts.append(f"{name!r} (did you mean {close[0]!r}?)" if close else repr(name))
    return f"broker {key!r}: unknown hook(s) {', '.join(parts)}; the hooks are {', '.join(known)}"


def _coerce_metadata(key: str, raw: Any) -> BrokerMetadata:
    if isinstance(raw, BrokerMetadata):
        return raw
    if isinstance(raw, Mapping):
        from brokersync._converters import describe_error, strict_converter

        try:
            return strict_converter().structure(raw, BrokerMetadata)
        except Exception as exc:
            raise PluginError(f"broker {key!r}: invalid metadata: {describe_error(exc)}", broker=key) from exc
    raise PluginError(
        f"broker {key!r}: broker_metadata() returned {type(raw).__name__}, expected BrokerMetadata", broker=key
    )


class BrokerRegistry:
    """The brokers this process can use.

    Args:
        group: The entry point group to read.
        allow: Broker keys to load from entry points (default: ``BROKERSYNC_PLUGINS``, a comma
            separated list, when set; otherwise all). An entry ``key=distribution`` picks one of
            several distributions claiming the same key. Runtime registrations are always allowed.
        entry_points: Whether to read entry points at all.
    """

    def __init__(
        self,
        *,
        group: str = ENTRY_POINT_GROUP,
        allow: Iterable[str] | None = None,
        entry_points: bool = True,
    ) -> None:
        self._group = group
        self._allow = frozenset(allow) if allow is not None else _allow_list()
        self._use_entry_points = entry_points
        self._lock = threading.RLock()
        self._loaded: dict[str, _Loaded] = {}
        self._failures: list[PluginFailure] = []
        self._scanned = False

    # -- loading -------------------------------------------------------------------------------

    def _scan(self) -> None:
        with self._lock:
            if self._scanned:
                return
            self._scanned = True
            if not self._use_entry_points:
                return
            # A distribution's name and version come from its METADATA file, parsed again on every
            # ``dist.name``/``dist.version``: read them once per distribution (ccxt alone has ~95 entry points).
            names: dict[int, tuple[str | None, str | None]] = {}

            def dist_of(ep: importlib.metadata.EntryPoint) -> tuple[str | None, str | None]:
                dist = ep.dist
                if dist is None:
                    return None, None
                found = names.get(id(dist))
                if found is None:
                    metadata = dist.metadata
                    found = names[id(dist)] = (metadata["Name"], metadata["Version"])
                return found

            points = sorted(
                importlib.metadata.entry_points(group=self._group),
                key=lambda ep: (ep.name, dist_of(ep)[0] or ""),
            )
            points = [ep for ep in points if _allowed(self._allow, ep.name, dist_of(ep)[0])]
            claimants: dict[str, list[importlib.metadata.EntryPoint]] = {}
            for ep in points:
                claimants.setdefault(ep.name, []).append(ep)
            for key, eps in claimants.items():
                if len(eps) > 1:
                    # Picking one silently would be arbitrary: refuse every claimant and say how to choose.
                    labels = [f"{dist_of(ep)[0] or '?'} ({ep.value})" for ep in eps]
                    for ep in eps:
                        dist, version = dist_of(ep)
                        self._failures.append(
                            PluginFailure(
                                key=key,
                                distribution=dist,
                                version=version,
                                error=f"broker key {key!r} is claimed by several distributions: {', '.join(labels)}; "
                                f"none is used. Uninstall one, or choose with {_ALLOW_ENV}={key}=<distribution>",
                            )
                        )
                    continue
                ep = eps[0]
                dist, version = dist_of(ep)
                try:
                    self._load_entry_point(ep, dist, version)
                except PluginError as exc:
                    self._failures.append(
                        PluginFailure(key=ep.name, distribution=dist, version=version, error=exc.message)
                    )

    def _load_entry_point(self, ep: importlib.metadata.EntryPoint, dist: str | None, version: str | None) -> None:
        key = ep.name
        try:
            plugin = ep.load()
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt):
                raise
            raise PluginError(
                f"broker {key!r}: cannot import {ep.value}: {_describe_exception(exc)}", broker=key, distribution=dist
            ) from exc
        try:
            manager, metadata, hooks = build_manager(key, plugin)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"broker {key!r}: {_describe_exception(exc)}", broker=key, distribution=dist) from exc
        self._loaded[key] = _Loaded(
            key=key, plugin=plugin, manager=manager, metadata=metadata, hooks=hooks, distribution=dist, version=version
        )

    def reload(self) -> None:
        """Forget everything loaded from entry points and scan again (runtime registrations are kept)."""
        with self._lock:
            self._loaded = {k: v for k, v in self._loaded.items() if v.distribution is None}
            self._failures = []
            self._scanned = False

    # -- runtime registration ------------------------------------------------------------------

    def register(self, key: str, plugin: Any, *, replace: bool = False) -> BrokerMetadata:
        """Register ``plugin`` (a module, class or object with hookimpls) as broker ``key``.

        Raises:
            PluginError: the plugin does not satisfy the contract.
            ValueError: ``key`` is taken and ``replace`` is false.
        """
        self._scan()
        with self._lock:
            if key in self._loaded and not replace:
                owner = self._loaded[key]
                where = f"{owner.distribution} {owner.version}" if owner.distribution else "a runtime registration"
                raise ValueError(f"broker key {key!r} is already provided by {where}; pass replace=True to override")
            manager, metadata, hooks = build_manager(key, plugin)
            self._loaded[key] = _Loaded(
                key=key, plugin=plugin, manager=manager, metadata=metadata, hooks=hooks, distribution=None, version=None
            )
            return metadata

    def unregister(self, key: str) -> None:
        """Remove broker ``key`` (no error if it is not registered)."""
        with self._lock:
            self._loaded.pop(key, None)

    # -- queries -------------------------------------------------------------------------------

    def _get(self, key: str) -> _Loaded:
        self._scan()
        loaded = self._loaded.get(key)
        if loaded is None:
            failure = next((f for f in self._failures if f.key == key), None)
            if failure is not None:
                raise ConfigurationError(f"broker {key!r} is installed but failed to load: {failure.error}")
            known = ", ".join(sorted(self._loaded)) or "none"
            raise ConfigurationError(f"unknown broker {key!r}; available brokers: {known}")
        return loaded

    def is_supported(self, key: str) -> bool:
        """Whether broker ``key`` is installed and loaded without error."""
        self._scan()
        return key in self._loaded

    def metadata(self, key: str) -> BrokerMetadata:
        """The metadata of broker ``key``."""
        return self._get(key).metadata

    def list_brokers(self) -> list[BrokerMetadata]:
        """Metadata of every usable broker, sorted by key."""
        self._scan()
        return [self._loaded[k].metadata for k in sorted(self._loaded)]

    def failures(self) -> list[PluginFailure]:
        """Every plugin that failed to load, with the reason."""
        self._scan()
        return list(self._failures)

    def plugins(self) -> list[PluginInfo]:
        """Distributions providing brokers (and runtime registrations as ``<runtime>``)."""
        self._scan()
        groups: dict[str, dict[str, Any]] = {}
        for loaded in self._loaded.values():
            name = loaded.distribution or "<runtime>"
            group = groups.setdefault(name, {"version": loaded.version, "brokers": [], "hooks": set(), "failures": []})
            group["brokers"].append(loaded.key)
            group["hooks"].update(loaded.hooks)
        for failure in self._failures:
            name = failure.distribution or "<unknown>"
            group = groups.setdefault(name, {"version": failure.version, "brokers": [], "hooks": set(), "failures": []})
            group["failures"].append(failure)
        return [
            PluginInfo(
                distribution=name,
                version=g["version"],
                brokers=tuple(sorted(g["brokers"])),
                hooks=tuple(sorted(g["hooks"])),
                failures=tuple(g["failures"]),
            )
            for name, g in sorted(groups.items())
        ]

    def get(self, key: str, *, environment: str | None = None, **options: Any) -> Broker:
        """A :class:`~brokersync.Broker` facade for ``key`` in ``environment``.

        Keyword arguments are passed to :class:`~brokersync.Broker` (``base_url``, ``options``,
        ``transport``, ``http``, ``connection_id``, ``clock``, ``sleep``).
        """
        from brokersync._broker import Broker

        loaded = self._get(key)
        return Broker(
            key=key, metadata=loaded.metadata, plugin_manager=loaded.manager, environment=environment, **options
        )


_default: BrokerRegistry | None = None
_default_lock = threading.Lock()


def get_registry() -> BrokerRegistry:
    """The process-wide registry the module-level functions use."""
    global _default
    with _default_lock:
        if _default is None:
            _default = BrokerRegistry()
        return _default
