"""``jmarl train --env pettingzoo:<module>``: jmarl PPO on PettingZoo envs stepped on the host."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

import jmarl
from bridge.pettingzoo.train import (
    EpisodeBook,
    HostVecEnv,
    collect,
    evaluate_run,
    make_act,
    resolve_pettingzoo,
)
from jmarl.agents.sharing import make_policy_mapping
from jmarl.algos import register, unregister
from jmarl.cli import main
from jmarl.env.base import spec_only
from jmarl.testing.toy import toy_algorithm

SMALL = [
    "--num-envs",
    "2",
    "--rollout-length",
    "25",
    "--num-minibatches",
    "1",
    "--hidden-sizes",
    "16",
    "--quiet",
]


def _run(tmp: Path, env: str, steps: int, *extra: str) -> dict:
    assert (
        main(["train", "--env", env, "--steps", str(steps), *SMALL, "--out", str(tmp), *extra]) == 0
    )
    return json.loads((tmp / "config.json").read_text())


def test_train_and_evaluate_on_mpe2_simple_spread(tmp_path: Path, capsys) -> None:
    _run(tmp_path, "pettingzoo:mpe2.simple_spread_v3", 100)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in rows] == [50, 100]
    assert rows[-1]["episode_return"] is not None and rows[-1]["episodes"] == 2
    assert (tmp_path / "returns.png").is_file() and (tmp_path / "checkpoint.msgpack").is_file()
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path), "--episodes", "3"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["episodes"] == 3 and -80 < out["episode_return"] < 0
    # the folder as an earlier jmarl wrote it: every run setting recorded, agents,
    # episode_length and continuous_actions at their defaults (never used by a PettingZoo env,
    # now refused in a config); no checkpoint_every or logger yet
    ppo = json.loads((tmp_path / "config.json").read_text())["ppo"]
    old = {
        "env": "pettingzoo:mpe2.simple_spread_v3",
        "algo": "mappo",
        "sharing": "shared",
        "agents": 3,
        "steps": 100,
        "seed": 0,
        "seeds": 1,
        "episode_length": 25,
        "continuous_actions": False,
        "log_every": 0,
        "out": str(tmp_path),
        "agent_groups": None,
        "policy_mapping": None,
        "env_kwargs": None,
        "ppo": ppo,
    }
    (tmp_path / "config.json").write_text(json.dumps(old, indent=2))
    assert main(["evaluate", str(tmp_path), "--episodes", "3"]) == 0
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1]) == out


def test_one_policy_call_per_step_and_dead_agents_masked() -> None:
    make = resolve_pettingzoo(
        "pettingzoo:pettingzoo.butterfly.knights_archers_zombies_v11",
        {"max_cycles": 60, "line_death": True},
    )
    venv = HostVecEnv(make, 2, 0, "kaz")
    spec = venv.spec
    cfg = jmarl.ppo_config_for("ippo", jmarl.PPOConfig(hidden_sizes=(8,)))
    trainer = jmarl.ALGORITHMS["ippo"].make(
        spec_only(spec), cfg, 1, make_policy_mapping(spec, "independent")
    )
    params = trainer.acting_params(trainer.init_learner(jax.random.key(0)))
    calls = []
    act = make_act(trainer)

    def counting_act(*args):  # type: ignore[no-untyped-def]
        calls.append(1)
        return act(*args)

    book = EpisodeBook(2, spec.num_agents)
    traj, _, _ = collect(venv, counting_act, params, venv.reset(), jax.random.key(1), 60, book)
    assert len(calls) == 60  # one jitted call per step for all envs x agents
    alive = np.asarray(traj.alive)
    assert alive.shape == (60, 2, spec.num_agents)
    # rows of agents that are not alive carry no reward (they are out of the loss)
    assert np.all(np.asarray(traj.reward)[~alive] == 0.0)


def test_the_policy_carry_is_threaded_and_reset_where_an_episode_starts() -> None:
    make = resolve_pettingzoo("pettingzoo:mpe2.simple_spread_v3", {"N": 2, "max_cycles": 5})
    venv = HostVecEnv(make, 2, 0, "spread")
    algo = toy_algorithm("counting", count_steps=True)  # carry: the env's step, from 1
    trainer = algo.make(spec_only(venv.spec), algo.defaults, 1, make_policy_mapping(venv.spec))
    params = trainer.acting_params(trainer.init_learner(jax.random.key(0)))
    book, act = EpisodeBook(2, 2), make_act(trainer)
    last, carry = venv.reset(), trainer.init_carry(2)
    traj, last, carry = collect(venv, act, params, last, jax.random.key(1), 7, book, carry)
    traj2, _, _ = collect(venv, act, params, last, jax.random.key(2), 5, book, carry)
    steps = np.concatenate([traj.extras["step"], traj2.extras["step"]])[:, :, 0]
    episode = [1, 2, 3, 4, 5]
    np.testing.assert_array_equal(steps.T, [episode * 2 + [1, 2]] * 2)


def test_a_registered_toy_algorithm_trains_and_evaluates_on_pettingzoo(
    tmp_path: Path, capsys
) -> None:
    register(toy_algorithm("bridge_toy_cli", count_steps=True))
    try:
        args = ["train", "--env", "pettingzoo:mpe2.simple_spread_v3", "--algo", "bridge_toy_cli"]
        assert main([*args, "--steps", "64", "--quiet", "--out", str(tmp_path)]) == 0
        rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
        assert [r["env_steps"] for r in rows] == [32, 64]
        assert all(r["mean_step"] > 1 for r in rows)  # the carry counted steps
        capsys.readouterr()
        assert main(["evaluate", str(tmp_path), "--episodes", "2"]) == 0
        out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert out["episodes"] == 2 and np.isfinite(out["episode_return"])
    finally:
        unregister("bridge_toy_cli")


def test_heterogeneous_agents_cannot_share_but_train_independently(tmp_path: Path, capsys) -> None:
    env = "pettingzoo:mpe2.simple_adversary_v3"
    assert main(["train", "--env", env, "--steps", "50", *SMALL, "--out", str(tmp_path / "a")]) == 2
    assert "spaces differ" in capsys.readouterr().err
    _run(tmp_path / "b", env, 50, "--sharing", "independent")


@pytest.mark.parametrize(
    ("env", "needle"),
    [("pettingzoo:no_such_module_xyz", "cannot import"), ("pettingzoo:", "expected pettingzoo:")],
)
def test_bad_pettingzoo_env_names(env: str, needle: str, capsys) -> None:
    assert main(["train", "--env", env, "--quiet"]) == 2
    assert needle in capsys.readouterr().err


def test_bad_env_kwargs_are_named(tmp_path: Path, capsys) -> None:
    conf = tmp_path / "c.json"
    conf.write_text(
        json.dumps({"env": "pettingzoo:mpe2.simple_spread_v3", "env_kwargs": {"bogus_arg": 1}})
    )
    assert main(["train", "--config", str(conf), "--quiet", "--out", str(tmp_path / "r")]) == 2
    assert (
        "env_kwargs of mpe2.simple_spread_v3: unknown argument 'bogus_arg'"
        in capsys.readouterr().err
    )


# Per-agent episode returns on mpe2 simple_spread (3 agents, 25 steps), mean +- standard error
# over 4000 episodes (benchmarks/baseline_returns.py, benchmarks/results/baseline_returns.json):
# uniform random -26.30 +- 0.13, doing nothing (action 0 every step) -24.33 +- 0.13, scripted
# go-to-landmark -10.79 +- 0.07. Doing nothing is the best policy that learns nothing.
DO_NOTHING = -24.33


def do_nothing_returns(env: str, seed: int, episodes: int, num_envs: int) -> np.ndarray:
    """Per-agent returns of doing nothing on the episodes ``evaluate_run(..., episodes, seed)``
    plays: the same host envs, reset with the same seeds in the same order."""
    venv = HostVecEnv(resolve_pettingzoo(env), num_envs, seed, env)
    venv.reset()
    book = EpisodeBook(num_envs, venv.spec.num_agents)
    while len(book.returns) < episodes:
        book.add(venv.step(np.zeros((num_envs, venv.spec.num_agents), np.int32)))
    return np.asarray(book.returns[:episodes])


def test_mappo_through_the_bridge_beats_doing_nothing(tmp_path: Path) -> None:
    env = "pettingzoo:mpe2.simple_spread_v3"
    flags = ["--num-envs", "8", "--rollout-length", "50", "--num-minibatches", "2"]
    _run(tmp_path, env, 48_000, *flags, "--hidden-sizes", "64,64")
    episodes, seed = 300, 1000
    out = evaluate_run(tmp_path, episodes, seed)  # the final checkpoint, stochastic actions
    assert out["episodes"] == episodes and out["env_steps_trained"] == 48_000
    se = out["episode_return_std"] / np.sqrt(episodes - 1)
    noop = do_nothing_returns(env, seed, episodes, num_envs=8)
    noop_se = noop.std(ddof=1) / np.sqrt(episodes)
    gain = out["episode_return"] - noop.mean()
    gain_se = np.hypot(se, noop_se)  # ignores the (positive) pairing: an overestimate
    # Measured, seeds 0-4 (48k env steps, 8 envs x 50 steps per update): -21.1 to -22.2 (seed
    # 0: -21.30; SE 0.30-0.35, per-episode std about 5.6), +2.5 to +3.6 over doing nothing on
    # the same episodes (-24.70 +- 0.48 there). The bar -23.2 is 3 SE above doing nothing
    # (-24.33) for SEs up to 0.37 (-23.3 was not, for this seed's SE of 0.35 after the
    # categorical's float rounding changed). The earlier run (40k steps, 8 x 25 per update)
    # ended at -21.6, -23.0, -22.3 (seeds 0-2). With the learning rate 0: -27.11.
    bar = -23.2
    summary = f"{out['episode_return']:.2f} +- {se:.2f}, {gain:+.2f} +- {gain_se:.2f} vs no-op"
    assert out["episode_return"] >= bar, summary
    assert gain >= 3 * gain_se, summary
    assert bar >= DO_NOTHING + 3 * se, f"{episodes} episodes (SE {se:.2f}) cannot separate {bar}"


def test_magent2_battle_trains_through_the_bridge(tmp_path: Path) -> None:
    conf = tmp_path / "battle.json"
    conf.write_text(
        json.dumps(
            {
                "env": "pettingzoo:magent2.environments.battle_v4",
                "env_kwargs": {"map_size": 12, "max_cycles": 30},
                "steps": 100,
                "ppo": {
                    "num_envs": 2,
                    "rollout_length": 25,
                    "num_minibatches": 1,
                    "hidden_sizes": [16],
                },
            }
        )
    )
    assert main(["train", "--config", str(conf), "--quiet", "--out", str(tmp_path / "r")]) == 0
    rows = [json.loads(x) for x in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and all(r["loss"] is not None for r in rows)
