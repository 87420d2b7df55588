"""Graph caching: compiled functions are built once and reused until a dependency resets them.

A :class:`GraphCachable` object keeps a cache of compiled things (jitted JAX functions,
``tf.function`` graphs, compiled solver loops). Objects that cache things computed from
another object declare it with :meth:`GraphCachable.add_cache_deps`; resetting the
dependency (:meth:`GraphCachable.reset_cache_self`) clears the dependent caches too.

Dependents are held through weak references, so a cache never keeps a loss or a
minimizer alive (repeated fits do not grow memory).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Hashable, Iterable
from typing import Any, TypeVar

__all__ = ["GraphCachable"]

T = TypeVar("T")


class GraphCachable:
    """Mixin that owns a cache of compiled functions and a set of dependents.

    Notes
    -----
    Call ``GraphCachable.__init__(self)`` from the subclass's ``__init__``; the mixin
    also initialises itself lazily, so subclasses that forget still work.
    """

    def __init__(self) -> None:
        self._graph_cache: dict[Hashable, Any] = {}
        self._cachers: weakref.WeakSet[GraphCachable] = weakref.WeakSet()

    # lazily-created state, for subclasses whose __init__ does not chain up
    def _cache_store(self) -> dict[Hashable, Any]:
        try:
            return self._graph_cache
        except AttributeError:
            self._graph_cache = {}
            return self._graph_cache

    def _cacher_set(self) -> weakref.WeakSet[GraphCachable]:
        try:
            return self._cachers
        except AttributeError:
            self._cachers = weakref.WeakSet()
            return self._cachers

    def register_cacher(self, cacher: GraphCachable | Iterable[GraphCachable]) -> None:
        """Register ``cacher`` as caching values produced by ``self`` (a dependent).

        Parameters
        ----------
        cacher : GraphCachable or iterable of GraphCachable
            Objects whose caches must be cleared when ``self`` is reset.

        Raises
        ------
        TypeError
            If a cacher is not a :class:`GraphCachable`.
        """
        if isinstance(cacher, GraphCachable):
            cachers = [cacher]
        elif isinstance(cacher, Iterable):
            cachers = list(cacher)
        else:
            raise TypeError(f"a cacher must be a GraphCachable, got {type(cacher).__name__}")
        for c in cachers:
            if not isinstance(c, GraphCachable):
                raise TypeError(f"a cacher must be a GraphCachable, got {type(c).__name__}")
            self._cacher_set().add(c)

    def add_cache_deps(self, cache_deps: Any, allow_non_cachable: bool = True) -> None:
        """Declare that ``self``'s cache depends on ``cache_deps``.

        Parameters
        ----------
        cache_deps : object or iterable of objects
            Dependencies; those that are :class:`GraphCachable` will clear ``self``'s
            cache when they are reset.
        allow_non_cachable : bool, default True
            If False, a dependency that is not a :class:`GraphCachable` raises.

        Raises
        ------
        TypeError
            If ``allow_non_cachable`` is False and a dependency is not cachable.
        """
        if (
            isinstance(cache_deps, GraphCachable)
            or not isinstance(cache_deps, Iterable)
            or isinstance(cache_deps, str)
        ):
            cache_deps = [cache_deps]
        for dep in cache_deps:
            if isinstance(dep, GraphCachable):
                dep.register_cacher(self)
            elif not allow_non_cachable:
                raise TypeError(
                    f"cache dependency {dep!r} of type {type(dep).__name__} is not a GraphCachable; "
                    "pass allow_non_cachable=True to ignore such dependencies"
                )

    def reset_cache_self(self) -> None:
        """Clear the cache of ``self`` and of every dependent, recursively."""
        self.reset_cache(reset_from=self)

    def reset_cache(self, reset_from: GraphCachable) -> None:
        """Clear the cache because ``reset_from`` (self or a dependency) was reset."""
        self._cache_store().clear()
        for cacher in list(self._cacher_set()):
            if cacher is not reset_from:
                cacher.reset_cache(reset_from=self)

    def cached(self, key: Hashable, build: Callable[[], T]) -> T:
        """Return the cached object under ``key``, building it with ``build()`` on a miss."""
        store = self._cache_store()
        try:
            return store[key]
        except KeyError:
            value = store[key] = build()
            return value

    @property
    def cache_size(self) -> int:
        """Number of entries in this object's own cache."""
        return len(self._cache_store())

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        state.pop("_graph_cache", None)
        state.pop("_cachers", None)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._graph_cache = {}
        self._cachers = weakref.WeakSet()
