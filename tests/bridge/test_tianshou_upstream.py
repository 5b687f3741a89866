"""Tianshou 2.0.1's own multi-agent tic-tac-toe example and test, with jmarl's classes swapped in.

``tianshou_upstream/`` holds ``test/pettingzoo/tic_tac_toe.py`` and ``test_tic_tac_toe.py`` of
the Tianshou repository (tag v2.0.1, MIT licence) unchanged. Each run swaps class names by text
substitution, as API.md's compatibility promise says a user may (the environment, the
multi-agent algorithm, or both), and runs the upstream ``test_tic_tac_toe``, whose assertion is
``result.best_reward >= args.win_rate`` (the learner's mean return in the test episodes).

The default suite runs upstream's test on a small budget (one short epoch) with the win-rate bar
lowered to -1, and checks through a recording ``train_agent`` that it trained (gradient steps,
test episodes). ``-m slow`` runs a six-epoch budget that must beat random play clearly
(``SMALL_WIN_RATE``; measured on a loaded 2-core machine: 0.38 after six epochs for the env
swap, from -0.1 untrained), and upstream's own settings (50 epochs, win rate 0.6).
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import pytest
import torch

from bridge import EnhancedPettingZooEnv, FlexibleMultiAgentPolicyManager

# Tianshou's PettingZooEnv behind the manager: the manager warns that it re-credits rewards
TIANSHOU_ENV_WARNING = "ignore:.*tianshou.env.PettingZooEnv.*:FutureWarning"
pytestmark = [
    # upstream imports `pettingzoo.classic.tictactoe_v3`, which PettingZoo calls its old API
    pytest.mark.filterwarnings("ignore:The old environment creation API:DeprecationWarning"),
    pytest.mark.filterwarnings(TIANSHOU_ENV_WARNING),
]
HERE = Path(__file__).parent / "tianshou_upstream"
ENV_SWAP = (
    "PettingZooEnv(tictactoe_v3.env(render_mode=render_mode))",
    'EnhancedPettingZooEnv(tictactoe_v3.env(render_mode=render_mode), mode="aec")',
)
ALGORITHM_SWAP = (
    "MultiAgentOffPolicyAlgorithm(algorithms=agents, env=env)",
    "FlexibleMultiAgentPolicyManager(algorithms=agents, env=env)",
)
SWAPS = {"env": [ENV_SWAP], "algorithm": [ALGORITHM_SWAP], "both": [ENV_SWAP, ALGORITHM_SWAP]}
SMALL_WIN_RATE = 0.3  # the learner (second player) vs random play; an untrained one scores < 0
SWAPPED_NAMES = {
    "EnhancedPettingZooEnv": EnhancedPettingZooEnv,
    "FlexibleMultiAgentPolicyManager": FlexibleMultiAgentPolicyManager,
}


def _load(
    name: str, swaps: list[tuple[str, str]], monkeypatch: pytest.MonkeyPatch
) -> types.ModuleType:
    """Executes ``tianshou_upstream/<name>.py.txt`` with ``swaps`` applied, as module ``name``.

    The swapped-in names are put in the module's globals (the upstream text imports only
    Tianshou's classes), so the substitution is the only change to the text.
    """
    text = (HERE / f"{name}.py.txt").read_text()
    for old, new in swaps:
        assert text.count(old) == 1, f"{old!r} not found once in {name}"
        text = text.replace(old, new)
    module = types.ModuleType(name)
    module.__file__ = str(HERE / f"{name}.py")
    module.__dict__.update(SWAPPED_NAMES)
    monkeypatch.setitem(sys.modules, name, module)
    exec(compile(text, module.__file__, "exec"), module.__dict__)
    return module


def load_upstream(
    swap: str, monkeypatch: pytest.MonkeyPatch
) -> tuple[types.ModuleType, types.ModuleType]:
    """The swapped example module and the upstream test module that imports it."""
    monkeypatch.setattr(sys, "argv", ["test_tic_tac_toe.py"])  # its get_args() parses argv
    example = _load("tic_tac_toe", SWAPS[swap], monkeypatch)
    test = _load("test_tic_tac_toe", [], monkeypatch)
    return example, test


def small_args(example: types.ModuleType, logdir: Path) -> Any:
    """Upstream's arguments with a budget of a few minutes on one CPU core."""
    args = example.get_args()
    args.logdir = str(logdir)
    args.device = "cpu"
    args.epoch = 6
    args.epoch_num_steps = 1000
    args.collection_step_num_env_steps = 10
    args.update_per_step = 0.1
    args.num_training_envs = 10
    args.num_test_envs = 50  # fewer than 50 test episodes make best_reward a lucky draw
    args.buffer_size = 5000
    args.hidden_sizes = [64, 64]
    args.lr = 1e-3
    args.target_update_freq = 50
    args.win_rate = SMALL_WIN_RATE
    return args


