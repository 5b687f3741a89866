"""Value-decomposition mixers: per-agent utilities ``Q_i`` -> a joint ``Q_tot``.

A mixer is a :class:`~jmarl.nn.network.Network` whose ``apply(params, q f32[N], state f32[S])``
gives ``Q_tot`` ``f32[]`` for one env step (callers ``vmap`` over batches). Both mixers are
monotonic in every ``Q_i`` (``dQ_tot/dQ_i >= 0``), so each agent's greedy action on its own
``Q_i`` is the greedy joint action of ``Q_tot`` (decentralised execution).

* :func:`make_vdn_mixer`: ``Q_tot = sum_i Q_i`` (Sunehag et al. 2018); no parameters.
* :func:`make_qmix_mixer`: a two-layer network on the ``Q_i`` whose weights are produced from
  the global state by hypernetworks and kept non-negative by ``abs`` (Rashid et al. 2018).
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

from jmarl.nn.network import Network
from jmarl.types import Array, Params, PRNGKey

MIXERS = ("vdn", "qmix")


def make_vdn_mixer() -> Network:
    """``apply(params, q [N], state [S]) -> sum(q)`` (``params`` is an empty dict)."""

    def init(key: PRNGKey) -> Params:
        del key
        return {}

    def apply(params: Params, q: Array, state: Array) -> Array:
        del params, state
        return jnp.sum(q, axis=-1)

    return Network(init, apply)


class QMixNet(nn.Module):
    """``Q_tot = elu(q @ |W1(s)| + b1(s)) @ |w2(s)| + V(s)``.

    ``W1(s)`` ``[N, E]`` and ``w2(s)`` ``[E]`` come from hypernetworks with one hidden layer of
    ``hypernet_hidden`` units; ``b1(s)`` ``[E]`` from one Dense layer; ``V(s)`` from two.
    """

    num_agents: int
    embed_dim: int
    hypernet_hidden: int

    @nn.compact
    def __call__(self, q: Array, state: Array) -> Array:
        n, e, h = self.num_agents, self.embed_dim, self.hypernet_hidden
        hyper = lambda out, name: nn.Sequential(
            [nn.Dense(h, name=f"{name}_0"), nn.relu, nn.Dense(out, name=f"{name}_1")]
        )
        w1 = jnp.abs(hyper(n * e, "hyper_w1")(state)).reshape(n, e)
        b1 = nn.Dense(e, name="hyper_b1")(state)
        w2 = jnp.abs(hyper(e, "hyper_w2")(state))
        v = hyper(1, "hyper_v")(state)[0]
        hidden = nn.elu(q @ w1 + b1)
        out: Array = hidden @ w2 + v
        return out


def make_qmix_mixer(
    num_agents: int, state_dim: int, embed_dim: int = 32, hypernet_hidden: int = 64
) -> Network:
    """QMIX's monotonic mixer for ``num_agents`` utilities and a ``f32[state_dim]`` state.

    :param embed_dim: width of the mixing layer (``E``).
    :param hypernet_hidden: hidden width of the hypernetworks that produce its weights.
    """
    net = QMixNet(num_agents, embed_dim, hypernet_hidden)

    def init(key: PRNGKey) -> Params:
        return net.init(key, jnp.zeros((num_agents,)), jnp.zeros((state_dim,)))

    def apply(params: Params, q: Array, state: Array) -> Array:
        out: Array = net.apply(params, q, state)  # type: ignore[assignment]
        return out

    return Network(init, apply)
