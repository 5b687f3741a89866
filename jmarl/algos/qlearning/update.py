"""One Q-learning update: store a rollout's transitions, then gradient steps on replayed
batches, with target-network updates and the exploration schedule."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jmarl.agents.sharing import PolicyMapping, block_flags, where_block_trees, where_blocks
from jmarl.algos.base import Metrics, Transition
from jmarl.algos.qlearning.config import QConfig
from jmarl.algos.qlearning.losses import q_loss
from jmarl.algos.qlearning.networks import QNetworks, QParams
from jmarl.algos.replay import ReplayState, add, gradient_steps, rollout_items, sample
from jmarl.env.base import TimeStep
from jmarl.types import Array, Params, PRNGKey


class QActing(NamedTuple):
    """What ``act`` needs: the agents' Q parameters (one entry per sharing block) and the
    current exploration rate ``epsilon`` ``f32[]``."""

    q: tuple[Params, ...]
    epsilon: Array


class QState(NamedTuple):
    """The learner state of Q-learning.

    ``acting`` the acting parameters and epsilon; ``mixer`` the mixer's parameters;
    ``target`` the target networks; ``replay`` the buffer of
    :class:`~jmarl.algos.replay.ReplayItem` s; ``updates`` and ``grad_steps`` ``i32[]``
    counters; ``trainable`` ``bool[P]`` (``mapping.policy_ids`` order): a policy whose flag
    is False keeps its parameters and Adam moments bit-identical, and its gradients stay out
    of the clipping norm (the mixer always trains).
    """

    acting: QActing
    mixer: Params
    target: QParams
    opt_state: Any
    replay: ReplayState
    updates: Array
    grad_steps: Array
    trainable: Array

    @property
    def params(self) -> QParams:
        return QParams(self.acting.q, self.mixer)


def epsilon_schedule(cfg: QConfig, num_updates: int) -> optax.Schedule:
    """Epsilon after ``u`` updates: linear from ``epsilon_start`` to ``epsilon_finish`` over
    the first ``epsilon_decay * num_updates`` updates, then constant."""
    steps = max(1, int(cfg.epsilon_decay * num_updates))
    return optax.linear_schedule(cfg.epsilon_start, cfg.epsilon_finish, steps)


def make_optimizer(cfg: QConfig, num_updates: int) -> optax.GradientTransformation:
    """Adam with global-norm clipping; the learning rate decays linearly to 0 over all
    gradient steps when ``anneal_lr``."""
    total = max(1, num_updates * cfg.num_epochs)
    lr = optax.linear_schedule(cfg.lr, 0.0, total) if cfg.anneal_lr else cfg.lr
    return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(lr, eps=1e-5))


Learn = Callable[[QState, Transition, TimeStep, PRNGKey], tuple[QState, Metrics]]


class Replay(NamedTuple):
    """How an update stores and replays experience: ``to_items(traj, last_ts)`` (items with a
    leading axis), ``loss(params, target, batch, nets, gamma, double_q)`` and ``batch_size``
    items per gradient step."""

    to_items: Callable[[Transition, TimeStep], Any]
    loss: Callable[..., tuple[Array, Metrics]]
    batch_size: int


def transition_replay(nets: QNetworks, cfg: QConfig) -> Replay:
    """Feed-forward utilities: single transitions, ``cfg.batch_size`` per gradient step; the
    global state is stored only for QMIX's mixer."""
    with_state = cfg.mixer == "qmix"
    return Replay(
        lambda traj, last_ts: rollout_items(traj, last_ts, nets.num_actions, with_state),
        q_loss,
        cfg.batch_size,
    )


def make_learn(
    nets: QNetworks,
    optimizer: optax.GradientTransformation,
    cfg: QConfig,
    mapping: PolicyMapping,
    schedule: tuple[int, int],
    replay: Replay,
) -> Learn:
    """``learn(state, traj [T, E], last_ts [E], key) -> (state, metrics)``: adds the rollout to
    the buffer; from update ``start_update`` on (counting from 1), takes ``cfg.num_epochs``
    gradient steps on replayed batches; sets epsilon for the next rollout.

    :param schedule: ``(num_updates, start_update)``.
    """
    num_updates, start_update = schedule
    epsilon = epsilon_schedule(cfg, num_updates)
    loss_fn = lambda p, t, b: replay.loss(p, t, b, nets, cfg.gamma, cfg.double_q)

    def grad_step(state: QState, key: PRNGKey) -> tuple[QState, Metrics]:
        batch = sample(state.replay, key, replay.batch_size)
        (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(
            state.params, state.target, batch
        )
        flags = block_flags(mapping, state.trainable)
        zeros = jax.tree.map(jnp.zeros_like, grads.agents)  # frozen: out of the clipping norm
        grads = grads._replace(agents=where_blocks(flags, grads.agents, zeros))
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        opt_state = where_block_trees(flags, opt_state, state.opt_state, state.params.agents)
        params = optax.apply_updates(state.params, updates)
        params = params._replace(agents=where_blocks(flags, params.agents, state.params.agents))
        steps = state.grad_steps + 1
        refresh = steps % cfg.target_update_interval == 0
        polyak = optax.incremental_update(params, state.target, cfg.tau)
        target = jax.tree.map(lambda new, old: jnp.where(refresh, new, old), polyak, state.target)
        acting = state.acting._replace(q=params.agents)
        new = state._replace(
            acting=acting, mixer=params.mixer, target=target, opt_state=opt_state, grad_steps=steps
        )
        return new, {"loss": loss, **metrics}

    train = gradient_steps(grad_step, cfg.num_epochs, ("loss", "q_taken", "td_abs"))

    def learn(
        state: QState, traj: Transition, last_ts: TimeStep, key: PRNGKey
    ) -> tuple[QState, Metrics]:
        state = state._replace(replay=add(state.replay, replay.to_items(traj, last_ts)))
        updates = state.updates + 1
        state, metrics = train(state, updates >= start_update, key)
        eps = jnp.asarray(epsilon(updates), jnp.float32)
        state = state._replace(acting=state.acting._replace(epsilon=eps), updates=updates)
        return state, {**metrics, "epsilon": eps, "buffer_size": state.replay.size}

    return learn
