"""Drop-in compatibility with Tianshou 2.0.1's multi-agent scripts (API.md, last bullet).

Upstream's own tic-tac-toe example runs in ``test_tianshou_upstream.py``; here each promise has
its own small test: Tianshou's ``agent_id`` values and ``observation_space``, ``isinstance``,
the manager taking Tianshou's ``PettingZooEnv`` and keywords, and the integer form the manager
can use so that PPO batches stack.
"""

from __future__ import annotations

import ast
from pathlib import Path
from typing import Any

import numpy as np
import pettingzoo
import pytest
import torch
from gymnasium import spaces
from mpe2 import simple_spread_v3
from tianshou.algorithm import (
    PPO,
    MARLRandomDiscreteMaskedOffPolicyAlgorithm,
    MultiAgentOffPolicyAlgorithm,
)
from tianshou.algorithm.modelfree.reinforce import ProbabilisticActorPolicy
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import Batch, Collector, CollectStats, VectorReplayBuffer
from tianshou.env import DummyVectorEnv, PettingZooEnv
from tianshou.utils.net.common import Net
from tianshou.utils.net.discrete import DiscreteActor, DiscreteCritic
from tianshou.utils.torch_utils import policy_within_training_step

import jmarl
from bridge import (
    EnhancedAECEnv,
    EnhancedParallelEnv,
    EnhancedPettingZooEnv,
    FlexibleMultiAgentPolicyManager,
)
from bridge.pettingzoo.layout import PaddedLayout
from bridge.tianshou.manager import TIANSHOU_ROWS_WARNING
from bridge.tianshou.restitch import Restitcher
from jmarl.cli import main
from jmarl.run import drivers

torch.set_num_threads(1)
ROOT = Path(jmarl.__file__).parent


def tictactoe() -> Any:
    return pettingzoo.make("aec", "classic/tictactoe-v3")


def aec_tictactoe() -> EnhancedPettingZooEnv:
    return EnhancedPettingZooEnv(tictactoe(), mode="aec")


def tianshou_tictactoe() -> PettingZooEnv:
    return PettingZooEnv(tictactoe())


def random_players(env: Any) -> list[MARLRandomDiscreteMaskedOffPolicyAlgorithm]:
    return [MARLRandomDiscreteMaskedOffPolicyAlgorithm(action_space=env.action_space)] * 2


# --- the env --------------------------------------------------------------------------------------


def test_aec_rows_carry_tianshous_agent_id_observation_and_mask() -> None:
    ours, theirs = aec_tictactoe(), tianshou_tictactoe()
    assert ours.agents == theirs.agents and ours.agent_idx == theirs.agent_idx
    assert ours.observation_space == theirs.observation_space  # Dict(observation, action_mask)
    assert ours.action_space == theirs.action_space
    assert ours.observation_space.spaces["observation"].shape == (3, 3, 2)  # a script's access
    mine, _ = ours.reset(seed=3)
    upstream, _ = theirs.reset(seed=3)
    for move in (0, 1, 4, 2, 8):  # player_1 wins on the diagonal 0-4-8; Tianshou's episode ends
        assert mine["agent_id"] == upstream["agent_id"]
        np.testing.assert_array_equal(mine["obs"], upstream["obs"])
        assert mine["mask"].tolist() == upstream["mask"]
        mine, reward, *_ = ours.step(move)
        upstream, upstream_reward, done, *_ = theirs.step(move)
    assert done and upstream_reward == [1, -1]
    assert reward.tolist() == [0, 0]  # ours credits each player at its own final row


def test_observation_spaces_are_tianshous_and_flattening_is_named() -> None:
    spread = simple_spread_v3.env(N=2, max_cycles=3)  # Box observations: kept as they are
    ours = EnhancedPettingZooEnv(spread, mode="aec")
    assert ours.observation_space == PettingZooEnv(simple_spread_v3.env(N=2)).observation_space
    rps = pettingzoo.make("aec", "classic/rps-v2")  # Discrete(4) observations
    with pytest.warns(FutureWarning, match=r"Discrete\(4\) arrive flattened .* shape \(4,\)"):
        ours = EnhancedPettingZooEnv(rps, mode="aec")
    theirs = PettingZooEnv(pettingzoo.make("aec", "classic/rps-v2"))
    assert ours.observation_space == theirs.observation_space == spaces.Discrete(4)


