"""``FlexibleMultiAgentPolicyManager`` with Tianshou's own Collector, trainers and algorithms.

Covers the four mapping modes, bad configurations, one batched forward pass per policy per step,
exactly-once updates, AEC re-stitching, the Tianshou defects B1-B7 of /work/shared/REFERENCE.md
(``test_b<k>_*``), and learning: tic-tac-toe DQN vs random (Tianshou's own scenario, ported),
a pistonball-style parallel scenario, mpe2 simple_spread with a shared PPO, and mpe2
simple_adversary with one PPO per group (adversary vs good agents), both groups beating random play.
"""

from __future__ import annotations

import copy
import io
from collections.abc import Callable
from typing import Any

import numpy as np
import pettingzoo
import pytest
import torch
from gymnasium import spaces
from mpe2 import simple_adversary_v3, simple_spread_v3
from tianshou.algorithm import DQN, PPO, MARLRandomDiscreteMaskedOffPolicyAlgorithm
from tianshou.algorithm.algorithm_base import (
    OffPolicyAlgorithm,
    OnPolicyAlgorithm,
    Policy,
    TrainingStats,
)
from tianshou.algorithm.modelfree.dqn import DiscreteQLearningPolicy
from tianshou.algorithm.modelfree.reinforce import ProbabilisticActorPolicy
from tianshou.algorithm.optim import AdamOptimizerFactory, LRSchedulerFactoryLinear
from tianshou.data import (
    Batch,
    Collector,
    CollectStats,
    PrioritizedVectorReplayBuffer,
    VectorReplayBuffer,
)
from tianshou.env import DummyVectorEnv
from tianshou.trainer import OffPolicyTrainerParams, OnPolicyTrainerParams
from tianshou.utils.net.common import Net
from tianshou.utils.net.continuous import ContinuousActorProbabilistic, ContinuousCritic
from tianshou.utils.net.discrete import DiscreteActor, DiscreteCritic
from tianshou.utils.torch_utils import policy_within_training_step

import bridge
from bridge.pettingzoo import EnhancedPettingZooEnv
from bridge.tianshou.manager import (
    FlexibleMultiAgentOffPolicyManager,
    FlexibleMultiAgentOnPolicyManager,
    FlexibleMultiAgentPolicyManager,
    MultiAgentTrainingStats,
    build_policy_map,
)

torch.set_num_threads(1)

# --- envs ----------------------------------------------------------------------------------------


class CountingEnv(pettingzoo.ParallelEnv):
    """Agent ``k`` observes ``[t, k, its last action]`` and earns ``10 k + action``.

    Episodes last ``steps`` steps (truncated); with ``die_at``, agent 0 terminates at that step.
    """

    metadata = {"name": "counting_v0", "is_parallelizable": True}  # noqa: RUF012

    def __init__(self, num_agents: int = 3, steps: int = 4, die_at: int | None = None) -> None:
        self.possible_agents = [f"a{k}" for k in range(num_agents)]
        self.steps, self.die_at = steps, die_at
        self.render_mode = None

    def observation_space(self, agent: str) -> spaces.Space:
        return spaces.Box(-1e3, 1e3, (3,), np.float32)

    def action_space(self, agent: str) -> spaces.Space:
        return spaces.Discrete(3)

    def _obs(self, agent: str, last: int) -> np.ndarray:
        return np.array([self.t, self.possible_agents.index(agent), last], np.float32)

    def reset(self, seed: int | None = None, options: dict | None = None) -> tuple[dict, dict]:
        self.agents, self.t = list(self.possible_agents), 0
        return {a: self._obs(a, 0) for a in self.agents}, {a: {} for a in self.agents}

    def step(self, actions: dict) -> tuple[dict, dict, dict, dict, dict]:
        self.t += 1
        index = self.possible_agents.index
        rewards = {a: 10.0 * index(a) + int(actions[a]) for a in self.agents}
        obs = {a: self._obs(a, int(actions[a])) for a in self.agents}
        terms = {a: a == "a0" and self.t == self.die_at for a in self.agents}
        truncs = {a: self.t >= self.steps and not terms[a] for a in self.agents}
        infos = {a: {} for a in self.agents}
        self.agents = [a for a in self.agents if not (terms[a] or truncs[a])]
        return obs, rewards, terms, truncs, infos


def counting(mode: str, **kwargs: Any) -> Callable[[], EnhancedPettingZooEnv]:
    return lambda: EnhancedPettingZooEnv(CountingEnv(**kwargs), mode=mode)


def tictactoe() -> EnhancedPettingZooEnv:
    return EnhancedPettingZooEnv(pettingzoo.make("aec", "classic/tictactoe-v3"))


def spread(**kwargs: Any) -> Callable[[], EnhancedPettingZooEnv]:
    return lambda: EnhancedPettingZooEnv(simple_spread_v3.parallel_env(**kwargs))


def adversary() -> EnhancedPettingZooEnv:
    return EnhancedPettingZooEnv(simple_adversary_v3.parallel_env(max_cycles=25))


# --- scripted and recording algorithms ----------------------------------------------------------


class ScriptedPolicy(Policy):
    """On CountingEnv: action ``(t + k) % 3``. Records ``(rows, within training step)`` per call."""

    def __init__(self, action_space: spaces.Space) -> None:
        super().__init__(action_space=action_space, action_scaling=False, action_bound_method=None)
        self.calls: list[tuple[int, bool]] = []

    def forward(self, batch: Batch, state: Any = None, **kwargs: Any) -> Batch:
        obs = np.asarray(batch.obs.obs if isinstance(batch.obs, Batch) else batch.obs)
        self.calls.append((len(obs), self.is_within_training_step))
        return Batch(act=(obs[:, 0] + obs[:, 1]).astype(np.int64) % 3)


class RecordingOff(OffPolicyAlgorithm):
    """Off-policy algorithm that learns nothing and records every batch it is updated with."""

    def __init__(self, action_space: spaces.Space | None = None) -> None:
        super().__init__(policy=ScriptedPolicy(action_space or spaces.Discrete(3)))
        self.batches: list[Batch] = []

    def _update_with_batch(self, batch: Batch) -> TrainingStats:
        self.batches.append(batch)
        return TrainingStats()


class RecordingOn(OnPolicyAlgorithm):
    """On-policy counterpart of :class:`RecordingOff`."""

    def __init__(self, action_space: spaces.Space | None = None) -> None:
        super().__init__(policy=ScriptedPolicy(action_space or spaces.Discrete(3)))
        self.batches: list[Batch] = []

    def _update_with_batch(self, batch: Batch, batch_size: int | None, repeat: int) -> Any:
        self.batches.append(batch)
        return TrainingStats()


def dqn(env: EnhancedPettingZooEnv, hidden: tuple[int, ...] = (64, 64), **kwargs: Any) -> DQN:
    space = env.padded_observation_space
    net = Net(state_shape=space.shape, action_shape=env.padded_action_space.n, hidden_sizes=hidden)
    eps = {"eps_training": kwargs.pop("eps_training", 0.1), "eps_inference": 0.0}
    policy = DiscreteQLearningPolicy(model=net, action_space=env.padded_action_space, **eps)
    lr = kwargs.pop("lr", 1e-3)
    return DQN(policy=policy, optim=AdamOptimizerFactory(lr=lr), **kwargs)


