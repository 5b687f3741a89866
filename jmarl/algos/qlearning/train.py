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
from jmarl.algos.qlearning.recurrent import (
    example_sequence,
    make_init_carry,
    make_recurrent_act,
    recurrent_q_loss,
    rollout_sequences,
)
from jmarl.algos.qlearning.update import (
    QActing,
    QState,
    Replay,
    epsilon_schedule,
    make_learn,
    make_optimizer,
    transition_replay,
)
from jmarl.algos.replay import (
    ReplayState,
    check_simultaneous,
    example_item,
    first_learning_update,
    init_replay,
)
from jmarl.algos.rollout import make_trainer, no_carry, num_updates_for
from jmarl.env.base import Env, TimeStep
from jmarl.types import Array, PRNGKey

ALGO_OF_MIXER = {"none": "iql", "vdn": "vdn", "qmix": "qmix"}


def explore(q: Array, mask: Array, key: PRNGKey, acting: QActing, deterministic: bool) -> Array:
    """Each agent's greedy allowed action on its own ``Q_i`` ``[..., A]``, replaced with
    probability ``acting.epsilon`` by a uniformly random allowed action (never when
    ``deterministic``)."""
    action = greedy(q, mask)
    if deterministic:
        return action
    k_random, k_explore = jax.random.split(key)
    random = greedy(jax.random.uniform(k_random, q.shape), mask)
    return jnp.where(jax.random.uniform(k_explore, action.shape) < acting.epsilon, random, action)


def make_act(nets: QNetworks) -> Callable[..., ActOutput]:
    """``act(acting, ts [E], key, carry, deterministic=False) -> ActOutput``: epsilon-greedy
    actions (:func:`explore`); no extras. Recurrent utilities:
    :func:`~jmarl.algos.qlearning.recurrent.make_recurrent_act`."""
    if nets.gru_size is not None:
        return make_recurrent_act(nets, explore)

    def act(
        acting: QActing, ts: TimeStep, key: PRNGKey, carry: Carry, deterministic: bool = False
    ) -> ActOutput:
        q = nets.q_values(acting.q, ts.obs, batch_dims=1)
        mask = jnp.ones(q.shape, bool) if ts.action_mask is None else ts.action_mask
        return ActOutput(explore(q, mask, key, acting, deterministic), {}, carry)

    return act


def _replay(env: Env, nets: QNetworks, cfg: QConfig) -> tuple[Replay, ReplayState]:
    """How updates store and replay experience, and the empty buffer (transitions, or whole
    rollouts per env for recurrent utilities)."""
    if nets.gru_size is None:
        return transition_replay(nets, cfg), init_replay(
            example_item(env.spec, nets.num_actions, cfg.mixer == "qmix"), cfg.buffer_size
        )
    length = cfg.rollout_length
    example = example_sequence(env.spec, length, nets.num_actions, nets.gru_size)
    replay = Replay(
        lambda traj, last_ts: rollout_sequences(traj, last_ts, nets.num_actions),
        recurrent_q_loss,
        max(1, cfg.batch_size // length),
    )
    return replay, init_replay(example, cfg.buffer_size // length)


def make(env: Env, cfg: QConfig, total_steps: int, mapping: PolicyMapping) -> Trainer:
    """Builds IQL / VDN / QMIX training for ``env`` (see the module doc).

    :param total_steps: env steps (per seed) to train for; rounded down to whole updates.
    :raises ConfigError: the env does not suit the algorithm (continuous actions, no global
        state for QMIX, turn-based games), or no gradient step would run (``learning_starts``
        too late).
    """
    algo = ALGO_OF_MIXER[cfg.mixer]
    check_simultaneous(env.spec, algo)
    nets = make_q_networks(env.spec, mapping, cfg, algo)
    num_updates = num_updates_for(cfg.steps_per_update, total_steps)
    start = first_learning_update(cfg.learning_starts, cfg.steps_per_update, num_updates, algo)
    optimizer = make_optimizer(cfg, num_updates)
    replay, empty = _replay(env, nets, cfg)
    epsilon0 = epsilon_schedule(cfg, num_updates)(0)

    def init_learner(key: PRNGKey) -> QState:
        params = nets.init(key)
        return QState(
            acting=QActing(params.agents, jnp.asarray(epsilon0, jnp.float32)),
            mixer=params.mixer,
            target=params,
            opt_state=optimizer.init(params),
            replay=empty,
            updates=jnp.zeros((), jnp.int32),
            grad_steps=jnp.zeros((), jnp.int32),
            trainable=jnp.ones((len(mapping.policy_ids),), bool),
        )

    return make_trainer(
        env,
        init_learner=init_learner,
        act=make_act(nets),
        learn=make_learn(nets, optimizer, cfg, mapping, (num_updates, start), replay),
        acting_params=lambda state: state.acting,
        init_carry=no_carry
        if nets.gru_size is None
        else make_init_carry(nets.gru_size, env.spec.num_agents),
        num_envs=cfg.num_envs,
        rollout_length=cfg.rollout_length,
        num_updates=num_updates,
        mapping=mapping,
        config=cfg,
    )
