"""The "within training step" flag of a Tianshou policy that wraps others, passed on to them.

Tianshou's trainers set ``policy.is_within_training_step`` on the policy they train, and
policies read it on themselves (DQN explores with ``eps_training`` while it is set). A policy
that calls other policies (:class:`~bridge.tianshou.dict_obs.DictObservationWrapper`,
:class:`~bridge.tianshou.dispatch.MultiAgentDispatchPolicy`) must pass it on to them.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from torch import nn

__all__ = ["PassesOnTrainingStep"]


class PassesOnTrainingStep:
    """Mixin (before ``Policy`` in the bases): setting ``is_within_training_step`` sets it on
    the inner policies too, those held in the submodule named by ``_INNER_POLICIES`` (one
    policy, or a ``ModuleList`` of them).

    The flag is read before the inner policies exist (``Policy.__init__`` sets it), so it is
    kept in the instance ``__dict__`` and a missing submodule is skipped.
    """

    _INNER_POLICIES: str = "policy"

    @property
    def is_within_training_step(self) -> bool:
        """Whether a training step is running; setting it sets it on the inner policies."""
        return bool(self.__dict__.get("_within_training_step", False))

    @is_within_training_step.setter
    def is_within_training_step(self, value: bool) -> None:
        self.__dict__["_within_training_step"] = value
        for policy in self._inner_policies():
            policy.is_within_training_step = value

    def _inner_policies(self) -> Iterator[Any]:
        inner = self.__dict__.get("_modules", {}).get(self._INNER_POLICIES)
        if isinstance(inner, nn.ModuleList):
            yield from inner
        elif inner is not None:
            yield inner