def discrete_ppo(obs_dim: int, actions: int, lr: float = 1e-3, **kwargs: Any) -> PPO:
    actor = DiscreteActor(preprocess_net=Net(state_shape=obs_dim, hidden_sizes=[64, 64]),
                          action_shape=actions)  # fmt: skip
    critic = DiscreteCritic(preprocess_net=Net(state_shape=obs_dim, hidden_sizes=[64, 64]))
    policy = ProbabilisticActorPolicy(
        actor=actor,
        dist_fn=torch.distributions.Categorical,
        action_space=spaces.Discrete(actions),
        action_scaling=False,
        action_bound_method=None,
    )
    optim = kwargs.pop("optim", AdamOptimizerFactory(lr=lr))
    return PPO(policy=policy, critic=critic, optim=optim, max_batchsize=4096, **kwargs)


def gaussian(loc_scale: tuple[torch.Tensor, torch.Tensor]) -> torch.distributions.Distribution:
    return torch.distributions.Independent(torch.distributions.Normal(*loc_scale), 1)


def continuous_ppo(obs_dim: int, action_space: spaces.Box) -> PPO:
    shape = action_space.shape
    actor = ContinuousActorProbabilistic(
        preprocess_net=Net(state_shape=obs_dim, hidden_sizes=[32]), action_shape=shape
    )
    critic = ContinuousCritic(preprocess_net=Net(state_shape=obs_dim, hidden_sizes=[32]))
    policy = ProbabilisticActorPolicy(actor=actor, dist_fn=gaussian, action_space=action_space)
    return PPO(policy=policy, critic=critic, optim=AdamOptimizerFactory(lr=1e-3))


def collector(
    manager: Any, make: Callable, envs: int, size: int = 1000, seed: int = 0, **kwargs: Any
) -> Collector:
    buffer = kwargs.pop("buffer", None)
    buffer = VectorReplayBuffer(size, envs) if buffer is None else buffer
    venv = DummyVectorEnv([make] * envs)
    venv.seed(seed)
    result = Collector[CollectStats](manager, venv, buffer, **kwargs)
    result.reset()
    return result


def in_training(manager: Any) -> Any:
    return policy_within_training_step(manager.policy)


def transitions(algorithm: RecordingOff | RecordingOn) -> Batch:
    return Batch.cat(algorithm.batches)


# --- configuration -------------------------------------------------------------------------------


def test_policy_map_for_every_mode() -> None:
    env = counting("parallel", num_agents=4)()
    algos = [RecordingOff() for _ in range(4)]
    independent = FlexibleMultiAgentPolicyManager(algos, env)
    assert independent.policy_map == {a: a for a in env.agents}
    assert independent.get_algorithm("a2") is algos[2]
    shared = FlexibleMultiAgentPolicyManager(algos[0], env, mode="shared")
    assert set(shared.policy_map.values()) == {"shared"}
    groups = {"left": ["a0", "a1"], "right": ["a2", "a3"]}
    grouped = FlexibleMultiAgentPolicyManager(
        {"left": algos[0], "right": algos[1]}, env, mode="grouped", agent_groups=groups
    )
    assert grouped.policy_map == {"a0": "left", "a1": "left", "a2": "right", "a3": "right"}
    custom = FlexibleMultiAgentPolicyManager(
        {"even": algos[0], "odd": algos[1]},
        env,
        mode="custom",
        policy_mapping_fn=lambda a: "even" if int(a[1]) % 2 == 0 else "odd",
    )
    assert custom.policy_map == {"a0": "even", "a1": "odd", "a2": "even", "a3": "odd"}
    assert custom.algorithms == {"even": algos[0], "odd": algos[1]}
    assert build_policy_map(["x", "y"], "shared") == {"x": "shared", "y": "shared"}


def test_env_may_be_tianshous_pettingzoo_env_or_a_pettingzoo_env() -> None:
    from tianshou.env.pettingzoo_env import PettingZooEnv

    raw = pettingzoo.make("aec", "classic/tictactoe-v3")
    for env in (PettingZooEnv(raw), pettingzoo.make("aec", "classic/tictactoe-v3")):
        manager = FlexibleMultiAgentPolicyManager([RecordingOff(), RecordingOff()], env)
        assert manager.env_mode == "aec" and manager.agents == ["player_1", "player_2"]
    # Tianshou's agent names and jmarl's indices dispatch alike; unknown names are refused
    for ids in (["player_2", "player_1"], [1, 0]):
        batch = Batch(obs=Batch(agent_id=np.array(ids), obs=np.zeros((2, 2)),
                                mask=np.ones((2, 9), bool)), info=Batch())  # fmt: skip
        manager.policy(batch)
        assert [len(r.policy.calls) for r in manager.policy.routes] == [1, 1]
        for route in manager.policy.routes:
            route.policy.calls.clear()
    unknown = Batch(obs=Batch(agent_id=np.array(["player_3"]), obs=np.zeros((1, 3, 3, 2)),
                              mask=np.ones((1, 9), bool)), info=Batch())  # fmt: skip
    with pytest.raises(ValueError, match="unknown agent_id 'player_3'"):
        manager.policy(unknown)


def test_manager_is_the_right_kind_of_tianshou_algorithm() -> None:
    env = counting("parallel")()
    off = FlexibleMultiAgentPolicyManager([RecordingOff() for _ in range(3)], env)
    on = FlexibleMultiAgentPolicyManager(RecordingOn(), env=env, mode="shared")
    assert isinstance(off, FlexibleMultiAgentOffPolicyManager)
    assert isinstance(off, OffPolicyAlgorithm) and not isinstance(off, OnPolicyAlgorithm)
    assert isinstance(on, FlexibleMultiAgentOnPolicyManager) and isinstance(on, OnPolicyAlgorithm)
    assert isinstance(on, FlexibleMultiAgentPolicyManager)
    assert bridge.FlexibleMultiAgentPolicyManager is FlexibleMultiAgentPolicyManager
    with pytest.raises(ValueError, match="trains on-policy algorithms, got off-policy"):
        FlexibleMultiAgentOnPolicyManager(RecordingOff(), env, mode="shared")


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"mode": "teams"}, "unknown sharing mode 'teams'"),
        ({"policies": "list2"}, r"one per agent: got 2 for 3 \(\['a0', 'a1', 'a2'\]\)"),
        ({"policies": "one"}, "pass mode='shared'"),
        ({"mode": "grouped", "agent_groups": {"g": ["a0", "a1"]}}, r"without a group: \['a2'\]"),
        ({"mode": "grouped", "agent_groups": {"g": ["a0", "a1", "a2", "zz"]}}, "unknown agent"),
        ({"mode": "grouped", "agent_groups": {"g": ["a0"], "h": ["a0", "a1", "a2"]}}, "two groups"),
        ({"mode": "grouped"}, "needs agent_groups"),
        (
            {"policies": "dict_gh", "mode": "grouped", "agent_groups": {"g": ["a0", "a1", "a2"]}},
            r"policies \['h'\] are not used",
        ),
        (
            {"policies": "dict_gh", "mode": "custom", "policy_mapping_fn": lambda a: "x"},
            r"unknown policies \{'x': \['a0', 'a1', 'a2'\]\}",
        ),
        (
            {"policies": "dict_gh", "mode": "custom", "policy_mapping_fn": lambda a: 3},
            "must return str",
        ),
        ({"mode": "custom"}, "needs policy_mapping_fn"),
        ({"mode": "custom", "policy_mapping_fn": str}, "needs a dict"),
        ({"agent_groups": {"g": ["a0"]}}, "only used by mode 'grouped'"),
        ({"policy_mapping_fn": str}, "only used by mode 'custom'"),
        ({"policies": "mixed"}, "cannot mix on-policy and off-policy"),
    ],
)
def test_bad_configurations_raise_value_error(kwargs: dict, needle: str) -> None:
    env = counting("parallel")()
    named = {
        "list3": [RecordingOff() for _ in range(3)],
        "list2": [RecordingOff() for _ in range(2)],
        "one": RecordingOff(),
        "dict_gh": {"g": RecordingOff(), "h": RecordingOff()},
        "mixed": [RecordingOff(), RecordingOn(), RecordingOff()],
    }
    kwargs = {"policies": "list3", **kwargs}
    kwargs["policies"] = named[kwargs["policies"]]
    with pytest.raises(ValueError, match=needle):
        FlexibleMultiAgentPolicyManager(env=env, **kwargs)


