"""``Network(init, apply)``: the pure pair every jmarl network is (like optax's transforms)."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

from jmarl.types import Params, PyTree


class Network(NamedTuple):
    """A pure network: ``init(key) -> params``; ``apply(params, *inputs) -> outputs``.

    ``apply_rows(params, *inputs [R, ...]) -> outputs [R, ...]``, when given, is ``apply`` on
    every row of a batch, computed in a faster batched form than ``vmap(apply)``
    (:func:`jmarl.agents.sharing.share` uses it for one shared policy). A wrapper that changes
    ``apply`` must drop or replace it.
    """

    init: Callable[..., Params]
    apply: Callable[..., PyTree]
    apply_rows: Callable[..., PyTree] | None = None
