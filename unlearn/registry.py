"""Name -> class registries. Configs name components; they never carry import paths."""

from __future__ import annotations

from typing import Callable, Generic, TypeVar

from .errors import ConfigError

T = TypeVar("T")


class Registry(Generic[T]):
    def __init__(self, kind: str):
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def deco(obj: T) -> T:
            if name in self._items and self._items[name] is not obj:
                raise ConfigError(f"{self.kind} '{name}' is registered twice")
            self._items[name] = obj
            try:
                obj.registered_name = name  # type: ignore[attr-defined]
            except (AttributeError, TypeError):
                pass
            return obj

        return deco

    def get(self, name: str) -> T:
        if name not in self._items:
            raise ConfigError(f"Unknown {self.kind} '{name}'. Valid {self.kind}s: {', '.join(self.names())}.")
        return self._items[name]

    def names(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: str) -> bool:
        return name in self._items


DATASETS: Registry = Registry("dataset loader")
SPLITS: Registry = Registry("split")
PARTITIONERS: Registry = Registry("partitioner")
SUBMODELS: Registry = Registry("submodel")
AGGREGATORS: Registry = Registry("aggregator")
METHODS: Registry = Registry("method")
PROBES: Registry = Registry("probe")  # extra per-stage metrics (eval.probes)
REQUESTS: Registry = Registry("deletion selection")  # deletion.selection -> (data, cfg, seed) -> (data, request)


def list_all() -> dict[str, list[str]]:
    return {
        r.kind: r.names() for r in (DATASETS, SPLITS, PARTITIONERS, SUBMODELS, AGGREGATORS, METHODS, PROBES, REQUESTS)
    }