def test_one_algorithm_for_agents_with_different_spaces_is_refused() -> None:
    env = adversary()  # adversary_0 observes 8 floats, agent_0 / agent_1 10
    algo = RecordingOn(spaces.Discrete(5))
    with pytest.raises(ValueError, match="'adversary_0' and 'agent_0', whose observation/action"):
        FlexibleMultiAgentPolicyManager(algo, env, mode="shared")
    with pytest.raises(ValueError, match="spaces differ"):  # the same object under two ids
        FlexibleMultiAgentPolicyManager([algo, algo, RecordingOn()], env)
    with pytest.raises(TypeError, match="must be a tianshou Algorithm"):
        FlexibleMultiAgentPolicyManager([algo.policy, algo, algo], env)


# --- acting --------------------------------------------------------------------------------------


def test_parallel_mode_one_forward_pass_per_policy_per_step() -> None:
    make = counting("parallel", num_agents=4, steps=5)
    shared, solo = RecordingOff(), RecordingOff()
    manager = FlexibleMultiAgentPolicyManager(
        {"pair": shared, "solo": solo},
        make(),
        mode="custom",
        policy_mapping_fn=lambda a: "solo" if a == "a3" else "pair",
    )
    coll = collector(manager, make, envs=4)
    coll.collect(n_step=40)
    assert [rows for rows, _ in shared.policy.calls] == [3 * 4] * 10  # 3 agents x 4 envs
    assert [rows for rows, _ in solo.policy.calls] == [4] * 10
    with in_training(manager):
        manager.update(coll.buffer, sample_size=0)
    for algo, agents in ((shared, {0, 1, 2}), (solo, {3})):
        (batch,) = algo.batches
        assert set(np.asarray(batch.obs)[:, 1].astype(int).tolist()) == agents
        assert len(batch) == 40 * len(agents)


def test_aec_mode_each_row_goes_to_its_agents_policy() -> None:
    env = tictactoe()
    first, second = (MARLRandomDiscreteMaskedOffPolicyAlgorithm(env.action_space) for _ in "ab")
    manager = FlexibleMultiAgentPolicyManager([first, second], env)
    seen: dict[str, list[np.ndarray]] = {"a": [], "b": []}
    for name, algo in (("a", first), ("b", second)):
        algo.policy.register_forward_hook(
            lambda m, args, out, name=name: seen[name].append(args[0].obs.agent_id)
        )
    coll = collector(manager, tictactoe, envs=3)
    coll.collect(n_step=60)
    buffer = coll.buffer
    assert set(np.concatenate(seen["a"]).tolist()) == {0}
    assert set(np.concatenate(seen["b"]).tolist()) == {1}
    rows = buffer[buffer.sample_indices(0)]
    legal = rows.obs.mask[np.arange(len(rows)), rows.act]
    assert legal[~rows.info.final].all()  # the masked random policy saw each agent's mask


def test_b1_continuous_actions_without_mask_in_both_modes() -> None:
    # Tianshou's MultiAgentPolicy.forward crashes without an action mask (marl.py:157).
    for mode in ("aec", "parallel"):
        make = lambda mode=mode: EnhancedPettingZooEnv(
            simple_spread_v3.env(max_cycles=5, continuous_actions=True), mode=mode
        )
        env = make()
        ppo = continuous_ppo(env.padded_observation_space.shape[0], env.padded_action_space)
        manager = FlexibleMultiAgentPolicyManager(ppo, env, mode="shared")
        coll = collector(manager, make, envs=2)
        with in_training(manager):
            coll.collect(n_step=30)
            stats = manager.update(coll.buffer, batch_size=16, repeat=1)
        assert np.isfinite(stats.get_loss_stats_dict()["shared/loss"])
        with in_training(manager):
            coll.collect(n_step=10, random=True)  # map_action_inverse per agent


def test_continuous_actions_are_scaled_by_each_sub_policy() -> None:
    env = EnhancedPettingZooEnv(simple_spread_v3.parallel_env(continuous_actions=True))
    ppo = continuous_ppo(env.padded_observation_space.shape[0], env.padded_action_space)
    manager = FlexibleMultiAgentPolicyManager(ppo, env, mode="shared")
    raw = np.array([[[-1.0, 0.0, 1.0, 3.0, -5.0]] * 3])  # one env, three agents
    mapped = manager.policy.map_action(raw)
    np.testing.assert_allclose(mapped, [[[0.0, 0.5, 1.0, 1.0, 0.0]] * 3])  # Box(0, 1), clipped
    np.testing.assert_allclose(manager.policy.map_action_inverse(mapped), np.clip(raw, -1, 1))


def test_b4_training_step_flag_and_exploration_reach_sub_policies() -> None:
    make = counting("parallel", steps=5)
    algos = [RecordingOff() for _ in range(3)]
    manager = FlexibleMultiAgentPolicyManager(algos, make())
    manager.run_training(
        OffPolicyTrainerParams(
            training_collector=collector(manager, make, envs=2),
            test_collector=collector(manager, make, envs=2),
            max_epochs=1,
            epoch_num_steps=20,
            collection_step_num_env_steps=10,
            test_step_num_episodes=2,
            batch_size=4,
            multi_agent_return_reduction=lambda r: r.mean(axis=1),
            show_progress=False,
            verbose=False,
        )
    )
    flags = {flag for algo in algos for _, flag in algo.policy.calls}
    assert flags == {True, False}  # training collection vs test collection
    assert not any(a.policy.is_within_training_step for a in algos)
    # DQN's epsilon: eps_training during training collection, eps_inference otherwise
    env = tictactoe()
    learner = dqn(env, eps_training=1.0)
    manager = FlexibleMultiAgentPolicyManager(learner, env, mode="shared")
    greedy = collector(manager, tictactoe, envs=1, exploration_noise=True)
    greedy.collect(n_step=60)
    with in_training(manager):
        assert learner.policy.is_within_training_step
        explore = collector(manager, tictactoe, envs=1, exploration_noise=True)
        explore.collect(n_step=60)

    def spread_of(buffer: Any) -> int:  # distinct moves from the empty board
        rows = buffer[buffer.sample_indices(0)]
        return len(set(rows.act[rows.obs.obs.reshape(len(rows), -1).sum(axis=1) == 0].tolist()))

    assert spread_of(greedy.buffer) == 1 and spread_of(explore.buffer) > 1


