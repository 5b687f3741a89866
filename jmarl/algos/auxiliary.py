"""Auxiliary losses: named extra parameter sets and loss terms trained beside an algorithm's own.

An :class:`AuxiliaryLoss` brings its own parameters (stored under its ``name`` beside the actor
and critic), a loss term added to the algorithm's loss with ``weight``, and its own optimizer
label (``name``; its own ``optimizer`` or, by default, the algorithm's). The loss may read the
algorithm's parameters too (an auxiliary task shaping the actor), or only its own (a separate
model, e.g. of the other agents). Algorithms take *factories* ``(spec, mapping) ->
AuxiliaryLoss`` so that a variant with an auxiliary head is one registry call::

    make_om = functools.partial(jmarl.algos.ppo.make, auxiliaries=(action_prediction(),))
    register(jmarl.ALGORITHMS["ippo"]._replace(name="ippo_om", make=make_om))
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jmarl.agents.sharing import PolicyMapping, share
from jmarl.algos.base import Metrics, Transition
from jmarl.env import spaces
from jmarl.env.base import EnvSpec
from jmarl.nn.network import Network
from jmarl.nn.networks import MLP, flatten_obs
from jmarl.types import Array, Params, PRNGKey

RESERVED_NAMES = ("actor", "critic")


class AuxiliaryLoss(NamedTuple):
    """A named parameter set and loss term.

    :param name: the key of its parameters (``params.aux[name]``), its optimizer label and the
        prefix of its metrics (``<name>/loss``, ``<name>/<metric>``).
    :param init: ``init(key) -> params``.
    :param loss: ``loss(params, batch) -> (scalar, metrics)``; ``params`` is the algorithm's
        whole parameter tree (its own set at ``params.aux[name]``), ``batch`` a
        :class:`~jmarl.algos.base.Transition` minibatch ``[..., N, ...]`` whose ``alive``
        rows are the ones to learn from.
    :param weight: factor of the term in the total loss.
    :param optimizer: its own optax transformation; None: the algorithm's.
    :param per_policy: its parameters are laid out per policy block (as
        :func:`jmarl.agents.sharing.share` gives them): a frozen policy's set stays frozen.
    """

    name: str
    init: Callable[[PRNGKey], Params]
    loss: Callable[[Any, Transition], tuple[Array, Metrics]]
    weight: float = 1.0
    optimizer: optax.GradientTransformation | None = None
    per_policy: bool = False


AuxiliaryFactory = Callable[[EnvSpec, PolicyMapping], AuxiliaryLoss]


def build_auxiliaries(
    factories: Sequence[AuxiliaryFactory], spec: EnvSpec, mapping: PolicyMapping
) -> tuple[AuxiliaryLoss, ...]:
    """Builds and checks the auxiliary losses of one trainer.

    :raises ValueError: a name used twice or reserved (``actor``, ``critic``), or a weight
        that is negative or not finite.
    """
    built = tuple(f(spec, mapping) for f in factories)
    seen: set[str] = set()
    for aux in built:
        if aux.name in RESERVED_NAMES or aux.name in seen:
            raise ValueError(f"auxiliary loss name {aux.name!r} is reserved or used twice")
        if not (math.isfinite(aux.weight) and aux.weight >= 0):
            raise ValueError(f"auxiliary loss {aux.name!r}: weight must be >= 0, got {aux.weight}")
        seen.add(aux.name)
    return built


def init_auxiliaries(auxiliaries: Sequence[AuxiliaryLoss], key: PRNGKey) -> dict[str, Params]:
    """``{name: params}``, each from its own key folded out of ``key``; None if there are none
    (the parameter tree of an algorithm without auxiliaries is unchanged)."""
    if not auxiliaries:
        return None  # type: ignore[return-value]
    return {a.name: a.init(jax.random.fold_in(key, i)) for i, a in enumerate(auxiliaries)}


def auxiliary_loss(
    auxiliaries: Sequence[AuxiliaryLoss], params: Any, batch: Transition
) -> tuple[Array, Metrics]:
    """The weighted sum of the terms and their metrics (``<name>/loss``, ``<name>/<key>``)."""
    total = jnp.zeros((), jnp.float32)
    metrics: Metrics = {}
    for aux in auxiliaries:
        value, extra = aux.loss(params, batch)
        total = total + aux.weight * value
        metrics[f"{aux.name}/loss"] = value
        metrics.update({f"{aux.name}/{k}": v for k, v in extra.items()})
    return total, metrics


def other_agents(num_agents: int) -> np.ndarray:
    """``i32[N, N-1]``: row ``i`` lists the agents other than ``i`` in agent order."""
    return np.array([[j for j in range(num_agents) if j != i] for i in range(num_agents)])


def action_prediction(
    name: str = "action_model", hidden: Sequence[int] = (64,), weight: float = 0.1
) -> AuxiliaryFactory:
    """An auxiliary head that predicts the other agents' discrete actions from each agent's own
    observation (cross-entropy over alive pairs) — the simplest opponent model.

    Its parameters follow the agent -> policy mapping (one set per policy, shared by its
    agents, frozen with it); it reads no actor or critic parameter, so it never changes how
    they train.
    Metrics: ``<name>/loss`` and ``<name>/accuracy``.
    """

    def build(spec: EnvSpec, mapping: PolicyMapping) -> AuxiliaryLoss:
        if not isinstance(spec.action_space, spaces.Discrete):
            raise ValueError(
                f"action_prediction needs Discrete actions, {spec.name!r} has {spec.action_space}"
            )
        n, a = spec.num_agents, spec.action_space.n
        if n < 2:
            raise ValueError("action_prediction needs at least 2 agents")
        example = flatten_obs(
            jax.tree.map(lambda x: x[0], spaces.zeros(spec.observation_space, (n,)))
        )
        mlp = MLP(tuple(hidden), (n - 1) * a, "relu", out_scale=0.01)
        one = Network(
            lambda k: mlp.init(k, example),
            lambda p, obs: jnp.reshape(_apply(mlp, p, flatten_obs(obs)), (n - 1, a)),
        )
        net = share(one, mapping)
        others = jnp.asarray(other_agents(n))

        def loss(params: Any, batch: Transition) -> tuple[Array, Metrics]:
            lead = batch.alive.shape[:-1]
            flat = lambda x: x.reshape((-1, *x.shape[len(lead) :]))
            obs, action, alive = jax.tree.map(flat, (batch.obs, batch.action, batch.alive))
            logits = jax.vmap(net.apply, in_axes=(None, 0))(params.aux[name], obs)
            target = action[:, others]  # [B, N, N-1]
            pair = (alive[:, :, None] & alive[:, others]).astype(jnp.float32)
            log_p = jax.nn.log_softmax(logits)
            nll = -jnp.take_along_axis(log_p, target[..., None], -1)[..., 0]
            denom = jnp.maximum(pair.sum(), 1.0)
            hit = (jnp.argmax(logits, -1) == target).astype(jnp.float32)
            return (nll * pair).sum() / denom, {"accuracy": (hit * pair).sum() / denom}

        return AuxiliaryLoss(name, net.init, loss, weight, per_policy=True)

    return build


def _apply(module: Any, params: Params, x: Array) -> Array:
    """``module.apply`` typed as returning one array (Flax's stub allows a tuple)."""
    out: Array = module.apply(params, x)
    return out