def test_integer_agent_ids_are_an_option() -> None:
    env = EnhancedPettingZooEnv(tictactoe(), mode="aec", agent_id="index")
    obs, _ = env.reset(seed=0)
    assert obs["agent_id"] == 0 and isinstance(obs["agent_id"], int)
    assert set(env.observation_space.spaces) == {"agent_id", "obs", "mask"}
    assert env.observation_space["agent_id"] == spaces.Discrete(2)
    with pytest.raises(ValueError, match="agent_id must be one of"):
        EnhancedPettingZooEnv(tictactoe(), mode="aec", agent_id="number")
    with pytest.raises(ValueError, match="AEC-mode option"):
        EnhancedPettingZooEnv(simple_spread_v3.parallel_env(), agent_id="index")


def test_aec_env_is_a_tianshou_pettingzoo_env_and_parallel_is_not() -> None:
    assert isinstance(aec_tictactoe(), PettingZooEnv)
    parallel = EnhancedPettingZooEnv(simple_spread_v3.parallel_env(N=2, max_cycles=3))
    assert not isinstance(parallel, PettingZooEnv)


def test_modes_are_two_classes_over_one_padding_layout() -> None:
    aec, parallel = aec_tictactoe(), EnhancedPettingZooEnv(tictactoe(), mode="parallel")
    assert type(aec) is EnhancedAECEnv and type(parallel) is EnhancedParallelEnv
    assert isinstance(aec._layout, PaddedLayout) and isinstance(parallel._layout, PaddedLayout)
    assert aec.mode == "aec" and parallel.mode == "parallel"
    assert type(EnhancedAECEnv(simple_spread_v3.parallel_env(N=2))) is EnhancedAECEnv
    with pytest.raises(ValueError, match="steps in mode 'aec', not 'parallel'"):
        EnhancedAECEnv(tictactoe(), mode="parallel")


def test_tianshous_multi_agent_algorithm_collects_with_the_aec_env() -> None:
    """The issue's failure: ``'dict' object has no attribute 'act'`` inside the Collector."""
    env = aec_tictactoe()
    algorithm = MultiAgentOffPolicyAlgorithm(algorithms=random_players(env), env=env)
    venv = DummyVectorEnv([aec_tictactoe] * 2)
    collector = Collector[CollectStats](algorithm, venv, VectorReplayBuffer(200, 2))
    collector.reset()
    stats = collector.collect(n_episode=4)
    assert stats.n_collected_episodes >= 4
    np.testing.assert_array_equal(stats.returns.sum(axis=1), 0)  # zero-sum, exact per agent


# --- the manager ----------------------------------------------------------------------------------


def test_manager_takes_tianshous_algorithms_keyword_and_env() -> None:
    env = tianshou_tictactoe()
    players = [MARLRandomDiscreteMaskedOffPolicyAlgorithm(action_space=env.action_space)
               for _ in env.agents]  # fmt: skip
    manager = FlexibleMultiAgentPolicyManager(algorithms=players, env=env)
    assert manager.env_mode == "aec" and manager.agents == ["player_1", "player_2"]
    assert manager.get_algorithm("player_2") is players[1]
    with pytest.raises(TypeError, match="not both"):
        FlexibleMultiAgentPolicyManager(random_players(env), env, algorithms=random_players(env))
    with pytest.raises(TypeError, match="needs policies="):
        FlexibleMultiAgentPolicyManager(env=env)