def test_b5_policy_forward_on_a_buffer_sample() -> None:
    # Tianshou's MultiAgentPolicy reads self.agent_idx (never set) when a batch has rewards.
    env = tictactoe()
    manager = FlexibleMultiAgentPolicyManager([dqn(env), dqn(env)], env)
    coll = collector(manager, tictactoe, envs=2)
    coll.collect(n_step=20)
    sample, _ = coll.buffer.sample(8)
    assert sample.rew.shape == (8, 2)
    act = manager.policy(sample).act
    assert act.shape == (8,) and sample.obs.mask[np.arange(8), act].all()


# --- learning data ---------------------------------------------------------------------------


def check_counting_transitions(batch: Batch, steps: int, die_at: int | None = None) -> None:
    """Every transition is the agent's own: its reward, its next observation, its flags."""
    obs, nxt = np.asarray(batch.obs), np.asarray(batch.obs_next)
    agent, act = obs[:, 1].astype(int), np.asarray(batch.act).astype(int)
    np.testing.assert_array_equal(batch.rew, 10 * agent + act)
    np.testing.assert_array_equal(nxt[:, 0], obs[:, 0] + 1)
    np.testing.assert_array_equal(nxt[:, 1], agent)
    np.testing.assert_array_equal(nxt[:, 2], act)
    dies = (agent == 0) & (nxt[:, 0] == (die_at or -1))
    np.testing.assert_array_equal(batch.terminated, dies)
    np.testing.assert_array_equal(batch.truncated, (nxt[:, 0] == steps) & ~dies)


@pytest.mark.parametrize("env_mode", ["aec", "parallel"])
def test_b6_each_agent_gets_its_own_reward_and_next_observation(env_mode: str) -> None:
    # Tianshou's AEC wrapper gives agents 0..N-2 zero reward and the next agent's observation.
    make = counting(env_mode, steps=4, die_at=2)
    algos = [RecordingOff() for _ in range(3)]
    manager = FlexibleMultiAgentPolicyManager(algos, make())
    coll = collector(manager, make, envs=2)
    rows_per_episode = {"aec": 3 * 4 + 3 - 2, "parallel": 4}[env_mode]  # + final rows
    coll.collect(n_step=2 * 2 * rows_per_episode)  # two whole episodes per env
    with in_training(manager):
        manager.update(coll.buffer, sample_size=0)
    for k, algo in enumerate(algos):
        batch = transitions(algo)
        assert len(batch) == 4 * (2 if k == 0 else 4)  # 4 episodes; agent 0 dies after 2
        check_counting_transitions(batch, steps=4, die_at=2)


def test_aec_transitions_wait_for_the_next_own_row_across_updates() -> None:
    make = counting("aec", steps=5)
    algo = RecordingOn()
    manager = FlexibleMultiAgentPolicyManager(algo, make(), mode="shared")
    coll = collector(manager, make, envs=2)
    for _ in range(9):  # 7-row chunks never align with the 18-row episodes
        coll.collect(n_step=14)
        with in_training(manager):
            manager.update(coll.buffer, batch_size=None, repeat=1)
        coll.reset_buffer(keep_statistics=True)
    batch = transitions(algo)
    check_counting_transitions(batch, steps=5)
    # each env: 63 rows = 3 episodes of 18 rows (15 transitions each), then 3 cycles, which
    # complete the transitions from t=0 and t=1 of every agent; nothing lost, nothing twice
    assert len(batch) == 2 * (3 * 15 + 2 * 3)


class RecordingRandom(MARLRandomDiscreteMaskedOffPolicyAlgorithm):
    """Tianshou's masked random player, recording the batches it is updated with."""

    def __init__(self, action_space: spaces.Space) -> None:
        super().__init__(action_space)
        self.batches: list[Batch] = []

    def _update_with_batch(self, batch: Batch) -> Any:
        self.batches.append(batch)
        return super()._update_with_batch(batch)


def test_tic_tac_toe_transitions_are_each_players_own() -> None:
    env = tictactoe()
    players = [RecordingRandom(env.action_space) for _ in env.agents]
    manager = FlexibleMultiAgentPolicyManager(players, env)
    coll = collector(manager, tictactoe, envs=2)
    stats = coll.collect(n_episode=30)
    with in_training(manager):
        manager.update(coll.buffer, sample_size=0)
    for k, player in enumerate(players):
        batch = transitions(player)
        own = batch.obs.obs[..., 0].reshape(len(batch), -1).sum(axis=1)
        own_next = batch.obs_next.obs[..., 0].reshape(len(batch), -1).sum(axis=1)
        other = batch.obs.obs[..., 1].reshape(len(batch), -1).sum(axis=1)
        other_next = batch.obs_next.obs[..., 1].reshape(len(batch), -1).sum(axis=1)
        np.testing.assert_array_equal(own_next, own + 1)  # its own next board: one more mark
        np.testing.assert_array_equal((other_next - other)[~batch.done], 1)
        assert batch.terminated.sum() == 30 and not batch.truncated.any()
        assert (batch.rew[~batch.done] == 0).all()
        assert batch.rew.sum() == pytest.approx(stats.returns[:, k].sum())  # full credit
        np.testing.assert_array_equal(batch.obs.agent_id, k)


class ReturnsOn(RecordingOn):
    """Records Tianshou's discounted returns (GAE with lambda 1, zero values) of its batches."""

    def _preprocess_batch(self, batch: Batch, buffer: Any, indices: np.ndarray) -> Batch:
        zeros = np.zeros(len(batch))
        batch.returns, _ = self.compute_episodic_return(
            batch, buffer, indices, v_s_=zeros, v_s=zeros, gamma=0.5, gae_lambda=1.0
        )
        return batch


@pytest.mark.parametrize("env_mode", ["aec", "parallel"])
def test_on_policy_returns_run_along_each_agents_own_trajectory(env_mode: str) -> None:
    make = counting(env_mode, steps=4, die_at=2)
    algo = ReturnsOn()
    manager = FlexibleMultiAgentPolicyManager(algo, make(), mode="shared")
    coll = collector(manager, make, envs=2)
    for _ in range(3):
        coll.collect(n_step=10)
        with in_training(manager):
            manager.update(coll.buffer, batch_size=None, repeat=1)
        coll.reset_buffer(keep_statistics=True)
    for batch in algo.batches:
        obs, nxt = np.asarray(batch.obs), np.asarray(batch.obs_next)
        expected = np.asarray(batch.rew, float).copy()
        for k in range(len(batch) - 2, -1, -1):  # same agent, next step, episode goes on
            follows = obs[k + 1, 1] == obs[k, 1] and np.array_equal(obs[k + 1], nxt[k])
            if follows and not batch.done[k]:
                expected[k] += 0.5 * expected[k + 1]
        np.testing.assert_allclose(batch.returns, expected)


