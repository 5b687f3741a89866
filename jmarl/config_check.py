"""Strict checks of config dataclasses, derived from their field annotations.

Every config class (:class:`~jmarl.algos.ppo.PPOConfig`, :class:`~jmarl.run.config.RunConfig`,
...) calls :func:`check_fields` first in ``__post_init__``, so a config built in Python, read
from a config file or from flags passes the same check: there is no second list of types.

>>> from dataclasses import dataclass
>>> @dataclass(frozen=True)
... class C:
...     width: int = 2
...     def __post_init__(self) -> None:
...         check_fields(self)
>>> C(width="64")
Traceback (most recent call last):
...
jmarl.config_check.ConfigError: C.width (--width): expected int, got '64' (str)
"""

from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
import types
import typing
from collections.abc import Callable, Iterable, Mapping
from typing import Any, Literal

import numpy as np

INT32_MAX = 2**31 - 1
SEED_MAX = 2**32 - 1  # jax.random.key(seed) keeps seed mod 2**32: larger seeds alias smaller ones


class ConfigError(ValueError):
    """A setting that is invalid or would be ignored; ``jmarl`` prints it as one line and
    exits with code 2."""


def flag(name: str) -> str:
    """The command-line flag of a config field (``num_envs`` -> ``--num-envs``)."""
    return "--" + name.replace("_", "-")


def type_name(tp: Any) -> str:
    """A short readable name of an annotation (``tuple[int, ...]``, ``int | None``)."""
    if tp is Any:
        return "any"
    if tp is type(None):
        return "None"
    if isinstance(tp, type) and not typing.get_args(tp):
        return tp.__name__
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        return " | ".join(repr(a) for a in args)
    if _is_union(tp):
        return " | ".join(type_name(a) for a in args)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return f"tuple[{type_name(args[0])}, ...]"
    name = getattr(origin, "__name__", str(origin))
    return f"{name}[{', '.join(type_name(a) for a in args)}]"


def _is_union(tp: Any) -> bool:
    return isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union


class _Mismatch(Exception):
    pass


def _coerce(tp: Any, value: Any) -> Any:
    """``value`` checked against ``tp``; JSON lists become tuples, ints become floats.

    :raises _Mismatch: ``value`` is not a ``tp``.
    """
    if tp is Any or tp is object:
        return value
    if _is_union(tp):
        for arg in typing.get_args(tp):
            try:
                return _coerce(arg, value)
            except _Mismatch:
                pass
        raise _Mismatch
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is Literal:
        if value in args and type(value) in {type(a) for a in args}:
            return value
        raise _Mismatch
    if tp is type(None):
        if value is None:
            return None
        raise _Mismatch
    if tp is bool:  # JSON true/false (or numpy bools) only: "false", 0 and 1 are refused
        if isinstance(value, (bool, np.bool_)):
            return bool(value)
        raise _Mismatch
    if tp is int:  # numpy integers too (as Python ints); bools are not ints here
        if isinstance(value, numbers.Integral) and not isinstance(value, bool):
            return int(value)
        raise _Mismatch
    if tp is float:  # an int is a float (JSON writes 1e-3 and 1 alike); a bool is not
        if isinstance(value, numbers.Real) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if origin is tuple or origin is list:
        if not isinstance(value, (tuple, list)):
            raise _Mismatch
        if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
            items = tuple(_coerce(args[0], v) for v in value)
        elif origin is tuple and args:
            if len(value) != len(args):
                raise _Mismatch
            items = tuple(_coerce(a, v) for a, v in zip(args, value, strict=True))
        else:
            items = tuple(_coerce(args[0], v) for v in value) if args else tuple(value)
        return items if origin is tuple else list(items)
    if origin in (dict, Mapping) or tp is dict:
        if not isinstance(value, Mapping):
            raise _Mismatch
        k_tp, v_tp = args if args else (Any, Any)
        return {_coerce(k_tp, k): _coerce(v_tp, v) for k, v in value.items()}
    if isinstance(tp, type):
        if isinstance(value, tp):
            return value
        raise _Mismatch
    return value  # an annotation we do not model: left to the class's own checks


