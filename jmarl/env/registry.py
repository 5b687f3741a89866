"""Name -> environment factory registry behind ``jmarl.make``."""

from __future__ import annotations

import difflib
from collections.abc import Callable
from typing import Any

from jmarl.env.base import Env

_REGISTRY: dict[str, tuple[Callable[..., Env], str]] = {}


def register(name: str, factory: Callable[..., Env], description: str = "") -> None:
    """Registers ``factory(**kwargs) -> Env`` under ``name`` (overwriting is an error)."""
    if name in _REGISTRY:
        raise ValueError(f"environment {name!r} is already registered")
    _REGISTRY[name] = (factory, description)


def make(name: str, **kwargs: Any) -> Env:
    """Builds the registered JAX-native environment ``name`` with ``kwargs``.

    >>> env = make("simple_spread", num_agents=3)
    >>> env.spec.num_agents
    3
    """
    check_name(name)
    factory, _ = _REGISTRY[name]
    try:
        return factory(**kwargs)
    except TypeError as e:
        raise ValueError(f"bad arguments for environment {name!r}: {e}") from None


def factory(name: str) -> Callable[..., Env]:
    """The factory registered under ``name`` (its signature says which kwargs it takes)."""
    check_name(name)
    return _REGISTRY[name][0]


def check_name(name: str) -> None:
    """Raises ``ValueError`` naming ``name`` (and the closest known name) if it is unknown."""
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise ValueError(f"unknown environment {name!r}{hint} (known: {', '.join(list_envs())})")


def list_envs() -> list[str]:
    """Sorted names of the registered environments."""
    return sorted(_REGISTRY)


def describe(name: str) -> str:
    """One-line description of a registered environment."""
    return _REGISTRY[name][1]