def test_off_policy_replay_holds_each_transition_once_in_trajectory_order() -> None:
    make = counting("aec", steps=6)
    env = make()
    learner = dqn(env, n_step_return_horizon=3)
    manager = FlexibleMultiAgentPolicyManager(learner, env, mode="shared")
    coll = collector(manager, make, envs=3, size=300)
    for _ in range(6):
        coll.collect(n_step=9)
        with in_training(manager):
            manager.update(coll.buffer, sample_size=8)
    replay = manager.replay_buffers["shared"]
    assert replay.buffer_num == 3 * 3  # env x agent
    check_counting_transitions(replay[replay.sample_indices(0)], steps=6)
    for sub in replay.buffers:  # each env x agent: its 5 completed transitions, in order
        np.testing.assert_array_equal(sub[sub.sample_indices(0)].obs[:, 0], np.arange(5))
    idx = replay.sample_indices(0)
    follow = ~replay.done[idx] & (replay.next(idx) != idx)  # n-step returns follow the agent
    np.testing.assert_array_equal(
        replay.obs[replay.next(idx)[follow]], replay.obs_next[idx][follow]
    )


def test_b7_each_distinct_algorithm_is_updated_once_per_update_step() -> None:
    # Tianshou updates an algorithm mapped to k agents k times (marl.py:196,259-265).
    make = counting("parallel", steps=4)
    shared, other = RecordingOff(), RecordingOff()
    manager = FlexibleMultiAgentPolicyManager([shared, other, shared], make())
    coll = collector(manager, make, envs=2)
    coll.collect(n_step=8)
    with in_training(manager):
        stats = manager.update(coll.buffer, sample_size=6)
    assert len(shared.batches) == 1 and len(other.batches) == 1
    assert isinstance(stats, MultiAgentTrainingStats)
    assert set(stats.per_policy) == {"a0", "a1"}
    full = FlexibleMultiAgentPolicyManager([shared, other, shared], make())
    with in_training(full):
        full.update(coll.buffer, sample_size=0)
    agents = set(np.asarray(shared.batches[-1].obs)[:, 1].astype(int).tolist())
    assert agents == {0, 2} and len(shared.batches[-1]) == 2 * 8
    # a shared DQN: one gradient step and one target-net tick per update step
    env = make()
    learner = dqn(env, target_update_freq=5)
    manager = FlexibleMultiAgentPolicyManager(learner, env, mode="shared")
    coll = collector(manager, make, envs=2)
    coll.collect(n_step=8)
    with in_training(manager):
        for _ in range(3):
            manager.update(coll.buffer, sample_size=16)
    assert learner._iter == 3
    optim_state = learner.optim.state_dict()["state"]
    assert {int(s["step"]) for s in optim_state.values()} == {3}


def test_on_policy_shared_ppo_one_update_over_all_agents() -> None:
    make = counting("parallel", steps=4)
    ppo = discrete_ppo(3, 3)
    manager = FlexibleMultiAgentPolicyManager(ppo, make(), mode="shared")
    coll = collector(manager, make, envs=2)
    coll.collect(n_step=8)  # 8 rows x 3 agents = 24 transitions
    with in_training(manager):
        stats = manager.update(coll.buffer, batch_size=8, repeat=2)
    assert stats.per_policy["shared"].gradient_steps == 2 * 3


def test_prioritized_collector_buffer_gives_prioritized_replay() -> None:
    make = counting("parallel")
    env = make()
    manager = FlexibleMultiAgentPolicyManager(dqn(env), env, mode="shared")
    buffer = PrioritizedVectorReplayBuffer(200, 2, alpha=0.6, beta=0.4)
    coll = collector(manager, make, envs=2, buffer=buffer)
    coll.collect(n_step=8)
    with in_training(manager):
        manager.update(coll.buffer, sample_size=8)
    replay = manager.replay_buffers["shared"]
    assert isinstance(replay, PrioritizedVectorReplayBuffer) and len(replay) == 24


def test_update_outside_a_training_step_is_refused() -> None:
    make = counting("parallel")
    manager = FlexibleMultiAgentPolicyManager(RecordingOff(), make(), mode="shared")
    with pytest.raises(RuntimeError, match="outside of a training step"):
        manager.update(collector(manager, make, envs=1).buffer, sample_size=4)


# --- state and schedules -------------------------------------------------------------------------


def test_b2_state_dict_round_trip() -> None:
    # Tianshou's MultiAgent*Algorithm cannot load its own state_dict (nested optimizer keys).
    env = tictactoe()

    def build() -> Any:
        return FlexibleMultiAgentPolicyManager([dqn(env, target_update_freq=4), dqn(env)], env)

    manager = build()
    coll = collector(manager, tictactoe, envs=2)
    coll.collect(n_step=40)
    with in_training(manager):
        manager.update(coll.buffer, sample_size=16)
    stream = io.BytesIO()
    torch.save(manager.state_dict(), stream)
    stream.seek(0)
    fresh = build()
    fresh.load_state_dict(torch.load(stream))
    for name, value in manager.state_dict().items():
        if name.endswith("_optimizers"):
            continue
        torch.testing.assert_close(fresh.state_dict()[name], value)
    old = manager.get_algorithm("player_1").optim.state_dict()
    new = fresh.get_algorithm("player_1").optim.state_dict()
    assert old["state"].keys() == new["state"].keys()
    for key, state in old["state"].items():
        torch.testing.assert_close(new["state"][key]["exp_avg"], state["exp_avg"])
    state = manager.state_dict()
    state["bogus"] = torch.zeros(1)
    with pytest.raises(RuntimeError, match="bogus"):
        fresh.load_state_dict(state)


def test_b3_lr_schedulers_of_sub_algorithms_step() -> None:
    make = counting("parallel")
    factory = AdamOptimizerFactory(lr=1e-3).with_lr_scheduler_factory(
        LRSchedulerFactoryLinear(max_epochs=1, epoch_num_steps=4, collection_step_num_env_steps=1)
    )
    ppos = [discrete_ppo(3, 3, optim=factory) for _ in range(3)]
    manager = FlexibleMultiAgentPolicyManager(ppos, make())
    coll = collector(manager, make, envs=2)
    for expected in (7.5e-4, 5e-4):
        coll.collect(n_step=8)
        with in_training(manager):
            manager.update(coll.buffer, batch_size=None, repeat=1)
        coll.reset_buffer(keep_statistics=True)
        for ppo in ppos:
            assert ppo.lr_schedulers[0].get_last_lr()[0] == pytest.approx(expected)


# --- compatibility and learning -------------------------------------------------------------------


def tic_tac_toe_run(manager: Any, test_manager: Any, learner: DQN, seed: int) -> dict:
    """Tianshou's own tic-tac-toe setup (test/pettingzoo/tic_tac_toe.py), with a smaller budget.

    The learner plays the second seat in the test episodes; returns its best state_dict.
    """
    np.random.seed(seed)  # noqa: NPY002 (Tianshou's policies draw from the global RNG)
    torch.manual_seed(seed)
    train_envs, test_envs = (DummyVectorEnv([tictactoe] * 10) for _ in "ab")
    train_envs.seed(seed)
    test_envs.seed(seed + 1)
    train = Collector[CollectStats](
        manager, train_envs, VectorReplayBuffer(20000, 10), exploration_noise=True
    )
    test = Collector[CollectStats](test_manager, test_envs, exploration_noise=True)
    train.reset()
    train.collect(n_step=64 * 10)
    best: dict = {}
    manager.run_training(
        OffPolicyTrainerParams(
            training_collector=train,
            test_collector=test,
            max_epochs=4,
            epoch_num_steps=1000,
            collection_step_num_env_steps=10,
            test_step_num_episodes=50,
            batch_size=64,
            update_step_num_gradient_steps_per_sample=0.25,
            multi_agent_return_reduction=lambda r: r[:, 1],
            stop_fn=lambda score: score >= 0.7,
            save_best_fn=lambda _: best.update(copy.deepcopy(learner.state_dict())),
            show_progress=False,
            verbose=False,
        )
    )
    return best


