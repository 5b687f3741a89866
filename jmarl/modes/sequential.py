"""Sequential training: one policy learns while the others are frozen, round-robin.

``sequential(trainer, turn_length)`` wraps any algorithm whose learner state has per-policy
``trainable`` flags (:mod:`jmarl.algos.base`): policy ``k`` (in ``mapping.policy_ids`` order;
a group under ``grouped`` sharing) learns during updates ``[k * L, (k + 1) * L)`` modulo
``P * L``, and every other policy's parameters and optimizer moments stay bit-identical
meanwhile. Everything still runs inside the one jitted training program.

>>> import jax, jmarl
>>> from jmarl.testing import make_probe_env
>>> env = make_probe_env(num_agents=2)
>>> cfg = jmarl.PPOConfig(num_envs=2, rollout_length=3, num_minibatches=1, num_epochs=1)
>>> trainer = sequential(jmarl.make_ppo(env, cfg, 24, sharing="independent"), turn_length=2)
>>> jax.jit(trainer.train)(jax.random.key(0)).metrics["learning_policy"].tolist()
[0, 0, 1, 1]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from jmarl.algos.base import Metrics, Trainer, TrainerState, TrainOutput
from jmarl.config_check import ConfigError
from jmarl.types import PRNGKey


def check_sequential(trainer: Trainer, turn_length: int) -> None:
    """A :class:`ConfigError` naming why ``trainer`` cannot train sequentially with turns of
    ``turn_length`` updates."""
    learner = jax.eval_shape(trainer.init_learner, jax.random.key(0))
    if not hasattr(learner, "trainable"):
        raise ConfigError(
            "--mode sequential needs an algorithm whose learner state has per-policy "
            f"'trainable' flags; {type(learner).__name__} has none"
        )
    policies = len(trainer.mapping.policy_ids)
    if policies < 2:
        raise ConfigError(
            "--mode sequential takes turns between policies, but the mapping has one "
            f"({trainer.mapping.policy_ids[0]!r}); use independent, grouped or custom sharing"
        )
    if turn_length < 1 or turn_length * (policies - 1) >= trainer.num_updates:
        raise ConfigError(
            f"--turn-length {turn_length} (updates) with {policies} policies: in "
            f"{trainer.num_updates} updates some policy would never learn; lower "
            "--turn-length or train longer"
        )


def sequential(trainer: Trainer, turn_length: int) -> Trainer:
    """``trainer`` with policies learning in turns of ``turn_length`` updates (module doc);
    metrics gain ``learning_policy`` (the index of the policy that learned in each update).

    :raises ConfigError: no ``trainable`` flags, a single policy, or turns too long for the
        run (see :func:`check_sequential`).
    """
    check_sequential(trainer, turn_length)
    policies = len(trainer.mapping.policy_ids)

    def step(state: TrainerState) -> tuple[TrainerState, Metrics]:
        turn = (state.update // turn_length) % policies
        trainable = jnp.arange(policies) == turn
        learner = state.learner._replace(trainable=trainable)
        state, metrics = trainer.step(state._replace(learner=learner))
        return state, {**metrics, "learning_policy": turn}

    def train(key: PRNGKey) -> TrainOutput:
        state = trainer.init(key)
        state, metrics = jax.lax.scan(lambda s, _: step(s), state, None, trainer.num_updates)
        return TrainOutput(state, metrics)

    return trainer._replace(step=step, train=train)
