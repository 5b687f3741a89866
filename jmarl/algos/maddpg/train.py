"""MADDPG on the algorithm contract: ``make(env, cfg, total_steps, mapping) -> Trainer``.

Continuous actions (a bounded ``Box``: tanh-squashed actors, Gaussian exploration noise) or
discrete ones (Gumbel-softmax, straight-through), with action masks respected.

>>> import jax, jmarl
>>> from jmarl.algos.maddpg import MADDPGConfig, make
>>> env = jmarl.make("simple_spread", num_agents=2, max_steps=5, continuous_actions=True)
>>> cfg = MADDPGConfig(num_envs=2, rollout_length=5, buffer_size=64, batch_size=8,
...                    learning_starts=0, hidden_sizes=(8,))
>>> trainer = make(env, cfg, 30, jmarl.make_policy_mapping(env.spec, "shared"))
>>> jax.jit(trainer.train)(jax.random.key(0)).metrics["update"].tolist()
[1, 2, 3]
"""

from __future__ import annotations

from collections.abc import Callable

import jax.numpy as jnp
import optax

from jmarl.agents.sharing import PolicyMapping
from jmarl.algos.base import ActOutput, Carry, Trainer
from jmarl.algos.maddpg.config import MADDPGConfig
from jmarl.algos.maddpg.networks import MADDPGNetworks, make_networks
from jmarl.algos.maddpg.update import MADDPGActing, MADDPGState, make_learn
from jmarl.algos.replay import check_simultaneous, example_item, first_learning_update, init_replay
from jmarl.algos.rollout import make_trainer, no_carry, num_updates_for
from jmarl.env.base import Env, TimeStep
from jmarl.types import PRNGKey


def make_act(nets: MADDPGNetworks) -> Callable[..., ActOutput]:
    """``act(acting, ts [E], key, carry, deterministic=False) -> ActOutput``: every agent's
    actor on its own observation, explored per :class:`~jmarl.algos.maddpg.networks.ActionCodec`."""

    def act(
        acting: MADDPGActing, ts: TimeStep, key: PRNGKey, carry: Carry, deterministic: bool = False
    ) -> ActOutput:
        out = nets.actor(acting.actor, ts.obs, batch_dims=1)
        mask = jnp.ones(out.shape, bool) if ts.action_mask is None else ts.action_mask
        return ActOutput(nets.codec.act(out, key, acting.noise, mask, deterministic), {}, carry)

    return act


def _optimizer(lr: float, cfg: MADDPGConfig) -> optax.GradientTransformation:
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(lr))


def make(env: Env, cfg: MADDPGConfig, total_steps: int, mapping: PolicyMapping) -> Trainer:
    """Builds MADDPG training for ``env``.

    :param total_steps: env steps (per seed) to train for; rounded down to whole updates.
    :raises ConfigError: unbounded or unsupported action spaces, turn-based games, or
        ``learning_starts`` too late to learn.
    """
    check_simultaneous(env.spec, "maddpg")
    nets = make_networks(env.spec, mapping, cfg)
    num_updates = num_updates_for(cfg.steps_per_update, total_steps)
    start = first_learning_update(cfg.learning_starts, cfg.steps_per_update, num_updates, "maddpg")
    optimizers = (_optimizer(cfg.actor_lr, cfg), _optimizer(cfg.critic_lr, cfg))
    noise = optax.linear_schedule(
        cfg.noise_start, cfg.noise_finish, max(1, int(cfg.noise_decay * num_updates))
    )
    example = example_item(env.spec, nets.codec.param_size)

    def init_learner(key: PRNGKey) -> MADDPGState:
        actor, critic = nets.init(key)
        return MADDPGState(
            acting=MADDPGActing(actor, jnp.asarray(noise(0), jnp.float32)),
            critic=critic,
            target_actor=actor,
            target_critic=critic,
            actor_opt=optimizers[0].init(actor),
            critic_opt=optimizers[1].init(critic),
            replay=init_replay(example, cfg.buffer_size),
            updates=jnp.zeros((), jnp.int32),
            trainable=jnp.ones((len(mapping.policy_ids),), bool),
        )

    return make_trainer(
        env,
        init_learner=init_learner,
        act=make_act(nets),
        learn=make_learn(nets, optimizers, cfg, mapping, noise, start),
        acting_params=lambda state: state.acting,
        init_carry=no_carry,
        num_envs=cfg.num_envs,
        rollout_length=cfg.rollout_length,
        num_updates=num_updates,
        mapping=mapping,
        config=cfg,
    )
