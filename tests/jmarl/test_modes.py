"""Training modes: ``sequential`` trains one policy at a time while the others stay
bit-identical (parameters and optimizer moments), for every algorithm with ``trainable``
flags; bad modes and settings exit 2 with one line."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

import jmarl
from jmarl.cli import main
from jmarl.config_check import ConfigError
from jmarl.modes import sequential
from jmarl.testing import make_probe_env, tiny_config


def _blocks_equal(a: object, b: object) -> bool:
    return all(jax.tree.leaves(jax.tree.map(np.array_equal, a, b)))


@pytest.mark.parametrize("algo", ["ippo", "vdn", "maddpg"])
def test_only_the_policy_whose_turn_it_is_changes(algo: str) -> None:
    """Independent sharing over 3 agents (one stacked block of 3 policies), turns of 2
    updates: after each update, only the learning policy's row of every parameter (and of the
    whole learner's parameter-shaped state) may differ."""
    env = make_probe_env(num_agents=3)
    algorithm = jmarl.ALGORITHMS[algo]
    cfg = algorithm.configure(tiny_config(algorithm.defaults))
    mapping = jmarl.make_policy_mapping(env.spec, "independent")
    inner = algorithm.make(env, cfg, 6 * cfg.num_envs * cfg.rollout_length, mapping)
    trainer = sequential(inner, turn_length=2)
    step = jax.jit(trainer.step)
    state = jax.jit(trainer.init)(jax.random.key(0))
    weights = lambda s: trainer.acting_params(s.learner)[0][0]
    turns = []
    for _ in range(6):
        new, metrics = step(state)
        turn = int(metrics["learning_policy"])
        turns.append(turn)
        for k in range(3):
            same = _blocks_equal(
                jax.tree.map(lambda x, k=k: x[k], weights(state)),
                jax.tree.map(lambda x, k=k: x[k], weights(new)),
            )
            assert same == (k != turn), (k, turn)
        state = new
    assert turns == [0, 0, 1, 1, 2, 2]


def test_a_whole_sequential_run_trains_in_one_program() -> None:
    env = make_probe_env(num_agents=2)
    cfg = jmarl.PPOConfig(num_envs=2, rollout_length=3, num_minibatches=1, num_epochs=1)
    trainer = sequential(jmarl.make_ppo(env, cfg, 36, sharing="independent"), turn_length=2)
    out = jax.jit(jax.vmap(trainer.train))(jax.random.split(jax.random.key(0), 2))
    assert out.metrics["learning_policy"].tolist() == [[0, 0, 1, 1, 0, 0]] * 2


def test_sequential_needs_several_policies_and_turns_that_fit() -> None:
    env = make_probe_env(num_agents=2)
    cfg = jmarl.PPOConfig(num_envs=2, rollout_length=3, num_minibatches=1, num_epochs=1)
    with pytest.raises(ConfigError, match="the mapping has one"):
        sequential(jmarl.make_ppo(env, cfg, 60, sharing="shared"), turn_length=2)
    with pytest.raises(ConfigError, match="some policy would never learn"):
        sequential(jmarl.make_ppo(env, cfg, 60, sharing="independent"), turn_length=10)


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (["--mode", "tournament"], "unknown --mode 'tournament'"),
        (["--mode", "league"], "'simple_spread' has 3 agents"),
        (["--mode", "league", "--env", "prisoners_dilemma"], "not zero-sum"),
        (["--mode", "self_play", "--env", "kuhn_poker", "--pool-size", "0"], "--pool-size"),
        (["--mode", "self_play", "--env", "kuhn_poker", "--snapshot-interval", "99"], "1..1"),
        (["--pool-size", "4"], "only used with --mode self_play or league"),
        (["--mode", "self_play", "--env", "kuhn_poker", "--main-exploiters", "2"], "league"),
        (["--mode", "self_play", "--env", "tic_tac_toe", "--algo", "vdn"], "turn-based"),
        (
            [
                "--mode",
                "league",
                "--env",
                "rock_paper_scissors",
                "--algo",
                "qmix",
                "--learning-starts",
                "0",
            ],
            "team",
        ),
        (["--mode", "sequential"], "--sharing shared has one"),
        (["--turn-length", "5"], "--turn-length is only used with --mode sequential"),
        (
            ["--mode", "sequential", "--sharing", "independent", "--turn-length", "0"],
            "--turn-length",
        ),
        (
            [
                "--mode",
                "sequential",
                "--sharing",
                "independent",
                "--env",
                "pettingzoo:mpe2.simple_spread_v3",
            ],
            "PettingZoo envs train simultaneously",
        ),
    ],
)
def test_bad_modes_exit_2_with_one_line(
    flags: list[str], words: str, tmp_path: Path, capsys
) -> None:
    assert main(["train", *flags, "--steps", "1000", "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "run").exists()


def test_jmarl_train_runs_sequential_mode(tmp_path: Path) -> None:
    out = tmp_path / "run"
    argv = ["train", "--mode", "sequential", "--sharing", "independent", "--turn-length", "1"]
    argv += ["--agents", "2", "--steps", "1200", "--num-envs", "4", "--rollout-length", "100"]
    assert main([*argv, "--num-minibatches", "1", "--out", str(out), "--quiet"]) == 0
    rows = (out / "metrics.jsonl").read_text().splitlines()
    assert [int(json.loads(r)["learning_policy"]) for r in rows] == [0, 1, 0]


def test_jmarl_train_league_writes_league_json_and_evaluate_reports_games(
    tmp_path: Path, capsys
) -> None:
    out = tmp_path / "run"
    argv = ["train", "--env", "kuhn_poker", "--algo", "ippo", "--mode", "league"]
    argv += ["--steps", "256", "--num-envs", "8", "--rollout-length", "8", "--num-minibatches", "1"]
    argv += ["--pool-size", "6", "--snapshot-interval", "2", "--log-every", "2"]
    assert main([*argv, "--out", str(out), "--quiet"]) == 0
    league = json.loads((out / "league.json").read_text())["seeds"][0]
    assert [m["name"] for m in league["members"]] == [
        "main_0",
        "main_exploiter_0",
        "league_exploiter_0",
    ]
    assert len(league["pool"]) == 6 and {p["member"] for p in league["pool"]} <= {
        m["name"] for m in league["members"]
    }
    assert np.asarray(league["payoff"]["win_rate"]).shape == (3, 9)
    assert 0.0 <= league["nash_conv_pool"] <= 4.0 and "nash_conv_main" in league
    assert (out / "league.png").stat().st_size > 0
    rows = [json.loads(r) for r in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 4 and all("elo_main_exploiter_0" in r and "win_rate" in r for r in rows)
    assert [r.get("nash_conv_pool") is not None for r in rows] == [False, True, False, True]
    capsys.readouterr()
    assert main(["evaluate", str(out), "--episodes", "64"]) == 0
    report = json.loads(capsys.readouterr().out)
    for key in ("win_rate", "draw_rate", "return_per_seat", "win_rate_per_seat", "nash_conv"):
        assert key in report, key
    assert report["draw_rate"] == 0.0  # poker has no draws
    assert abs(sum(report["return_per_seat"])) < 1e-6  # zero-sum
