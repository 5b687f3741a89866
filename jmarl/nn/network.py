"""``Network(init, apply)``: the pure pair every jmarl network is (like optax's transforms)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from jmarl.types import Params, PyTree


class Network(NamedTuple):
    """A pure network: ``init(key) -> params``; ``apply(params, *inputs) -> outputs``."""

    init: Callable[..., Params]
    apply: Callable[..., PyTree]
