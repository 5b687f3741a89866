"""The bridge runs any registered algorithm through the contract alone: a toy REINFORCE
(``jmarl.testing.toy``, registered with one call) acts in Tianshou's Collector and learns
through ``JaxOnPolicyAlgorithm`` unchanged, and a policy carry is threaded per env between
Collector steps and re-initialised where an episode starts.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import jax
import numpy as np
import pytest
import torch
from mpe2 import simple_spread_v3
from tianshou.data import Batch, Collector, VectorReplayBuffer
from tianshou.env import DummyVectorEnv
from tianshou.trainer import OnPolicyTrainerParams
from tianshou.utils.torch_utils import policy_within_training_step

import jmarl
from bridge.pettingzoo import EnhancedPettingZooEnv
from bridge.tianshou.jax_policy import JaxOnPolicyAlgorithm, JaxPolicy, JaxPPO
from bridge.tianshou.manager import FlexibleMultiAgentPolicyManager
from jmarl.algos import register, unregister
from jmarl.algos.base import Algorithm
from jmarl.testing import check_algorithm
from jmarl.testing.toy import CARRY_START, ToyConfig, toy_algorithm

N, CYCLES = 3, 5  # agents, steps per episode


def make_env() -> EnhancedPettingZooEnv:
    return EnhancedPettingZooEnv(
        simple_spread_v3.parallel_env(N=N, max_cycles=CYCLES), mode="parallel"
    )


@pytest.fixture
def toy() -> Iterator[Algorithm]:
    algo = toy_algorithm("bridge_toy")
    register(algo)  # the one registry call
    yield algo
    unregister(algo.name)


@pytest.fixture
def counting() -> Iterator[Algorithm]:
    algo = toy_algorithm("bridge_toy_counting", count_steps=True)
    register(algo)
    yield algo
    unregister(algo.name)


def collector(algo: JaxOnPolicyAlgorithm, envs: int, size: int) -> Collector:
    venv = DummyVectorEnv([make_env] * envs)
    venv.seed(0)
    col = Collector(algo, venv, VectorReplayBuffer(size, envs))
    col.reset()
    return col


def steps_by_env(col: Collector, envs: int) -> list[list[int]]:
    """The ``"step"`` extra of agent 0 of each env's rows, in time order."""
    batch, idx = col.buffer.sample(0)  # each env's sub-buffer in time order
    env = idx // col.buffer.buffers[0].maxsize
    steps = np.asarray(batch.policy.extras.step)[:, 0]
    return [steps[env == e].tolist() for e in range(envs)]


# --- a non-PPO algorithm, by name ------------------------------------------------------------


def test_a_registered_toy_algorithm_collects_and_learns_through_the_bridge(
    toy: Algorithm,
) -> None:
    policy = JaxPolicy.from_env(make_env(), algorithm="bridge_toy", seed=1)
    assert policy.algorithm is toy and policy.config == ToyConfig()
    algo = JaxOnPolicyAlgorithm(policy=policy, seed=1)
    col = collector(algo, envs=2, size=24)
    stats = col.collect(n_step=24)
    assert stats.n_collected_episodes == 4  # 12 steps per env: two 5-step episodes each
    batch, _ = col.buffer.sample(0)
    assert batch.act.dtype == np.int32 and batch.act.shape == (24, N)
    assert "state" not in algo.policy(Batch(obs=batch.obs[:2], info=Batch()))  # no carry
    before = policy.params
    with policy_within_training_step(policy):
        update = algo.update(col.buffer, batch_size=None, repeat=1)
    assert np.isfinite(update.loss) and algo.num_updates_done == 1
    assert not np.allclose(np.asarray(before), np.asarray(policy.params))  # it learned
    np.testing.assert_array_equal(  # the policy acts with the learner's parameters
        np.asarray(policy.params), np.asarray(policy.trainer.acting_params(algo.learner))
    )


def test_the_learn_step_equals_the_toys_own_learn_on_the_same_rollout(toy: Algorithm) -> None:
    algo = JaxOnPolicyAlgorithm(policy=JaxPolicy.from_env(make_env(), algorithm=toy), seed=3)
    col = collector(algo, envs=2, size=20)
    col.collect(n_step=20)
    batch, idx = col.buffer.sample(0)
    traj, last_ts = algo.to_rollout(algo._preprocess_batch(batch, col.buffer, idx))
    assert traj.reward.shape == (10, 2, N) and traj.extras == {}
    assert np.asarray(traj.discount)[[4, 9]].sum() == 0  # both envs' episodes end at 5 and 10
    key = jax.random.fold_in(jax.random.key(3), 0)
    want, metrics = algo.policy.trainer.learn(algo.learner, traj, last_ts, key)
    with policy_within_training_step(algo.policy):
        stats = algo.update(col.buffer, batch_size=None, repeat=1)
    close = lambda a, b: np.testing.assert_allclose(np.asarray(a), np.asarray(b), 1e-6, 1e-7)
    jax.tree.map(close, algo.learner, want)
    assert stats.loss == pytest.approx(float(metrics["loss"]), rel=1e-6)


