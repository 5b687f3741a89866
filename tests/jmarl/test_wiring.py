"""Wiring of the JAX training path, checked by hand on the probe env (``jmarl.testing.probes``).

Each test names a way the pieces can be connected wrongly while every unit still passes: episode
ends read from the wrong timestep, masks dropped on one side, dead agents leaking into a loss
term, reported returns that are not the sum of the rewards.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from jmarl.algos.base import Transition
from jmarl.algos.ppo import ActorCritic, ActorCriticParams, make_actor_critic
from jmarl.algos.ppo.losses import PPOBatch, ppo_loss
from jmarl.algos.ppo.update import compute_gae
from jmarl.algos.rollout import init_rollout_state, make_rollout
from jmarl.env.base import Env
from jmarl.testing import MASKED_PENALTY, make_probe_env, probe_episode_return

CFG = jmarl.PPOConfig(
    num_envs=2, rollout_length=7, num_epochs=2, num_minibatches=1, hidden_sizes=(8,)
)
LOSS_TERMS = ("loss", "policy_loss", "value_loss", "entropy", "approx_kl", "clip_fraction")


class Rollout(NamedTuple):
    ac: ActorCritic
    cfg: jmarl.PPOConfig
    params: ActorCriticParams
    traj: Transition


def rollout(env: Env, cfg: jmarl.PPOConfig = CFG, seed: int = 0, algo: str = "mappo") -> Rollout:
    """One rollout ``[T, E]`` of a freshly initialised policy, collected with the trainer's
    own ``act``."""
    cfg = jmarl.ppo_config_for(algo, cfg)
    trainer = jmarl.make_ppo(env, cfg, cfg.steps_per_update)
    k_params, k_env, k_roll = jax.random.split(jax.random.key(seed), 3)
    params = trainer.acting_params(trainer.init_learner(k_params))
    rs = init_rollout_state(env, k_env, cfg.num_envs)
    _, traj = jax.jit(make_rollout(env, trainer.act, cfg.rollout_length))(params, rs, k_roll)
    return Rollout(make_actor_critic(env.spec, trainer.mapping, cfg), cfg, params, traj)


def flat_batch(r: Rollout) -> PPOBatch:
    """The whole rollout as one loss batch ``[T*E, N, ...]`` with its GAE outputs."""
    last_value = jnp.zeros_like(r.traj.reward[0])  # V(s_T) does not matter to these checks
    adv, targets = compute_gae(r.traj, last_value, r.cfg)
    flat = lambda x: x.reshape((-1, *x.shape[2:]))
    return jax.tree.map(flat, PPOBatch(r.traj, adv, targets))


def test_discount_is_zero_exactly_at_each_episodes_last_transition() -> None:
    # episodes of 3 steps, T = 7: the transitions at t = 2 and t = 5 end an episode
    traj = rollout(make_probe_env(num_agents=2, episode_length=3)).traj
    expected = np.array([1, 1, 0, 1, 1, 0, 1], np.float32)[:, None, None]
    np.testing.assert_array_equal(traj.discount, np.broadcast_to(expected, traj.discount.shape))


def test_discount_is_zero_where_an_agent_dies_and_at_the_episode_end() -> None:
    # the last agent terminates at t = 0 of each 3-step episode and sits out t = 1, 2
    traj = rollout(make_probe_env(num_agents=2, episode_length=3, death_step=0)).traj
    t = np.arange(7) % 3
    np.testing.assert_array_equal(traj.alive[:, :, 1], np.broadcast_to((t == 0)[:, None], (7, 2)))
    np.testing.assert_array_equal(traj.alive[:, :, 0], True)
    # the dying agent's only rows end its episode; the survivor's end at t = 2
    alive_1 = np.asarray(traj.alive)[:, :, 1]
    np.testing.assert_array_equal(np.asarray(traj.discount)[:, :, 1][alive_1], 0.0)
    survivor = np.broadcast_to(np.where(t == 2, 0.0, 1.0)[:, None], (7, 2))
    np.testing.assert_array_equal(traj.discount[:, :, 0], survivor)


def test_no_masked_action_is_ever_sampled() -> None:
    # half of the 4 actions are masked at every step; 16 envs x 30 steps x 3 agents = 1440 draws
    env = make_probe_env(num_agents=3, num_actions=4, episode_length=5)
    cfg = jmarl.PPOConfig(num_envs=16, rollout_length=30, num_minibatches=1, hidden_sizes=(8,))
    traj = rollout(env, cfg).traj
    taken = np.take_along_axis(np.asarray(traj.action_mask), np.asarray(traj.action)[..., None], -1)
    assert taken.all(), f"{(~taken).sum()} masked actions were sampled"
    assert np.asarray(traj.reward).min() > MASKED_PENALTY / 2  # the env saw none either


@pytest.mark.parametrize("algo", ["ippo", "mappo"])
def test_the_loss_starts_each_update_at_ratio_one(algo: str) -> None:
    # the loss recomputes log-probs with the same masks, inputs and parameters as the rollout:
    # before any gradient step rho = 1 everywhere (approx KL 0, nothing clipped)
    env = make_probe_env(num_agents=3, num_actions=4, episode_length=4)
    r = rollout(env, algo=algo)
    _, metrics = ppo_loss(r.params, flat_batch(r), r.ac, r.cfg)
    assert float(metrics["approx_kl"]) < 1e-7, metrics["approx_kl"]
    assert float(metrics["clip_fraction"]) == 0.0


def test_a_whole_training_step_at_a_tiny_learning_rate_keeps_ratio_one() -> None:
    # through rollout, GAE, shuffling into minibatches and the update: with lr = 1e-9 the
    # parameters barely move, so any KL comes from rows paired with the wrong data
    env = make_probe_env(num_agents=3, num_actions=4, episode_length=4)
    cfg = jmarl.PPOConfig(
        num_envs=4, rollout_length=6, num_minibatches=4, num_epochs=2, lr=1e-9, hidden_sizes=(8,)
    )
    trainer = jmarl.make_ppo(
        env,
        cfg,
        2 * cfg.steps_per_update,
        "grouped",
        agent_groups={"g": ["agent_0", "agent_2"], "h": ["agent_1"]},
    )
    metrics = jax.jit(trainer.train)(jax.random.key(0)).metrics
    np.testing.assert_array_less(np.asarray(metrics["approx_kl"]), 1e-7)
    np.testing.assert_array_equal(metrics["clip_fraction"], 0.0)


def test_dead_agents_contribute_nothing_to_any_loss_term() -> None:
    env = make_probe_env(num_agents=2, num_actions=4, episode_length=3, death_step=0)
    r = rollout(env)
    batch = flat_batch(r)
    dead = ~np.asarray(batch.transition.alive)
    assert dead.any() and (~dead).any()
    tr = batch.transition
    put = lambda x, v: jnp.where(dead.reshape(dead.shape + (1,) * (x.ndim - 2)), v, x)
    poisoned = PPOBatch(
        tr._replace(
            obs=put(tr.obs, 1e3),
            state=tr.state,
            action=put(tr.action, 1),
            reward=put(tr.reward, -55.0),
            extras={
                "log_prob": put(tr.extras["log_prob"], 9.0),
                "value": put(tr.extras["value"], 77.0),
            },
        ),
        advantages=put(batch.advantages, -123.0),
        targets=put(batch.targets, 44.0),
    )
    grad = jax.grad(lambda p, b: ppo_loss(p, b, r.ac, r.cfg), has_aux=True)
    g1, m1 = grad(r.params, batch)
    g2, m2 = grad(r.params, poisoned)
    for term in LOSS_TERMS:
        np.testing.assert_allclose(m1[term], m2[term], rtol=1e-6, atol=1e-8, err_msg=term)
    for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-8)


@pytest.mark.parametrize(("death_step", "rollout_length"), [(None, 6), (0, 4), (1, 5)])
def test_reported_episode_returns_equal_the_hand_sum(
    death_step: int | None, rollout_length: int
) -> None:
    # 3 agents, 3-step episodes; rollouts that are not a multiple of the episode length carry
    # unfinished episodes' running returns into the next update
    env = make_probe_env(num_agents=3, num_actions=4, episode_length=3, death_step=death_step)
    cfg = jmarl.PPOConfig(
        num_envs=2, rollout_length=rollout_length, num_minibatches=1, hidden_sizes=(8,)
    )
    trainer = jmarl.make_ppo(env, cfg, 3 * cfg.steps_per_update)
    m = jax.jit(trainer.train)(jax.random.key(0)).metrics
    # e.g. no deaths: agents score 6, 12, 18 (1+2+3 times 1, 2, 3) -> per-agent return 12
    hand = probe_episode_return(3, 3, death_step)
    np.testing.assert_allclose(m["episode_return"], hand, rtol=1e-6)
    np.testing.assert_allclose(m["episode_length"], 3.0)
    ends = (np.arange(3 * rollout_length) % 3 == 2).reshape(3, rollout_length).sum(axis=1)
    np.testing.assert_array_equal(m["episodes"], 2 * ends)  # two envs
