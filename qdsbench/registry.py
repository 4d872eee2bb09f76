"""A tiny name -> factory registry, one per extensible kind (attention backend, model, dataset, task).

``create`` checks option names and simple types against the factory's signature before calling it, so a typo in
a config fails before training with one line that lists the valid options.
"""

from __future__ import annotations

import functools
import inspect
import types
import typing
from collections.abc import Callable
from typing import Any

from qdsbench.errors import UnknownNameError


def _init_of(target: Any) -> Any:
    return target.__init__ if inspect.isclass(target) else target


def accepted_keywords(factory: Callable[..., Any]) -> dict[str, inspect.Parameter] | None:
    """Keyword parameters a factory accepts, following ``**kwargs`` up a class hierarchy; None = anything."""
    bound: set[str] = set()
    if isinstance(factory, functools.partial):
        bound = set(factory.keywords)
        factory = factory.func
    chain = [c for c in factory.__mro__ if c is not object] if inspect.isclass(factory) else [factory]
    params: dict[str, inspect.Parameter] = {}
    for target in chain:
        try:
            signature = inspect.signature(_init_of(target), eval_str=True)
        except (TypeError, ValueError, NameError):
            try:
                signature = inspect.signature(_init_of(target))
            except (TypeError, ValueError):
                return None
        open_ended = False
        for p in signature.parameters.values():
            if p.kind is p.VAR_KEYWORD:
                open_ended = True
            elif p.kind is not p.VAR_POSITIONAL and p.name != "self" and p.name not in bound:
                params.setdefault(p.name, p)
        if not open_ended:
            return params
    return None


def _type_ok(value: Any, annotation: Any) -> bool:
    if annotation is inspect.Parameter.empty or value is None or isinstance(annotation, str):
        return True
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        return any(_type_ok(value, arg) for arg in typing.get_args(annotation))
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation in (bool, str):
        return isinstance(value, annotation)
    return True  # containers, tensors, classes: left to the factory


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

    def add(self, name: str, factory: Callable[..., Any]) -> None:
        self.register(name)(factory)

    def available(self) -> list[str]:
        return sorted(self._factories)

    def get(self, name: str) -> Callable[..., Any]:
        if name not in self._factories:
            raise UnknownNameError(f"unknown {self.kind} '{name}'; valid choices: {', '.join(self.available())}")
        return self._factories[name]

    def check_options(self, name: str, options: dict[str, Any]) -> None:
        accepted = accepted_keywords(self.get(name))
        if accepted is None:
            return
        for key, value in options.items():
            if key not in accepted:
                raise ValueError(
                    f"unknown option '{key}' for {self.kind} '{name}'; valid options: {', '.join(sorted(accepted))}"
                )
            annotation = accepted[key].annotation
            if not _type_ok(value, annotation):
                expected = getattr(annotation, "__name__", str(annotation))
                raise ValueError(
                    f"{self.kind} '{name}': option {key}={value!r} has type {type(value).__name__}, expected {expected}"
                )

    def create(self, name: str, **kwargs: Any) -> Any:
        factory = self.get(name)
        self.check_options(name, kwargs)
        return factory(**kwargs)

    def __contains__(self, name: str) -> bool:
        return name in self._factories
