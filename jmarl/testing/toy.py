"""A toy algorithm for testing drivers of the contract (the run driver, the bridge): REINFORCE
on a linear softmax policy, optionally with a policy carry.

It uses nothing but :mod:`jmarl.algos.base` and its pieces, so a driver that runs it runs any
registered algorithm::

    algo = toy_algorithm("toy", count_steps=True)
    jmarl.algos.register(algo)

With ``count_steps`` the policy carry is ``int32[E]``: the number of the env's next action
since its carry was initialised, starting at 1 (:data:`CARRY_START`, not 0, so that a carry
zeroed instead of re-initialised shows). ``act`` reports the carry it was given as the extra
``"step"`` ``int32[E, N]`` and returns it plus one; ``act`` never resets it itself, so it counts
an env's steps in the current episode exactly when the driver re-initialises the carry rows
(``init_carry``) of envs whose episode starts. ``learn`` reports the mean ``"step"`` extra of
the rows it learned from (``mean_step``), so a test can see that stored extras reach it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jmarl.agents.sharing import PolicyMapping, share
from jmarl.algos.base import ActOutput, Algorithm, Carry, Metrics, Trainer, Transition
from jmarl.algos.rollout import make_trainer, no_carry, num_updates_for
from jmarl.env import spaces
from jmarl.env.base import Env, TimeStep
from jmarl.nn.distributions import make_categorical
from jmarl.nn.network import Network
from jmarl.ops.losses import masked_mean
from jmarl.types import Array, PRNGKey

CARRY_START = 1
"""The value :func:`make_toy`'s ``init_carry`` starts every env's step counter at."""


@dataclass(frozen=True)
class ToyConfig:
    """:param num_envs: envs per update. :param rollout_length: steps per env per update.
    :param lr: SGD learning rate. :param count_steps: keep a step counter as policy carry."""

    num_envs: int = 4
    rollout_length: int = 8
    lr: float = 0.1
    count_steps: bool = False


class ToyState(NamedTuple):
    params: Any
    opt_state: Any


def _rewards_to_go(traj: Transition) -> Array:
    """``f32[T, E, N]``: each step's reward plus the discounted rewards after it."""

    def back(later: Array, x: tuple[Array, Array]) -> tuple[Array, Array]:
        reward, discount = x
        g = reward + discount * later
        return g, g

    start = jnp.zeros_like(traj.reward[0])
    return jax.lax.scan(back, start, (traj.reward, traj.discount), reverse=True)[1]


def _step_counter(count: bool) -> tuple[Any, Any]:
    """``init_carry(E)`` and ``advance(carry, ts) -> (extras, carry)`` of the carry."""
    if not count:
        return no_carry, lambda carry, ts: ({}, carry)

    def init_carry(num_envs: int) -> Carry:
        return jnp.full((num_envs,), CARRY_START, jnp.int32)

    def advance(carry: Array, ts: TimeStep) -> tuple[dict[str, Array], Array]:
        step = jnp.broadcast_to(carry[:, None], ts.alive.shape)
        return {"step": step}, carry + 1

    return init_carry, advance


def make_toy(env: Env, cfg: ToyConfig, total_steps: int, mapping: PolicyMapping) -> Trainer:
    """REINFORCE with rewards-to-go over one rollout, one linear policy per sharing block.

    :raises TypeError: the env's actions are not ``Discrete`` or its observations not a flat
        ``Box``.
    """
    obs_space, act_space = env.spec.observation_space, env.spec.action_space
    if (
        not isinstance(act_space, spaces.Discrete)
        or not isinstance(obs_space, spaces.Box)
        or len(obs_space.shape) != 1
    ):
        raise TypeError(
            "the toy algorithm takes Discrete actions and flat Box observations, "
            f"got {act_space} and {obs_space}"
        )
    n_actions, obs_dim = act_space.n, obs_space.shape[0]
    linear = Network(
        lambda k: 0.01 * jax.random.normal(k, (obs_dim, n_actions)), lambda w, x: x @ w
    )
    net = share(linear, mapping)
    logits_of = jax.vmap(net.apply, in_axes=(None, 0))
    dist = make_categorical(n_actions)
    optimizer = optax.sgd(cfg.lr)
    init_carry, advance = _step_counter(cfg.count_steps)

    def act(
        params: Any, ts: TimeStep, key: PRNGKey, carry: Carry, deterministic: bool = False
    ) -> ActOutput:
        logits = logits_of(params, ts.obs.astype(jnp.float32))
        if deterministic:
            action = dist.mode(logits, ts.action_mask)
        else:
            action = dist.sample(key, logits, ts.action_mask)
        extras, carry = advance(carry, ts)
        return ActOutput(action, extras, carry)

    def loss(params: Any, traj: Transition) -> Array:
        logits = jax.vmap(logits_of, in_axes=(None, 0))(params, traj.obs.astype(jnp.float32))
        log_prob = dist.log_prob(logits, traj.action, traj.action_mask)
        return -masked_mean(log_prob * _rewards_to_go(traj), traj.alive)

    def learn(
        state: ToyState, traj: Transition, last_ts: TimeStep, key: PRNGKey
    ) -> tuple[ToyState, Metrics]:
        del last_ts, key
        value, grads = jax.value_and_grad(loss)(state.params, traj)
        updates, opt_state = optimizer.update(grads, state.opt_state)
        metrics = {"loss": value}
        if "step" in traj.extras:
            metrics["mean_step"] = masked_mean(traj.extras["step"].astype(jnp.float32), traj.alive)
        return ToyState(optax.apply_updates(state.params, updates), opt_state), metrics

    def init_learner(key: PRNGKey) -> ToyState:
        params = net.init(key)
        return ToyState(params, optimizer.init(params))

    return make_trainer(
        env,
        init_learner=init_learner,
        act=act,
        learn=learn,
        acting_params=lambda state: state.params,
        init_carry=init_carry,
        num_envs=cfg.num_envs,
        rollout_length=cfg.rollout_length,
        num_updates=num_updates_for(cfg.num_envs * cfg.rollout_length, total_steps),
        mapping=mapping,
        config=cfg,
    )


def toy_algorithm(name: str = "toy", count_steps: bool = False) -> Algorithm:
    """The toy as an :class:`~jmarl.algos.base.Algorithm` named ``name`` (register it to use
    it by name); ``count_steps`` is fixed to the given value."""
    fixed = (("count_steps", count_steps),)
    summary = "a test algorithm: REINFORCE on a linear policy" + (
        " with a step-counting carry" if count_steps else ""
    )
    return Algorithm(name, ToyConfig, make_toy, section="toy", fixed=fixed, summary=summary)