def test_manager_keyword_arguments_are_used_or_refused() -> None:
    algos = [MARLRandomDiscreteMaskedOffPolicyAlgorithm(action_space=spaces.Discrete(5))] * 3
    spread = simple_spread_v3.parallel_env(N=3, max_cycles=3)
    manager = FlexibleMultiAgentPolicyManager(algos, spread, mode="independent")
    assert "state" in manager.policy.observation_space.spaces
    without = FlexibleMultiAgentPolicyManager(algos, spread, include_state=False)
    assert "state" not in without.policy.observation_space.spaces  # passed to the env wrapper
    with pytest.raises(TypeError, match=r"unexpected keyword arguments \['learning_rate'\]"):
        FlexibleMultiAgentPolicyManager(algos, spread, learning_rate=0.1)
    with pytest.raises(TypeError, match="already an EnhancedPettingZooEnv"):
        FlexibleMultiAgentPolicyManager(algos, EnhancedPettingZooEnv(spread), include_state=False)
    with pytest.warns(DeprecationWarning, match=r"ignores \['action_scaling'\]"):
        FlexibleMultiAgentPolicyManager(algos, spread, action_scaling=True)


def test_rows_of_tianshous_env_are_credited_per_agent() -> None:
    """Instantaneous reward vectors (Tianshou's PettingZooEnv): an agent's transition sums its
    column from its row up to its next own row, or to the episode's last row."""
    rew = np.array([[0, 0], [0.5, 0], [0, 0.25], [1, 0], [2, -2]])
    agent = np.array([0, 1, 0, 1, 0])
    obs = np.arange(5.0)[:, None]
    rows = Batch(
        obs=Batch(agent_id=np.array(["a", "b", "a", "b", "a"]), obs=obs),
        obs_next=Batch(agent_id=np.array(["b", "a", "b", "a", "b"]), obs=obs + 1),
        rew=rew,
        done=np.array([0, 0, 0, 0, 1], bool),
        term=np.array([0, 0, 0, 0, 1], bool),
        trunc=np.zeros(5, bool),
        agent=agent,
        final=np.zeros(5, bool),
        tianshou=np.ones(5, bool),
    )
    expected = {  # j: (jn, reward, terminal, next obs from obs_next)
        0: (2, 0 + 0.5, False, False),  # a: rows 0, 1
        1: (3, 0 + 0.25, False, False),  # b: rows 1, 2
        2: (4, 0 + 1, False, False),  # a: rows 2, 3
        3: (4, 0 - 2, True, True),  # b: rows 3, 4 (the episode ends at row 4)
        4: (4, 2, True, True),  # a: row 4
    }
    whole = Restitcher(parallel=False)(0, rows)
    columns = zip(whole.j, whole.jn, whole.rew, whole.terminated, whole.from_obs_next)
    got = {int(j): (int(jn), float(r), bool(t), bool(f)) for j, jn, r, t, f in columns}
    assert got == expected
    assert whole.agent.tolist() == agent[whole.j].tolist()
    split = Restitcher(parallel=False)  # the same rows in two updates: obs_next[2] == obs[3]
    first, second = split(0, rows[:3]), split(0, rows[3:])
    assert first.j.tolist() == [0] and first.rew.tolist() == [0.5]  # rows 1, 2 wait
    assert sorted(second.rew.tolist()) == [-2, 0.25, 1, 2]


def test_manager_learns_from_tianshous_env_and_names_the_difference() -> None:
    env = tianshou_tictactoe()
    players = random_players(env)
    manager = FlexibleMultiAgentPolicyManager(algorithms=players, env=env)
    venv = DummyVectorEnv([tianshou_tictactoe] * 2)
    collector = Collector[CollectStats](manager, venv, VectorReplayBuffer(400, 2))
    collector.reset()
    collector.collect(n_episode=6)
    buffer = collector.buffer
    with policy_within_training_step(manager.policy):
        with pytest.warns(FutureWarning, match="tianshou.env.PettingZooEnv") as record:
            manager.update(buffer, sample_size=8)
    assert str(record[0].message) == TIANSHOU_ROWS_WARNING
    (replay,) = manager.replay_buffers.values()  # one algorithm object for both seats
    # every row's action of a finished episode is one transition (unfinished ones wait)
    finished = sum(int(np.flatnonzero(sub.done[: len(sub)]).max()) + 1 for sub in buffer.buffers)
    assert len(replay) == finished
    assert replay.rew.sum() == pytest.approx(buffer.rew.sum())  # rewards kept, re-credited
    assert replay.terminated.sum() == 2 * buffer.terminated.sum()  # both seats end each episode