def tic_tac_toe_dqn(env: EnhancedPettingZooEnv) -> DQN:
    return dqn(env, hidden=(128, 128), eps_training=0.3, n_step_return_horizon=3, gamma=0.9,
               target_update_freq=320)  # fmt: skip


def versus_random(learner: DQN, seat: int, episodes: int = 200, seed: int = 7) -> float:
    """Mean return of ``learner`` (greedy) in ``seat`` against the masked random policy."""
    return float(np.mean(versus_random_returns(learner, seat, episodes, seed)))


def versus_random_returns(learner: Any, seat: int, episodes: int, seed: int = 7) -> np.ndarray:
    """``learner``'s (greedy) returns ``[episodes]`` in ``seat`` of tic-tac-toe against the
    masked random policy."""
    env = tictactoe()
    opponent = MARLRandomDiscreteMaskedOffPolicyAlgorithm(env.action_space)
    seats = [opponent, learner] if seat == 1 else [learner, opponent]
    manager = FlexibleMultiAgentPolicyManager(seats, env)
    np.random.seed(seed)  # noqa: NPY002
    envs = DummyVectorEnv([tictactoe] * 10)
    envs.seed(seed)
    stats = Collector[CollectStats](manager, envs).collect(
        n_episode=episodes, reset_before_collect=True
    )
    return np.asarray(stats.returns)[:, seat]


# Random vs random: the first player scores about +0.29 (wins 58%, loses 29%), the second -0.29.


@pytest.mark.slow  # CI: MATrainer's self-play DQN beats random play through the manager
def test_tic_tac_toe_dqn_beats_random_independent_mode() -> None:
    env = tictactoe()
    learner = tic_tac_toe_dqn(env)
    opponent = MARLRandomDiscreteMaskedOffPolicyAlgorithm(action_space=env.action_space)
    manager = FlexibleMultiAgentPolicyManager([opponent, learner], env, mode="independent")
    assert manager.get_algorithm("player_2") is learner  # Tianshou's MARL interface
    assert manager.policy.policies["player_1"] is opponent.policy
    learner.load_state_dict(tic_tac_toe_run(manager, manager, learner, seed=1))
    assert versus_random(learner, seat=1) >= 0.3  # measured 0.42-0.65 (seeds 0-6)


@pytest.mark.slow  # CI keeps one DQN for both seats learning in tests/bridge/test_ma_trainer.py
def test_tic_tac_toe_one_shared_dqn_for_both_seats_beats_random() -> None:
    env = tictactoe()
    learner = tic_tac_toe_dqn(env)
    self_play = FlexibleMultiAgentPolicyManager(learner, env, mode="shared")
    opponent = MARLRandomDiscreteMaskedOffPolicyAlgorithm(action_space=env.action_space)
    test = FlexibleMultiAgentPolicyManager([opponent, learner], env)  # same DQN, second seat
    learner.load_state_dict(tic_tac_toe_run(self_play, test, learner, seed=2))
    assert versus_random(learner, seat=0) >= 0.6  # measured 0.74-0.96 (seeds 0-6)
    assert versus_random(learner, seat=1) >= 0.2  # measured 0.29-0.67 (seeds 0-6)


class PoolNet(torch.nn.Module):
    """Q-network for pistonball's image crops: average-pool to 8x4x3, then an MLP."""

    def __init__(self, actions: int) -> None:
        super().__init__()
        self.pool = torch.nn.AdaptiveAvgPool2d((8, 4))
        self.mlp = torch.nn.Sequential(
            torch.nn.Linear(96, 64), torch.nn.ReLU(), torch.nn.Linear(64, actions)
        )

    def forward(self, obs: Any, state: Any = None, info: Any = None) -> tuple[torch.Tensor, Any]:
        x = torch.as_tensor(np.asarray(obs), dtype=torch.float32).permute(0, 3, 1, 2) / 255.0
        return self.mlp(self.pool(x).flatten(1)), state


def pistonball(mode: str) -> Callable[[], EnhancedPettingZooEnv]:
    return lambda: EnhancedPettingZooEnv(
        pettingzoo.make(
            "parallel", "butterfly/pistonball-v6", n_pistons=3, max_cycles=20, continuous=False
        ),
        mode=mode,
    )


@pytest.mark.parametrize("sharing", ["independent", "shared"])
def test_pistonball_style_parallel_scenario(sharing: str) -> None:
    # Tianshou's pistonball test (3 pistons, DQN per piston), in parallel mode, small budget.
    make = pistonball("parallel")
    env = make()
    actions = env.padded_action_space.n

    def piston_dqn() -> DQN:
        policy = DiscreteQLearningPolicy(
            model=PoolNet(actions), action_space=env.padded_action_space, eps_training=0.1
        )
        return DQN(
            policy=policy, optim=AdamOptimizerFactory(lr=1e-3), gamma=0.9, n_step_return_horizon=3
        )

    algos: Any = [piston_dqn() for _ in env.agents] if sharing == "independent" else piston_dqn()
    manager = FlexibleMultiAgentPolicyManager(algos, env, mode=sharing)
    # image rows are ~1 MB (obs + obs_next): small buffers, at least one episode per env
    train = collector(manager, make, envs=2, size=80, exploration_noise=True)
    result = manager.run_training(
        OffPolicyTrainerParams(
            training_collector=train,
            test_collector=collector(manager, make, envs=2, size=50),
            max_epochs=1,
            epoch_num_steps=60,
            collection_step_num_env_steps=10,
            test_step_num_episodes=2,
            batch_size=16,
            update_step_num_gradient_steps_per_sample=0.2,
            multi_agent_return_reduction=lambda r: r.mean(axis=1),
            show_progress=False,
            verbose=False,
        )
    )
    assert result.update_step == 6  # 60 steps in chunks of 10, 2 gradient steps each
    rows = train.buffer[train.buffer.sample_indices(0)]
    assert (np.abs(rows.rew).sum(axis=0) > 0).all()  # every piston is credited its own reward
    distinct = {id(a) for a in manager.sub_algorithms.values()}
    assert len(distinct) == (3 if sharing == "independent" else 1)
    for algo in manager.sub_algorithms.values():
        assert algo._iter == 12  # one gradient step per update step, whatever the sharing


# Per-agent episode returns on mpe2 simple_spread (3 agents, 25 steps), mean +- standard error
# over 4000 episodes (benchmarks/baseline_returns.py, benchmarks/results/baseline_returns.json):
# uniform random -26.30 +- 0.13, doing nothing (action 0 every step) -24.33 +- 0.13, one fixed
# move every step about -66, scripted go-to-landmark -10.79 +- 0.07. Doing nothing is the best
# policy that learns nothing, so a learning test's bar must clear it by several standard errors
# of the test's own evaluation, and the evaluation must see only the final policy.
DO_NOTHING = -24.33
SPREAD_EVAL_SEED = 1000  # evaluation env seeds 1000.. (training uses 0..)


