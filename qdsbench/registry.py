"""A tiny name -> factory registry, one per extensible kind (attention backend, model, dataset)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class UnknownNameError(ValueError):
    """Raised for a name that is not registered; the message lists the valid choices on one line."""


class Registry:
    def __init__(self, kind: str):
        self.kind = kind
        self._factories: dict[str, Callable[..., Any]] = {}

    def register(self, name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
        def decorator(factory: Callable[..., Any]) -> Callable[..., Any]:
            if name in self._factories:
                raise ValueError(f"{self.kind} '{name}' is registered twice")
            self._factories[name] = factory
            return factory

        return decorator

    def available(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._factories:
            raise UnknownNameError(
                f"unknown {self.kind} '{name}'; valid choices: {', '.join(self.available())}"
            )
        return self._factories[name]

    def create(self, name: str, **kwargs: Any) -> Any:
        factory = self.get(name)
        try:
            return factory(**kwargs)
        except TypeError as err:
            if "unexpected keyword argument" in str(err):
                raise ValueError(f"{self.kind} '{name}': {err}") from err
            raise

    def __contains__(self, name: str) -> bool:
        return name in self._factories