class BoardNet(Net):
    """A ``Net`` on the board of ``Batch(obs=board, mask, agent_id)`` (what a sub-policy of a
    masked env receives, from the manager as from Tianshou's ``MultiAgentPolicy``)."""

    def __init__(self) -> None:
        super().__init__(state_shape=(3, 3, 2), hidden_sizes=[16])

    def forward(self, obs: Any, state: Any = None, info: Any = None) -> Any:
        return super().forward(obs.obs if isinstance(obs, Batch) else obs, state, info)


def test_on_policy_manager_trains_ppo_on_named_aec_rows() -> None:
    """Tianshou's string ``agent_id`` breaks its own PPO batches (REFERENCE.md); the env sends
    Tianshou's names, and the manager hands its sub-algorithms integer ids (the option that
    keeps the fix), in acting and in learning."""
    torch.manual_seed(0)

    def ppo() -> PPO:
        actor = DiscreteActor(preprocess_net=BoardNet(), action_shape=9)
        critic = DiscreteCritic(preprocess_net=BoardNet())
        policy = ProbabilisticActorPolicy(
            actor=actor, dist_fn=torch.distributions.Categorical,
            action_space=spaces.Discrete(9), action_scaling=False, action_bound_method=None,
        )  # fmt: skip
        return PPO(policy=policy, critic=critic, optim=AdamOptimizerFactory(lr=1e-3))

    env = aec_tictactoe()
    players = [ppo(), ppo()]
    seen: list[np.ndarray] = []
    for player in players:  # every batch a sub-policy acts or learns on
        player.policy.register_forward_pre_hook(
            lambda m, args: seen.append(np.asarray(args[0].obs.agent_id))
        )
    manager = FlexibleMultiAgentPolicyManager(algorithms=players, env=env)
    collector = Collector[CollectStats](
        manager, DummyVectorEnv([aec_tictactoe] * 2), VectorReplayBuffer(200, 2)
    )
    collector.reset()
    collector.collect(n_step=40)
    rows = collector.buffer[collector.buffer.sample_indices(0)]
    assert set(rows.obs.agent_id.tolist()) == {"player_1", "player_2"}  # Tianshou's names
    with policy_within_training_step(manager.policy):
        stats = manager.update(collector.buffer, batch_size=16, repeat=1)
    losses = stats.get_loss_stats_dict()
    assert losses and all(np.isfinite(v) for v in losses.values())
    assert len(seen) > 2 and all(ids.dtype.kind in "iu" for ids in seen)


# --- the command line -----------------------------------------------------------------------------


def test_jmarl_envs_lists_the_working_pettingzoo_path(capsys: pytest.CaptureFixture) -> None:
    assert main(["envs"]) == 0
    out = capsys.readouterr().out
    line = next(row for row in out.splitlines() if row.startswith("pettingzoo:<module>"))
    assert "planned" not in line and "mpe2.simple_spread_v3" in line


def test_cli_names_no_bridge_module_and_drivers_register_themselves() -> None:
    tree = ast.parse((ROOT / "cli.py").read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    strings = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)]
    assert not any(m.startswith("bridge") for m in imported)
    assert not any(isinstance(s, str) and "bridge." in s for s in strings)
    from bridge.pettingzoo.train import train_run

    assert drivers.driver_for("pettingzoo:mpe2.simple_spread_v3").train_run is train_run
    fake = drivers.Driver("toy:", lambda *a: {}, lambda *a: {"episodes": 1}, "a toy driver")
    drivers.register_driver(fake)
    try:
        assert drivers.driver_for("toy:anything") is fake
        assert ("toy:", "a toy driver") in drivers.list_drivers()
    finally:
        drivers._DRIVERS.pop("toy:")
    assert drivers.driver_for("simple_spread").prefix == ""  # JAX-native
