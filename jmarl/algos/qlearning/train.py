"""Multi-agent Q-learning on the algorithm contract: ``make(env, cfg, total_steps, mapping)``.

``cfg.mixer`` picks the algorithm: ``none`` (IQL), ``vdn`` or ``qmix``.

>>> import jax, jmarl
>>> from jmarl.algos.qlearning import QConfig, make
>>> env = jmarl.make("two_step")
>>> cfg = QConfig(num_envs=4, rollout_length=2, buffer_size=64, batch_size=8, learning_starts=0,
...               mixer="qmix")
>>> trainer = make(env, cfg, total_steps=24, mapping=jmarl.make_policy_mapping(env.spec, "shared"))
>>> out = jax.jit(trainer.train)(jax.random.key(0))
>>> out.metrics["update"].tolist()
[1, 2, 3]
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp

from jmarl.agents.sharing import PolicyMapping
from jmarl.algos.base import ActOutput, Carry, Trainer
from jmarl.algos.qlearning.config import QConfig
from jmarl.algos.qlearning.losses import greedy
from jmarl.algos.qlearning.networks import QNetworks, make_q_networks
from jmarl.algos.qlearning.update import (
    QActing,
    QState,
    epsilon_schedule,
    make_learn,
    make_optimizer,
)
from jmarl.algos.replay import example_item, first_learning_update, init_replay
from jmarl.algos.rollout import make_trainer, no_carry, num_updates_for
from jmarl.env.base import Env, TimeStep
from jmarl.types import PRNGKey

ALGO_OF_MIXER = {"none": "iql", "vdn": "vdn", "qmix": "qmix"}


def make_act(nets: QNetworks) -> Callable[..., ActOutput]:
    """``act(acting, ts [E], key, carry, deterministic=False) -> ActOutput``: each agent's
    greedy allowed action on its own ``Q_i``, replaced with probability ``acting.epsilon`` by
    a uniformly random allowed action (never when ``deterministic``). No extras."""

    def act(
        acting: QActing, ts: TimeStep, key: PRNGKey, carry: Carry, deterministic: bool = False
    ) -> ActOutput:
        q = nets.q_values(acting.q, ts.obs, batch_dims=1)
        mask = jnp.ones(q.shape, bool) if ts.action_mask is None else ts.action_mask
        action = greedy(q, mask)
        if not deterministic:
            k_random, k_explore = jax.random.split(key)
            random = greedy(jax.random.uniform(k_random, q.shape), mask)
            explore = jax.random.uniform(k_explore, action.shape) < acting.epsilon
            action = jnp.where(explore, random, action)
        return ActOutput(action, {}, carry)

    return act


def make(env: Env, cfg: QConfig, total_steps: int, mapping: PolicyMapping) -> Trainer:
    """Builds IQL / VDN / QMIX training for ``env`` (see the module doc).

    :param total_steps: env steps (per seed) to train for; rounded down to whole updates.
    :raises ConfigError: the env does not suit the algorithm (continuous actions, no global
        state for QMIX), or no gradient step would run (``learning_starts`` too late).
    """
    algo = ALGO_OF_MIXER[cfg.mixer]
    nets = make_q_networks(env.spec, mapping, cfg, algo)
    num_updates = num_updates_for(cfg.steps_per_update, total_steps)
    start = first_learning_update(cfg.learning_starts, cfg.steps_per_update, num_updates, algo)
    optimizer = make_optimizer(cfg, num_updates)
    example = example_item(env.spec, nets.num_actions)
    epsilon0 = epsilon_schedule(cfg, num_updates)(0)

    def init_learner(key: PRNGKey) -> QState:
        params = nets.init(key)
        return QState(
            acting=QActing(params.agents, jnp.asarray(epsilon0, jnp.float32)),
            mixer=params.mixer,
            target=params,
            opt_state=optimizer.init(params),
            replay=init_replay(example, cfg.buffer_size),
            updates=jnp.zeros((), jnp.int32),
            grad_steps=jnp.zeros((), jnp.int32),
            trainable=jnp.ones((len(mapping.policy_ids),), bool),
        )

    return make_trainer(
        env,
        init_learner=init_learner,
        act=make_act(nets),
        learn=make_learn(nets, optimizer, cfg, mapping, num_updates, start),
        acting_params=lambda state: state.acting,
        init_carry=no_carry,
        num_envs=cfg.num_envs,
        rollout_length=cfg.rollout_length,
        num_updates=num_updates,
        mapping=mapping,
        config=cfg,
    )