class ConstantPolicy(Policy):
    """Always the same discrete action (0: mpe2's no-op, no force)."""

    def __init__(self, action: int = 0, actions: int = 5) -> None:
        space = spaces.Discrete(actions)
        super().__init__(action_space=space, action_scaling=False, action_bound_method=None)
        self.action = action

    def forward(self, batch: Batch, state: Any = None, **kwargs: Any) -> Batch:
        return Batch(act=np.full(len(batch.obs), self.action, np.int64))


class DoNothingOn(OnPolicyAlgorithm):
    """The do-nothing baseline as an on-policy algorithm; learns nothing."""

    def __init__(self) -> None:
        super().__init__(policy=ConstantPolicy(0))

    def _update_with_batch(self, batch: Batch, batch_size: int | None, repeat: int) -> Any:
        return TrainingStats()


def spread_returns(policy: Any, episodes: int) -> np.ndarray:
    """Per-agent return of each of ``episodes`` episodes of ``policy`` (a manager or a joint
    policy) on simple_spread, from a fresh Collector over 10 envs seeded 1000..1009.

    All episodes last 25 steps, so every env plays ``episodes / 10`` whole episodes from the
    same initial states whatever the policy, and rows of two calls pair up episode by episode.
    """
    torch.manual_seed(SPREAD_EVAL_SEED)  # for policies that sample with torch
    envs = DummyVectorEnv([spread(max_cycles=25)] * 10)
    envs.seed(SPREAD_EVAL_SEED)
    stats = Collector[CollectStats](policy, envs).collect(
        n_episode=episodes, reset_before_collect=True
    )
    assert stats.returns.shape == (episodes, 3)
    return stats.returns.mean(axis=1)


def do_nothing_returns(episodes: int) -> np.ndarray:
    """:func:`spread_returns` of doing nothing: the same episodes, no agent ever moving."""
    return spread_returns(
        FlexibleMultiAgentPolicyManager(DoNothingOn(), spread(max_cycles=25)(), mode="shared"),
        episodes,
    )


def assert_learned(returns: np.ndarray, bar: float) -> None:
    """The trained policy's ``returns`` clear ``bar``, which lies >= 3 standard errors of their
    mean above doing nothing, and beat doing nothing on the same episodes by >= 3 standard
    errors of the paired difference."""
    n = len(returns)
    se = returns.std(ddof=1) / np.sqrt(n)
    gain = returns - do_nothing_returns(n)
    gain_se = gain.std(ddof=1) / np.sqrt(n)
    summary = f"{returns.mean():.2f} +- {se:.2f}, {gain.mean():+.2f} +- {gain_se:.2f} vs no-op"
    assert returns.mean() >= bar, summary
    assert gain.mean() >= 3 * gain_se, summary
    assert bar >= DO_NOTHING + 3 * se, f"{n} episodes (SE {se:.2f}) cannot separate {bar}"


def spread_training(manager: Any, epochs: int, seed: int) -> None:
    """Trains ``manager`` for ``epochs`` x 10k env steps (8 envs); no evaluation on the way."""
    np.random.seed(seed)  # noqa: NPY002 (Tianshou's policies draw from the global RNG)
    torch.manual_seed(seed)
    train_envs = DummyVectorEnv([spread(max_cycles=25)] * 8)
    train_envs.seed(seed)
    manager.run_training(
        OnPolicyTrainerParams(
            training_collector=Collector[CollectStats](
                manager, train_envs, VectorReplayBuffer(2000, 8)
            ),
            max_epochs=epochs,
            epoch_num_steps=10000,
            collection_step_num_env_steps=1000,
            batch_size=512,
            update_step_num_repetitions=4,
            multi_agent_return_reduction=lambda r: r.mean(axis=1),  # per-agent return
            show_progress=False,
            verbose=False,
        )
    )


def shared_spread_ppo(seed: int) -> FlexibleMultiAgentPolicyManager:
    torch.manual_seed(seed)  # the networks' initial weights
    env = spread(max_cycles=25)()
    ppo = discrete_ppo(env.padded_observation_space.shape[0], 5, gamma=0.95)
    return FlexibleMultiAgentPolicyManager(ppo, env, mode="shared")


@pytest.mark.slow  # CI: the joint JaxPPO and CTDEPolicy learning tests on the same env and mode
def test_simple_spread_parallel_mode_learns_with_one_shared_ppo() -> None:
    manager = shared_spread_ppo(seed=0)
    spread_training(manager, epochs=2, seed=0)  # 20k env steps
    # The final policy on 200 fixed episodes (doing nothing scores -23.92 on them). Measured,
    # training seeds 0-5: -20.6 to -21.4 (SE 0.34-0.38, per-episode std about 5.2), +2.5 to
    # +3.4 over doing nothing on the same episodes (SE 0.45-0.48); untrained -26.5 to -27.0.
    # The bar -23.0 is 3.6 SE (0.37) above doing nothing (-24.33) and 4.3 SE below the worst
    # seed. With the manager's update made a no-op this scores -26.80 (-2.88 vs doing nothing).
    assert_learned(spread_returns(manager, episodes=200), bar=-23.0)


@pytest.mark.slow
def test_simple_spread_shared_ppo_longer_run() -> None:
    manager = shared_spread_ppo(seed=0)
    spread_training(manager, epochs=8, seed=0)  # 80k env steps
    # 300 fixed episodes (doing nothing: -24.24 on them). Measured, seeds 0-2: -18.9 to -19.3
    # (SE 0.28-0.30), +5.0 to +5.3 over doing nothing (SE 0.36-0.39). The bar -20.5 is 12 SE
    # above doing nothing and above every 20k-step run of the test above: longer training must
    # keep improving.
    assert_learned(spread_returns(manager, episodes=300), bar=-20.5)


def test_grouped_mode_on_simple_adversary() -> None:
    env = adversary()
    dims = {a: s.shape[0] for a, s in env.agent_observation_spaces.items()}
    groups = {"adversaries": ["adversary_0"], "good": ["agent_0", "agent_1"]}
    ppos = {
        "adversaries": discrete_ppo(dims["adversary_0"], 5),
        "good": discrete_ppo(dims["agent_0"], 5),
    }
    manager = FlexibleMultiAgentPolicyManager(ppos, env, mode="grouped", agent_groups=groups)
    calls = {name: [] for name in ppos}
    for name, ppo in ppos.items():
        ppo.policy.register_forward_hook(
            lambda m, args, out, name=name: calls[name].append(len(args[0].obs))
        )
    coll = collector(manager, adversary, envs=4)
    coll.collect(n_step=100)  # 25 steps x 4 envs
    assert calls["adversaries"] == [4] * 25 and calls["good"] == [8] * 25
    with in_training(manager):
        stats = manager.update(coll.buffer, batch_size=50, repeat=1)
    assert stats.per_policy["adversaries"].gradient_steps == 2  # 100 transitions
    assert stats.per_policy["good"].gradient_steps == 4  # 200 transitions