def test_tianshous_onpolicy_trainer_drives_a_toy_algorithm(toy: Algorithm) -> None:
    algo = JaxPPO(policy=JaxPolicy.from_env(make_env(), algorithm="bridge_toy"), num_updates=4)
    result = algo.run_training(
        OnPolicyTrainerParams(
            training_collector=collector(algo, envs=2, size=20),
            max_epochs=2,
            epoch_num_steps=40,
            collection_step_num_env_steps=20,
            batch_size=None,
            update_step_num_repetitions=1,
            multi_agent_return_reduction=lambda r: r.mean(axis=-1),
            show_progress=False,
            verbose=False,
        )
    )
    assert result.train_step == 80 and algo.num_updates_done == 4


def test_state_dict_round_trips_a_toy_learner(toy: Algorithm) -> None:
    algo = JaxOnPolicyAlgorithm(policy=JaxPolicy.from_env(make_env(), algorithm=toy, seed=1))
    col = collector(algo, envs=2, size=20)
    col.collect(n_step=20)
    with policy_within_training_step(algo.policy):
        algo.update(col.buffer, batch_size=None, repeat=1)
    other = JaxOnPolicyAlgorithm(policy=JaxPolicy.from_env(make_env(), algorithm=toy, seed=2))
    other.load_state_dict(algo.state_dict())
    same = lambda a, b: np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    jax.tree.map(same, other.learner, algo.learner)
    same(other.policy.params, algo.policy.params)


def test_a_policy_with_trained_parameters_keeps_them_under_a_new_algorithm(
    toy: Algorithm,
) -> None:
    trained = (jax.random.normal(jax.random.key(7), (18, 5)),)  # one block: shared
    policy = JaxPolicy.from_env(make_env(), algorithm=toy)
    policy.params = trained
    algo = JaxOnPolicyAlgorithm(policy=policy, config=ToyConfig(lr=0.5))
    np.testing.assert_array_equal(np.asarray(algo.learner.params[0]), np.asarray(trained[0]))
    with pytest.raises(ValueError, match="shape"):
        JaxPolicy(toy, policy.spec, policy.action_space, params=(trained[0][:3],))


# --- the policy carry ------------------------------------------------------------------------


def test_the_carry_is_threaded_per_env_and_reset_where_an_episode_starts(
    counting: Algorithm,
) -> None:
    algo = JaxOnPolicyAlgorithm(policy=JaxPolicy.from_env(make_env(), algorithm=counting))
    col = collector(algo, envs=2, size=2 * 24)
    col.collect(n_step=2 * 12)  # 12 steps per env: episodes of 5, 5 and 2 steps
    first = [1, 2, 3, 4, 5] * 2 + [1, 2]
    assert steps_by_env(col, 2) == [first, first]
    col.collect(n_step=2 * 4)  # the carry continues across collect() calls: 3 4 5 1
    assert [steps[12:] for steps in steps_by_env(col, 2)] == [[3, 4, 5, 1]] * 2
    col.reset(reset_buffer=False)  # a Collector reset starts new episodes (state None)
    col.collect(n_step=2 * 8)
    assert [steps[16:] for steps in steps_by_env(col, 2)] == [[1, 2, 3, 4, 5, 1, 2, 3]] * 2
    assert CARRY_START == 1  # re-initialised to init_carry rows, not Tianshou's zeros


