"""Cross-agent layers: modules inside a policy that see every agent's row of one env.

A cross-agent network for ONE agent is ``torso`` (its own input -> features ``f32[F]``), then
a mixer that combines its features with the features of every agent of the env (the
*context*, ``f32[N, F]``), then ``head``. :func:`jmarl.agents.sharing.share` lifts it to all
agents with the context passed whole to each (never copied per agent), so its parameters
follow the agent -> policy mapping like any network.

The mixers treat the context as a set (a mean, or attention without positions): permuting
the agents of a shared policy permutes its outputs the same way (permutation-equivariance),
and the parameter count does not depend on ``N``. Message passing between agents is one such
layer; a critic that sees all agents' observations without a fixed-size global state is
another (``PPOConfig(critic_mixing=...)``).

Kinds: ``mean`` — ``h + tanh(Dense([h, mean_j h_j]))``; ``attention`` — ``h`` plus one head
of scaled dot-product attention from ``h`` over all ``h_j``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jmarl.nn.initializers import orthogonal
from jmarl.nn.network import Network
from jmarl.types import Array, Params, PRNGKey, PyTree

MIXERS = ("mean", "attention")


class AgentMixer(nn.Module):
    """``(h f32[F], context f32[N, F]) -> f32[F]``, symmetric in the context's rows."""

    kind: str = "mean"

    @nn.compact
    def __call__(self, h: Array, context: Array) -> Array:
        f = h.shape[-1]
        if self.kind == "mean":
            pooled = context.mean(axis=0)
            mixed = nn.Dense(f, kernel_init=orthogonal(1.0))(jnp.concatenate([h, pooled]))
            return h + jnp.tanh(mixed)
        if self.kind == "attention":
            q = nn.Dense(f, use_bias=False, name="query")(h)
            k = nn.Dense(f, use_bias=False, name="key")(context)
            v = nn.Dense(f, use_bias=False, name="value")(context)
            weights = jax.nn.softmax(k @ q / np.sqrt(f))
            return h + nn.Dense(f, kernel_init=orthogonal(1.0), name="out")(weights @ v)
        raise ValueError(f"unknown cross-agent mixer {self.kind!r}; expected one of {MIXERS}")


class CrossAgentNetwork(NamedTuple):
    """One agent's cross-agent network, in stages (lift it with
    :func:`jmarl.agents.sharing.share_cross_agent`).

    * ``init(key) -> {"torso", "mixer", "head"}`` params
    * ``features(params, x) -> f32[F]``: the torso on the agent's own input
    * ``mix(params, h f32[F], context f32[N, F]) -> out``: mixer, then head
    """

    init: Callable[[PRNGKey], Params]
    features: Callable[[Params, PyTree], Array]
    mix: Callable[[Params, Array, Array], PyTree]


def make_cross_agent(
    torso: Network, head: Network, kind: str, features: int, num_agents: int
) -> CrossAgentNetwork:
    """A cross-agent network from ``torso`` (``apply(params, x) -> f32[F]``, ``F =
    features``) and ``head`` (``apply(params, f32[F]) -> out``) around an
    :class:`AgentMixer` of ``kind`` (one of :data:`MIXERS`) over ``num_agents`` rows."""
    if kind not in MIXERS:
        raise ValueError(f"unknown cross-agent mixer {kind!r}; expected one of {MIXERS}")
    mixer = AgentMixer(kind)
    h0, ctx0 = jnp.zeros((features,)), jnp.zeros((num_agents, features))

    def init(key: PRNGKey) -> Params:
        kt, km, kh = jax.random.split(key, 3)
        return {"torso": torso.init(kt), "mixer": mixer.init(km, h0, ctx0), "head": head.init(kh)}

    def features_of(params: Params, x: PyTree) -> Array:
        out: Array = torso.apply(params["torso"], x)
        return out

    def mix(params: Params, h: Array, context: Array) -> PyTree:
        return head.apply(params["head"], mixer.apply(params["mixer"], h, context))

    return CrossAgentNetwork(init, features_of, mix)