class UniformPolicy(Policy):
    """Uniformly random discrete actions, drawn from its own generator."""

    def __init__(self, actions: int, seed: int) -> None:
        space = spaces.Discrete(actions)
        super().__init__(action_space=space, action_scaling=False, action_bound_method=None)
        self.actions, self.rng = actions, np.random.default_rng(seed)

    def forward(self, batch: Batch, state: Any = None, **kwargs: Any) -> Batch:
        return Batch(act=self.rng.integers(self.actions, size=len(batch.obs)))


class UniformOn(OnPolicyAlgorithm):
    """Random play as an on-policy algorithm (so it can stand in for a PPO); learns nothing."""

    def __init__(self, seed: int, actions: int = 5) -> None:
        super().__init__(policy=UniformPolicy(actions, seed))

    def _update_with_batch(self, batch: Batch, batch_size: int | None, repeat: int) -> Any:
        return TrainingStats()


ADVERSARY_GROUPS = {"adversaries": ["adversary_0"], "good": ["agent_0", "agent_1"]}


def adversary_training(seed: int) -> dict[str, PPO]:
    """One PPO per group of simple_adversary, trained together for 12k steps (12 updates)."""
    np.random.seed(seed)  # noqa: NPY002 (Tianshou's policies draw from the global RNG)
    torch.manual_seed(seed)
    env = adversary()
    dims = {a: s.shape[0] for a, s in env.agent_observation_spaces.items()}
    ppos = {
        "adversaries": discrete_ppo(dims["adversary_0"], 5, lr=3e-3, gamma=0.95),
        "good": discrete_ppo(dims["agent_0"], 5, lr=3e-3, gamma=0.95),
    }
    manager = FlexibleMultiAgentPolicyManager(
        ppos, env, mode="grouped", agent_groups=ADVERSARY_GROUPS
    )
    manager.run_training(
        OnPolicyTrainerParams(
            training_collector=collector(manager, adversary, envs=8, size=2000, seed=seed),
            max_epochs=1,
            epoch_num_steps=12000,
            collection_step_num_env_steps=1000,
            batch_size=512,
            update_step_num_repetitions=4,
            multi_agent_return_reduction=lambda r: r.mean(axis=1),
            show_progress=False,
            verbose=False,
        )
    )
    return ppos


def group_returns(
    adversaries: OnPolicyAlgorithm, good: OnPolicyAlgorithm, episodes: int = 100
) -> tuple[float, float]:
    """Mean return of the adversary and of a good agent, on the same 100 seeded episodes."""
    env = adversary()
    manager = FlexibleMultiAgentPolicyManager(
        {"adversaries": adversaries, "good": good},
        env,
        mode="grouped",
        agent_groups=ADVERSARY_GROUPS,
    )
    torch.manual_seed(123)  # the PPOs sample their actions
    envs = DummyVectorEnv([adversary] * 10)
    envs.seed(123)
    stats = Collector[CollectStats](manager, envs).collect(
        n_episode=episodes, reset_before_collect=True
    )
    good_agents = [env.agent_idx[a] for a in ADVERSARY_GROUPS["good"]]
    return (
        float(stats.returns[:, env.agent_idx["adversary_0"]].mean()),
        float(stats.returns[:, good_agents].mean()),
    )


def test_grouped_ppos_on_simple_adversary_both_groups_learn() -> None:
    # The good agents share a reward: the adversary's distance to the target landmark minus
    # the nearest good agent's distance to it. The adversary gets minus its own distance, and
    # it does not observe which landmark is the target. Each group is evaluated trained and
    # uniformly random, against the other group trained and random, on the same episodes.
    ppos = adversary_training(seed=0)
    trained_adv, trained_good = ppos["adversaries"], ppos["good"]
    adv_tt, good_tt = group_returns(trained_adv, trained_good)
    adv_rt, good_rt = group_returns(UniformOn(seed=1), trained_good)
    adv_tr, good_tr = group_returns(trained_adv, UniformOn(seed=2))
    adv_rr, good_rr = group_returns(UniformOn(seed=1), UniformOn(seed=2))
    # adv_xy / good_xy: the adversary's / a good agent's return with the adversary x and the good
    # agents y, t trained, r random. Random play: adv_rr -28.8, good_rr 10.1 (1000 episodes:
    # -29.0, 8.3); drawing a random group's actions from another seed moves its return by <= 1.4.
    # Measured, seeds 0-7:
    assert adv_tt - adv_rt >= 5.0  # 7.8 to 11.0 (adv_tt -17.8 to -20.9)
    assert adv_tr - adv_rr >= 5.0  # 8.3 to 10.9
    assert good_tt - good_tr >= 2.5  # 3.9 to 6.2 (good_tt 4.9 to 6.1)
    assert good_rt - good_rr >= 2.5  # 3.9 to 6.8 (good_rt 14.0 to 17.0)


def test_a_jax_policy_is_managed_as_one_joint_algorithm() -> None:
    import jax

    import jmarl
    from bridge.tianshou import jax_policy

    make = spread(max_cycles=25)
    config = jmarl.ppo_config_for("mappo", jmarl.PPOConfig(gamma=0.9))
    updates = 120  # 12 epochs x 10 updates; jmarl's learning rate schedule decays to 0 over them

    def joint_ppo(seed: int) -> Any:
        policy = jax_policy.JaxPolicy.from_env(make(), config, seed=seed)
        return jax_policy.JaxPPO(policy=policy, num_updates=updates, seed=seed)

    algo = joint_ppo(seed=1)
    with pytest.raises(ValueError, match="acts for all agents at once"):
        FlexibleMultiAgentPolicyManager([algo, RecordingOn(), RecordingOn()], make())
    manager = FlexibleMultiAgentPolicyManager(algo, make(), mode="shared")
    manager.run_training(
        OnPolicyTrainerParams(
            training_collector=collector(manager, make, envs=8, size=400, seed=1),
            max_epochs=12,
            epoch_num_steps=4000,
            collection_step_num_env_steps=400,
            batch_size=200,
            update_step_num_repetitions=4,
            multi_agent_return_reduction=lambda r: r.mean(axis=1),
            show_progress=False,
            verbose=False,
        )
    )
    assert algo.num_updates_done == updates  # once per update step
    # The final policy on 300 fixed episodes (doing nothing: -24.24 on them). Measured, 48k
    # env steps (the manager passes the joint algorithm through: the same numbers as JaxPPO
    # trained alone), seeds 0-4: -20.7 to -22.4 (this seed -20.72; SE 0.30-0.33, per-episode
    # std about 5.5), +1.9 to +3.6 over doing nothing on the same episodes (SE 0.37-0.42). The
    # bar -23.3 is 3.3 SE (0.31) above doing nothing (-24.33). The earlier setting (constant
    # learning rate 2.5e-3, 24k steps) ended anywhere from -21.6 to -24.1 (seeds 0-3), and at
    # 48k seeds 1-4 reached only -23.1 to -24.5. JaxPPO with its update skipped: -26.30.
    assert_learned(spread_returns(manager, episodes=300), bar=-23.3)
    fresh = joint_ppo(seed=2)
    copy_ = FlexibleMultiAgentPolicyManager(fresh, make(), mode="shared")
    copy_.load_state_dict(manager.state_dict())
    assert fresh.num_updates_done == updates
    for a, b in zip(jax.tree.leaves(fresh.policy.params), jax.tree.leaves(algo.policy.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