class Upstream(NamedTuple):
    """Upstream's example and test modules, loaded with one swap."""

    swap: str
    example: types.ModuleType
    test: types.ModuleType


@pytest.fixture(params=list(SWAPS))
def upstream(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> Upstream:
    """Each swap of :data:`SWAPS` in turn (the test's id names it)."""
    example, test = load_upstream(request.param, monkeypatch)
    return Upstream(request.param, example, test)


@pytest.fixture(autouse=True)
def _one_thread() -> None:
    torch.set_num_threads(1)


def test_upstream_tic_tac_toe_example_constructs_with_the_swap(upstream: Upstream) -> None:
    example, swap = upstream.example, upstream.swap
    args = example.get_args()
    algorithm, _, agents = example.get_agents(args)
    assert agents == ["player_1", "player_2"]
    env = example.get_env()
    assert args.state_shape == (3, 3, 2) and args.action_shape == 9
    if swap in ("env", "both"):
        from tianshou.env.pettingzoo_env import PettingZooEnv

        assert isinstance(env, EnhancedPettingZooEnv) and isinstance(env, PettingZooEnv)
    expected = FlexibleMultiAgentPolicyManager if swap != "env" else None
    if expected is not None:
        assert isinstance(algorithm, expected)
    assert algorithm.get_algorithm(agents[1]) is not algorithm.get_algorithm(agents[0])


def run_recorded(test: types.ModuleType, args: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """Runs upstream's ``test_tic_tac_toe(args)``; returns what its ``train_agent`` returned."""
    results = []
    train_agent = test.train_agent

    def recording(*a: Any, **kw: Any) -> Any:
        results.append(train_agent(*a, **kw))
        return results[-1]

    monkeypatch.setattr(test, "train_agent", recording)
    test.test_tic_tac_toe(args)
    (result, _agent), *_ = results
    return result


def test_upstream_tic_tac_toe_test_runs_and_trains_with_the_swap(
    upstream: Upstream, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Upstream's ``test_tic_tac_toe`` on one short epoch (its bar lowered: no skill yet)."""
    args = small_args(upstream.example, tmp_path)
    args.epoch, args.epoch_num_steps, args.num_test_envs = 1, 300, 10
    args.batch_size, args.buffer_size = 16, 1000
    args.win_rate = -1.0
    result = run_recorded(upstream.test, args, monkeypatch)
    assert result.update_step >= 30  # update_per_step 0.1 of 300 steps
    assert result.test_episode >= 20 and np.isfinite(result.best_reward)


@pytest.mark.slow
def test_upstream_tic_tac_toe_test_beats_random_play_with_the_swap(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Upstream's ``test_tic_tac_toe`` passes with the bar at ``SMALL_WIN_RATE`` (6 epochs)."""
    upstream.test.test_tic_tac_toe(small_args(upstream.example, tmp_path))


@pytest.mark.slow
def test_upstream_tic_tac_toe_test_with_upstream_settings(
    upstream: Upstream, tmp_path: Path
) -> None:
    """Upstream's settings (50 epochs, stop at win rate 0.6), only the log folder moved."""
    args = upstream.example.get_args()
    args.logdir = str(tmp_path)
    args.device = "cpu"
    upstream.test.test_tic_tac_toe(args)
