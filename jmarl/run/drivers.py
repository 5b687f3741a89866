"""Drivers of ``jmarl train`` / ``jmarl evaluate`` by env-name prefix.

A driver trains and evaluates envs whose ``--env`` starts with its prefix; JAX-native envs (no
prefix) use :mod:`jmarl.run.driver`. Packages outside ``jmarl`` register theirs with
:func:`register_driver` when they are imported; :data:`DRIVER_MODULES` names the module that
registers the driver of each prefix, so the CLI imports it only when that prefix is used (and
``import jmarl`` imports none of them).
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any, NamedTuple

__all__ = ["DRIVER_MODULES", "Driver", "driver_for", "list_drivers", "register_driver"]


class Driver(NamedTuple):
    """``train_run(cfg, out_dir, progress) -> summary`` and
    ``evaluate_run(run_dir, episodes, seed, deterministic) -> result`` for one kind of env."""

    prefix: str
    train_run: Callable[..., dict[str, Any]]
    evaluate_run: Callable[..., dict[str, Any]]
    description: str


# prefix -> (module that registers its driver on import, one line for `jmarl envs`)
DRIVER_MODULES: dict[str, tuple[str, str]] = {
    "pettingzoo:": (
        "bridge.pettingzoo.train",
        "any PettingZoo env by module path, e.g. pettingzoo:mpe2.simple_spread_v3 "
        "(trained through the bridge)",
    ),
}
_DRIVERS: dict[str, Driver] = {}


def register_driver(driver: Driver) -> None:
    """Makes ``driver`` serve every ``--env`` that starts with ``driver.prefix``."""
    _DRIVERS[driver.prefix] = driver


def driver_for(env: str) -> Driver:
    """The driver of ``env``: a registered prefix's (importing its module first), else the
    JAX-native :mod:`jmarl.run.driver`.

    :raises ValueError: the prefix's module cannot be imported or registers no driver.
    """
    prefixes = set(_DRIVERS) | set(DRIVER_MODULES)
    prefix = next((p for p in sorted(prefixes, key=len, reverse=True) if env.startswith(p)), None)
    if prefix is None:
        from jmarl.run import driver

        return Driver("", driver.train_run, driver.evaluate_run, "JAX-native envs")
    if prefix not in _DRIVERS:
        module = DRIVER_MODULES[prefix][0]
        try:
            importlib.import_module(module)
        except ImportError as e:
            raise ValueError(f"--env {env!r} needs {module} ({e})") from None
        if prefix not in _DRIVERS:
            raise ValueError(f"{module} registers no driver for {prefix!r}")
    return _DRIVERS[prefix]


def list_drivers() -> list[tuple[str, str]]:
    """``(prefix, description)`` of every known driver, registered or not yet imported."""
    found = {p: desc for p, (_, desc) in DRIVER_MODULES.items()}
    found.update({p: d.description for p, d in _DRIVERS.items()})
    return sorted(found.items())
