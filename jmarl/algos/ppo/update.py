"""One PPO update: GAE over a rollout, then epochs of minibatch gradient steps."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from jmarl.agents.sharing import PolicyMapping, block_flags, where_blocks
from jmarl.algos.auxiliary import AuxiliaryLoss
from jmarl.algos.base import Transition
from jmarl.algos.ppo.config import PPOConfig
from jmarl.algos.ppo.losses import PPOBatch, ppo_loss
from jmarl.algos.ppo.networks import ActorCritic, ActorCriticParams
from jmarl.config_check import INT32_MAX, ConfigError
from jmarl.ops.returns import gae_advantages
from jmarl.ops.turns import turn_gae_advantages
from jmarl.types import Array, PRNGKey


class TrainState(NamedTuple):
    """Parameters and optimizer state (stored once per sharing block), and which policies
    train.

    ``trainable`` ``bool[P]`` (``mapping.policy_ids`` order): the parameters and optimizer
    moments of a policy whose flag is False stay bit-identical through updates, and its
    gradients do not enter the shared gradient clipping. None: every policy trains.
    Auxiliary parameter sets (``params.aux``) laid out per policy (``per_policy``) freeze
    with their policies; other auxiliary sets train whatever the flags.
    """

    params: ActorCriticParams
    opt_state: Any
    trainable: Array | None = None


def _select(
    flags: tuple[Array, ...],
    new: ActorCriticParams,
    old: ActorCriticParams,
    per_policy: frozenset[str] = frozenset(),
) -> Any:
    """Actor, critic and the ``per_policy`` auxiliary sets block by block by ``flags``; the
    other auxiliary sets from ``new``."""
    aux, old_aux = new.aux, old.aux
    if aux is not None and old_aux is not None and per_policy:
        pick = lambda k, v: where_blocks(flags, v, old_aux[k]) if k in per_policy else v
        aux = {k: pick(k, v) for k, v in aux.items()}
    return ActorCriticParams(
        where_blocks(flags, new.actor, old.actor), where_blocks(flags, new.critic, old.critic), aux
    )


def keep_frozen(
    flags: tuple[Array, ...],
    new: TrainState,
    old: TrainState,
    per_policy: frozenset[str] = frozenset(),
) -> TrainState:
    """``new`` with the frozen blocks' parameters and optimizer moments of ``old``.

    Every parameter-shaped part of the optimizer state (Adam's moments) is selected like the
    parameters; step counters are shared by all policies and advance. ``per_policy`` names
    the auxiliary sets laid out per policy block.
    """
    is_params = lambda x: isinstance(x, ActorCriticParams)
    opt_state = jax.tree.map(
        lambda n, o: _select(flags, n, o, per_policy) if is_params(n) else n,
        new.opt_state,
        old.opt_state,
        is_leaf=is_params,
    )
    params = _select(flags, new.params, old.params, per_policy)
    return new._replace(params=params, opt_state=opt_state)


def make_optimizer(
    cfg: PPOConfig, num_updates: int, auxiliaries: Sequence[AuxiliaryLoss] = ()
) -> optax.GradientTransformation:
    """Adam with gradient-norm clipping, applied to actor, critic and each auxiliary set
    separately (labels ``actor``, ``critic`` and the auxiliaries' names).

    Clipping the parts separately keeps large value-loss gradients (returns of tens) from
    shrinking the policy's step. The learning rate decays linearly when ``anneal_lr``. An
    auxiliary loss with its own ``optimizer`` gets that one instead.
    """
    steps = max(num_updates, 1) * cfg.num_epochs * cfg.num_minibatches
    if cfg.anneal_lr and steps > INT32_MAX:  # optax counts optimizer steps in int32
        raise ConfigError(
            f"--anneal-lr over {steps} optimizer steps (updates x --num-epochs x "
            f"--num-minibatches): at most {INT32_MAX} fit optax's step counter; lower --steps "
            "or use --no-anneal-lr"
        )
    lr = optax.linear_schedule(cfg.lr, 0.0, steps) if cfg.anneal_lr else cfg.lr

    def one() -> optax.GradientTransformation:
        return optax.chain(optax.clip_by_global_norm(cfg.max_grad_norm), optax.adam(lr, eps=1e-5))

    def labels(params: ActorCriticParams) -> ActorCriticParams:
        aux = params.aux and {k: jax.tree.map(lambda _, k=k: k, v) for k, v in params.aux.items()}
        return ActorCriticParams(
            jax.tree.map(lambda _: "actor", params.actor),
            jax.tree.map(lambda _: "critic", params.critic),
            aux,
        )

    transforms = {"actor": one(), "critic": one()}
    transforms.update({a.name: a.optimizer or one() for a in auxiliaries})
    return optax.multi_transform(transforms, labels)


def compute_gae(
    traj: Transition, last_value: Array, cfg: PPOConfig, turn_based: bool = False
) -> tuple[Array, Array]:
    """Advantages and value targets ``f32[T, E, N]`` from a rollout and ``V(s_T)`` ``[E, N]``;
    ``turn_based``: along each agent's own actions, rewards credited to its last action
    (:func:`jmarl.ops.turns.turn_gae_advantages`)."""
    value = traj.extras["value"]
    values = jnp.concatenate([value, last_value[None]], axis=0)
    if turn_based:
        adv = turn_gae_advantages(
            traj.reward, traj.discount, traj.alive, values, cfg.gamma, cfg.gae_lambda
        )
    else:
        adv = gae_advantages(traj.reward, cfg.gamma * traj.discount, values, cfg.gae_lambda)
    return adv, adv + value


def shuffle(key: PRNGKey, size: int) -> Array:
    """A random permutation of ``range(size)`` from one single-operand sort of ``uint32``.

    Each entry's sort key holds random high bits and, in its low ``b = bit_length(size - 1)``
    bits, its index XOR a random ``b``-bit mask: the keys are distinct, the index comes back
    from the low bits, and entries whose random bits tie are ordered by the masked index (a
    random relabelling, so no index is favoured). With ``32 - b`` random bits, ties are rare
    (about ``size^2 / 2^(33 - b)`` pairs) and only matter at minibatch boundaries. A sort of one
    operand is ~3.5x faster on CPU than ``jnp.argsort`` (keys plus indices) and ~7x faster
    than ``jax.random.permutation`` (two such sorts). Sizes above ``2^16`` (fewer than 16
    random bits) use ``jnp.argsort`` of random 32-bit keys.
    """
    bits = max(int(size - 1).bit_length(), 1)
    k_keys, k_mask = jax.random.split(key)
    if bits > 16:
        return jnp.argsort(jax.random.bits(k_keys, (size,)))
    low = jnp.uint32((1 << bits) - 1)
    mask = jax.random.bits(k_mask, (), jnp.uint32) & low
    index = jnp.arange(size, dtype=jnp.uint32) ^ mask
    keys = (jax.random.bits(k_keys, (size,), jnp.uint32) & ~low) | index
    return ((jax.lax.sort(keys) & low) ^ mask).astype(jnp.int32)


def _minibatches(batch: PPOBatch, key: PRNGKey, num_minibatches: int) -> PPOBatch:
    """``[T, E, ...]`` -> shuffled ``[M, T*E/M, ...]`` (agents of a step stay together)."""

    def flat(x: Array) -> Array:
        return x.reshape((-1, *x.shape[2:]))

    flat_batch = jax.tree.map(flat, batch)
    size = jax.tree.leaves(flat_batch)[0].shape[0]
    perm = shuffle(key, size)
    return jax.tree.map(lambda x: x[perm].reshape((num_minibatches, -1, *x.shape[1:])), flat_batch)


def _sequence_minibatches(batch: PPOBatch, key: PRNGKey, num_minibatches: int) -> PPOBatch:
    """``[T, E, ...]`` -> ``[M, T, E/M, ...]``: whole sequences of shuffled envs."""
    num_envs = jax.tree.leaves(batch)[0].shape[1]
    perm = shuffle(key, num_envs)

    def split(x: Array) -> Array:
        x = x[:, perm].reshape((x.shape[0], num_minibatches, -1, *x.shape[2:]))
        return jnp.swapaxes(x, 0, 1)

    return jax.tree.map(split, batch)


def make_update(
    ac: ActorCritic,
    optimizer: optax.GradientTransformation,
    cfg: PPOConfig,
    mapping: PolicyMapping | None = None,
    auxiliaries: Sequence[AuxiliaryLoss] = (),
    turn_based: bool = False,
) -> Callable[[TrainState, Transition, Array, PRNGKey], tuple[TrainState, dict[str, Array]]]:
    """Returns ``update(train_state, traj[T, E], last_value[E, N], key) -> (state, metrics)``.

    ``turn_based`` (the env's ``spec.turn_based``): advantages follow each agent's own actions.

    Metrics are averaged over all minibatch steps of the update. With ``mapping`` and a
    ``train_state.trainable``, frozen policies keep their parameters and optimizer moments.
    """
    grad_fn = jax.value_and_grad(ppo_loss, has_aux=True)
    per_policy = frozenset(a.name for a in auxiliaries if a.per_policy)
    split = _minibatches if ac.gru_size is None else _sequence_minibatches

    def minibatch_step(ts: TrainState, mb: PPOBatch) -> tuple[TrainState, dict[str, Array]]:
        (_, metrics), grads = grad_fn(ts.params, mb, ac, cfg, auxiliaries)
        flags = None
        if mapping is not None and ts.trainable is not None:
            flags = block_flags(mapping, ts.trainable)
            grads = _select(flags, grads, jax.tree.map(jnp.zeros_like, grads), per_policy)
        updates, opt_state = optimizer.update(grads, ts.opt_state, ts.params)
        params = optax.apply_updates(ts.params, updates)
        metrics["grad_norm"] = optax.tree.norm(grads)
        new = ts._replace(params=params, opt_state=opt_state)
        return (new if flags is None else keep_frozen(flags, new, ts, per_policy)), metrics

    def epoch(
        carry: tuple[TrainState, PPOBatch], key: PRNGKey
    ) -> tuple[tuple[TrainState, PPOBatch], dict[str, Array]]:
        ts, batch = carry
        mbs = split(batch, key, cfg.num_minibatches)
        ts, metrics = jax.lax.scan(minibatch_step, ts, mbs)
        return (ts, batch), metrics

    def update(
        ts: TrainState, traj: Transition, last_value: Array, key: PRNGKey
    ) -> tuple[TrainState, dict[str, Array]]:
        adv, targets = compute_gae(traj, last_value, cfg, turn_based)
        batch = PPOBatch(traj, adv, targets)
        keys = jax.random.split(key, cfg.num_epochs)
        (ts, _), metrics = jax.lax.scan(epoch, (ts, batch), keys)
        return ts, jax.tree.map(jnp.mean, metrics)

    return update
