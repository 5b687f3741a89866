"""Recurrent IPPO / MAPPO (``PPOConfig(recurrent=True)``): the carry through rollouts, its
restart at episode boundaries, sequence replay in the update, and a memory task that
feed-forward policies provably cannot solve."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from jmarl.algos.ppo.networks import PPOCarry
from jmarl.algos.ppo.train import make_last_value
from jmarl.algos.rollout import init_rollout_state, make_rollout
from jmarl.cli import main
from jmarl.env.memory import memoryless_bound
from jmarl.testing import check_algorithm, make_probe_env

REC = jmarl.PPOConfig(
    num_envs=4,
    rollout_length=6,
    num_minibatches=2,
    num_epochs=2,
    hidden_sizes=(8,),
    recurrent=True,
    gru_size=8,
)


# CI checks mappo under custom sharing (a shared and a stacked block); the rest run with -m slow
@pytest.mark.parametrize(
    ("algo", "sharing"),
    [
        ("mappo", "custom"),
        pytest.param("mappo", "shared", marks=pytest.mark.slow),
        pytest.param("ippo", "shared", marks=pytest.mark.slow),
        pytest.param("ippo", "custom", marks=pytest.mark.slow),
    ],
)
def test_recurrent_ppo_passes_the_conformance_check(algo: str, sharing: str) -> None:
    check_algorithm(jmarl.ALGORITHMS[algo], cfg=REC, sharing=sharing)


@pytest.mark.parametrize("algo", ["ippo", "mappo"])
def test_the_carry_restarts_from_zeros_exactly_where_an_episode_starts(algo: str) -> None:
    env = make_probe_env(num_agents=3, episode_length=4)
    trainer = jmarl.make_ppo(env, jmarl.ppo_config_for(algo, REC), REC.steps_per_update)
    params = trainer.acting_params(trainer.init_learner(jax.random.key(0)))
    _, ts = jax.vmap(env.reset)(jax.random.split(jax.random.key(1), 2))
    ts = ts._replace(done=jnp.array([True, False]))  # env 0's obs begins a new episode
    warm = jax.tree.map(lambda z: z + 0.7, trainer.init_carry(2))
    act = jax.jit(trainer.act, static_argnums=4)
    from_warm = act(params, ts, jax.random.key(2), warm, True)
    from_zero = act(params, ts, jax.random.key(2), trainer.init_carry(2), True)
    for name in ("log_prob", "value"):
        np.testing.assert_array_equal(from_warm.extras[name][0], from_zero.extras[name][0])
        assert not np.allclose(from_warm.extras[name][1], from_zero.extras[name][1]), name
    np.testing.assert_array_equal(from_warm.carry.actor[0], from_zero.carry.actor[0])


@pytest.mark.parametrize("algo", ["ippo", "mappo"])
def test_the_bootstrap_value_continues_the_rollouts_critic_carry(algo: str) -> None:
    # learn is given no carry: it re-derives the critic's carry after the rollout from the
    # stored one; it must equal the carry the rollout actually ended with
    env = make_probe_env(num_agents=3, episode_length=4)
    cfg = jmarl.ppo_config_for(algo, REC)
    trainer = jmarl.make_ppo(env, cfg, cfg.steps_per_update)
    params = trainer.acting_params(trainer.init_learner(jax.random.key(0)))
    rs = init_rollout_state(env, jax.random.key(1), cfg.num_envs, trainer.init_carry(cfg.num_envs))
    rollout = jax.jit(make_rollout(env, trainer.act, 5))  # 5: the last step is mid-episode
    rs, traj = rollout(params, rs, jax.random.key(2))
    rs, traj = rollout(params, rs, jax.random.key(3))
    out = trainer.act(params, rs.timestep, jax.random.key(4), rs.carry)
    ac = jmarl.algos.ppo.make_actor_critic(env.spec, trainer.mapping, cfg)
    got = make_last_value(ac)(params, traj, rs.timestep)
    np.testing.assert_allclose(got, out.extras["value"], rtol=1e-5, atol=1e-6)


def test_a_whole_recurrent_training_step_at_a_tiny_learning_rate_keeps_ratio_one() -> None:
    # the update replays each env's sequence from its stored carry, restarting it where
    # episodes start (every 4 steps, inside the 6-step rollouts): any KL comes from a wrong
    # start carry, a missed restart or sequences shuffled apart
    env = make_probe_env(num_agents=3, num_actions=4, episode_length=4)
    cfg = dataclasses.replace(REC, num_minibatches=4, lr=1e-9)
    trainer = jmarl.make_ppo(env, cfg, 3 * cfg.steps_per_update, "independent")
    metrics = jax.jit(trainer.train)(jax.random.key(0)).metrics
    np.testing.assert_array_less(np.asarray(metrics["approx_kl"]), 1e-7)
    np.testing.assert_array_equal(metrics["clip_fraction"], 0.0)


def _memory_returns(recurrent: bool) -> np.ndarray:
    """Final per-agent returns (mean of the last 10 updates) of 2 seeds on the memory task."""
    env = jmarl.make("memory", num_agents=2, max_steps=5, num_cues=4)
    cfg = jmarl.PPOConfig(
        num_envs=32,
        rollout_length=20,
        num_minibatches=2,
        hidden_sizes=(32, 32),
        gru_size=32,
        recurrent=recurrent,
        centralized_critic=False,
        lr=3e-3,
        ent_coef=0.0,
    )
    trainer = jmarl.make_ppo(env, cfg, total_steps=40_000)
    out = jax.jit(jax.vmap(trainer.train))(jax.random.split(jax.random.key(0), 2))
    return np.asarray(out.metrics["episode_return"][:, -10:].mean(axis=1))


def test_recurrent_ippo_solves_a_memory_task_that_feed_forward_cannot() -> None:
    # 4 cues, recalled 4 steps later: without memory the best expected return is 1/4; each of
    # the last 10 updates averages 128 episodes x 2 agents, so a memoryless policy's mean
    # there has a standard error of about sqrt(0.25 * 0.75 / 2560) = 0.009
    bound = memoryless_bound(4)
    feed_forward, recurrent = _memory_returns(False), _memory_returns(True)
    assert (feed_forward < bound + 4 * 0.009).all(), feed_forward
    assert (recurrent > 0.9).all(), recurrent


def test_recurrent_is_a_cli_flag_recorded_in_the_config(tmp_path: Path) -> None:
    args = ["train", "--env", "memory", "--episode-length", "3", "--recurrent", "--gru-size", "8"]
    small = ["--steps", "400", "--num-envs", "4", "--rollout-length", "10", "--quiet"]
    assert main([*args, *small, "--out", str(tmp_path)]) == 0
    section = json.loads((tmp_path / "config.json").read_text())["ppo"]
    assert section["recurrent"] is True and section["gru_size"] == 8
    assert main(["evaluate", str(tmp_path), "--episodes", "2"]) == 0


def test_a_recurrent_carry_is_zeros_of_env_agent_width() -> None:
    env = make_probe_env(num_agents=3)
    carry = jmarl.make_ppo(env, REC, REC.steps_per_update).init_carry(5)
    assert isinstance(carry, PPOCarry)
    for h in carry:
        assert h.shape == (5, 3, 8) and not h.any()