def test_the_carry_follows_its_env_when_collecting_episodes(counting: Algorithm) -> None:
    # n_episode collection drops finished envs from the ready set: rows must stay with envs
    policy = JaxPolicy.from_env(make_env(), algorithm=counting)
    col = collector(JaxOnPolicyAlgorithm(policy=policy), envs=3, size=3 * 20)
    stats = col.collect(n_episode=5)
    assert stats.n_collected_episodes == 5
    episode = list(range(1, CYCLES + 1))
    per_env = steps_by_env(col, 3)
    assert sum(len(steps) for steps in per_env) == 5 * CYCLES
    assert all(steps == episode * (len(steps) // CYCLES) for steps in per_env), per_env


def test_the_manager_passes_the_carry_through_to_a_joint_policy(counting: Algorithm) -> None:
    algo = JaxOnPolicyAlgorithm(policy=JaxPolicy.from_env(make_env(), algorithm=counting))
    manager = FlexibleMultiAgentPolicyManager(algo, make_env(), mode="shared")
    venv = DummyVectorEnv([make_env] * 2)
    col = Collector(manager, venv, VectorReplayBuffer(2 * 7, 2))
    col.reset()
    col.collect(n_step=2 * 7)
    assert steps_by_env(col, 2) == [[1, 2, 3, 4, 5, 1, 2]] * 2
    with policy_within_training_step(manager.policy):
        stats = manager.update(col.buffer, batch_size=None, repeat=1)
    assert algo.num_updates_done == 1 and np.isfinite(stats.get_loss_stats_dict()["shared/loss"])


def test_stored_extras_reach_learn(counting: Algorithm) -> None:
    algo = JaxOnPolicyAlgorithm(policy=JaxPolicy.from_env(make_env(), algorithm=counting))
    col = collector(algo, envs=2, size=2 * 7)
    col.collect(n_step=2 * 7)  # steps 1..5, 1, 2 in each env
    with policy_within_training_step(algo.policy):
        stats = algo.update(col.buffer, batch_size=None, repeat=1)
    assert stats.mean_step == pytest.approx(np.mean([1, 2, 3, 4, 5, 1, 2]))


def test_a_deterministic_evaluation_threads_the_carry_too(counting: Algorithm) -> None:
    policy = JaxPolicy.from_env(make_env(), algorithm=counting, deterministic_eval=True)
    obs = Batch(obs=np.zeros((2, N, 18), np.float32), alive=np.ones((2, N), bool))
    out = policy(Batch(obs=obs, info=Batch()))
    assert isinstance(out.act, torch.Tensor) and tuple(out.act.shape) == (2, N)
    np.testing.assert_array_equal(out.state.carry.leaf0, [CARRY_START + 1] * 2)
    out.state.empty_([1])  # what the Collector does to the state of an env that is reset
    again = policy(Batch(obs=obs, info=Batch()), state=out.state)
    np.testing.assert_array_equal(again.policy.extras.step[:, 0], [CARRY_START + 1, CARRY_START])
    with pytest.raises(TypeError, match="state must be the Batch"):
        policy(Batch(obs=obs, info=Batch()), state=np.zeros(2))


# --- configuration errors --------------------------------------------------------------------


def test_bad_algorithms_and_configs_are_named() -> None:
    with pytest.raises(ValueError, match="unknown algorithm 'nope'"):
        JaxPolicy.from_env(make_env(), algorithm="nope")
    with pytest.raises(TypeError, match="takes a PPOConfig, got ToyConfig"):
        JaxPolicy.from_env(make_env(), ToyConfig(), algorithm="mappo")
    with pytest.raises(TypeError, match="no registered algorithm takes this ToyConfig"):
        JaxPolicy.from_env(make_env(), ToyConfig())
    with pytest.raises(TypeError, match="algorithm must be a registered name"):
        JaxPolicy.from_env(make_env(), algorithm=3)  # type: ignore[arg-type]
    ippo = JaxPolicy.from_env(make_env(), jmarl.ppo_config_for("ippo", jmarl.PPOConfig()))
    assert ippo.algorithm.name == "ippo"  # the algorithm a config belongs to
    assert JaxPolicy.from_env(make_env()).algorithm.name == "mappo"


def test_learning_from_rows_the_policy_did_not_collect_is_refused() -> None:
    algo = JaxOnPolicyAlgorithm(policy=JaxPolicy.from_env(make_env(), jmarl.PPOConfig()))
    col = collector(algo, envs=2, size=20)
    col.collect(n_step=20, random=True)
    with policy_within_training_step(algo.policy), pytest.raises(ValueError, match="extras"):
        algo.update(col.buffer, batch_size=None, repeat=1)


# --- the bridge imports no algorithm's internals ---------------------------------------------


def test_the_bridge_uses_only_the_algorithm_contract() -> None:
    internals = {"PPOConfig", "ActorCritic", "make_actor_critic", "make_update", "TrainState"}
    found = []
    for path in sorted((Path(__file__).resolve().parents[2] / "bridge").glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module, *(alias.name for alias in node.names)]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.Attribute):
                names = [node.attr]
            elif isinstance(node, ast.Name):
                names = [node.id]
            else:
                continue
            inside = [n for n in names if n in internals or n.startswith("jmarl.algos.")]
            found += [f"{path.name}:{node.lineno}: {n}" for n in inside if n != "jmarl.algos.base"]
    assert found == []


@pytest.mark.parametrize("count_steps", [False, True])
def test_the_toy_algorithm_is_itself_a_conformant_algorithm(count_steps: bool) -> None:
    check_algorithm(toy_algorithm("conformance_toy", count_steps=count_steps), sharing="custom")


# --- recurrent PPO through the bridge --------------------------------------------------------


def test_recurrent_mappo_replays_the_collectors_sequences_at_ratio_one() -> None:
    # the Collector stores each step's carry and restart flags as extras; the update replays
    # every env's sequence from them. At lr 1e-9 any KL means acting and replay disagree on
    # the carry (a restart missed or misplaced at the 5-step episode boundaries)
    cfg = jmarl.PPOConfig(
        num_minibatches=2,
        num_epochs=2,
        hidden_sizes=(8,),
        recurrent=True,
        gru_size=8,
        lr=1e-9,
    )
    policy = JaxPolicy.from_env(make_env(), config=cfg, algorithm="mappo", seed=1)
    algo = JaxOnPolicyAlgorithm(policy=policy, seed=1)
    col = collector(algo, envs=2, size=24)
    col.collect(n_step=24)
    with policy_within_training_step(policy):
        stats = algo.update(col.buffer, batch_size=None, repeat=1)
    assert stats.approx_kl < 1e-7 and stats.clip_fraction == 0.0