def check_value(where: str, tp: Any, value: Any) -> Any:
    """``value`` as a ``tp`` (JSON lists as tuples, ints as floats), else a
    :class:`ConfigError` naming ``where``, the expected type and the value.

    Floats must be finite: no setting takes NaN or infinity.
    """
    try:
        out = _coerce(tp, value)
    except _Mismatch:
        raise ConfigError(
            f"{where}: expected {type_name(tp)}, got {value!r} ({type(value).__name__})"
        ) from None
    if isinstance(out, float) and not math.isfinite(out):
        raise ConfigError(f"{where}: must be a finite number, got {value!r}")
    return out


def _flagged(cls: type, name: str) -> str:
    return f"{cls.__name__}.{name} ({flag(name)})"


def _ints(value: Any) -> Iterable[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        yield value
    elif isinstance(value, (tuple, list)):
        for v in value:
            yield from _ints(v)


def check_fields(obj: Any, skip: Iterable[str] = (), wide: Iterable[str] = ()) -> None:
    """Checks every field of the dataclass instance ``obj`` against its annotation (see
    :func:`check_value`) and stores the normalised value; ``skip`` names fields the class
    checks itself. Ints (also inside tuples) must fit in int32, the width of JAX's integers
    without x64, except in the fields ``wide`` names (host-side counts such as ``steps``).

    :raises ConfigError: naming the first bad field (class, field and flag), the type and
        the value.
    """
    cls = type(obj)
    hints = typing.get_type_hints(cls)
    skipped, wide_set = set(skip), set(wide)
    for f in dataclasses.fields(obj):
        if f.name in skipped:
            continue
        value = getattr(obj, f.name)
        fixed = check_value(_flagged(cls, f.name), hints[f.name], value)
        if f.name not in wide_set and any(abs(v) > INT32_MAX for v in _ints(fixed)):
            raise ConfigError(
                f"{_flagged(cls, f.name)}: {value!r} does not fit in int32 (at most {INT32_MAX})"
            )
        if fixed is not value:
            object.__setattr__(obj, f.name, fixed)


def check_range(
    obj: Any,
    name: str,
    low: float | None = None,
    high: float | None = None,
    *,
    strict_low: bool = False,
) -> None:
    """``obj.name`` (a number or a tuple of numbers) within ``[low, high]`` (``(low, high]``
    when ``strict_low``), else a :class:`ConfigError` saying the range."""
    value = getattr(obj, name)
    for v in value if isinstance(value, tuple) else (value,):
        too_low = low is not None and (v <= low if strict_low else v < low)
        too_high = high is not None and v > high
        if too_low or too_high:
            lo = "" if low is None else (f"> {low}" if strict_low else f">= {low}")
            hi = "" if high is None else f"<= {high}"
            bound = " and ".join(s for s in (lo, hi) if s)
            raise ConfigError(f"{_flagged(type(obj), name)}: must be {bound}, got {value!r}")


def _init_of(cls: type) -> Any:
    """The ``__init__`` a class's signature comes from (its own or inherited)."""
    return next(vars(c)["__init__"] for c in cls.__mro__ if "__init__" in vars(c))


def check_kwargs(where: str, factory: Callable[..., Any], kwargs: Mapping[str, Any]) -> None:
    """Checks ``kwargs`` against ``factory``'s signature before calling it: unknown names,
    and values whose type differs from the parameter's annotation (or, unannotated, from
    its default's type) are refused naming ``where``.

    Factories taking ``**kwargs`` accept any name; parameters with neither annotation nor
    default are not type-checked.
    """
    sig = inspect.signature(factory)
    params = sig.parameters
    var_kw = any(p.kind is p.VAR_KEYWORD for p in params.values())
    try:
        hints = typing.get_type_hints(_init_of(factory) if isinstance(factory, type) else factory)
    except Exception:  # unresolvable annotations: fall back to the defaults' types
        hints = {}
    known = [n for n, p in params.items() if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    for key, value in kwargs.items():
        if key not in params:
            if var_kw:
                continue
            raise ConfigError(f"{where}: unknown argument {key!r}; it takes {', '.join(known)}")
        p = params[key]
        tp = hints.get(key)
        if tp is None and p.default is not p.empty and p.default is not None:
            tp = type(p.default)
        if tp is not None:
            check_value(f"{where}[{key!r}]", tp, value)
