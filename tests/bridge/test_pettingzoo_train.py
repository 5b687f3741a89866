"""``jmarl train --env pettingzoo:<module>``: jmarl PPO on PettingZoo envs stepped on the host."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import numpy as np
import pytest

import jmarl
from bridge.pettingzoo_train import EpisodeBook, HostVecEnv, collect, make_act, resolve_pettingzoo
from jmarl.agents.sharing import make_policy_mapping
from jmarl.cli import main
from jmarl.env.base import spec_only

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
    traj, _ = collect(venv, counting_act, params, venv.reset(), jax.random.key(1), 60, book)
    assert len(calls) == 60  # one jitted call per step for all envs x agents
    alive = np.asarray(traj.alive)
    assert alive.shape == (60, 2, spec.num_agents)
    # rows of agents that are not alive carry no reward (they are out of the loss)
    assert np.all(np.asarray(traj.reward)[~alive] == 0.0)


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
    assert "bad env_kwargs {'bogus_arg': 1}" in capsys.readouterr().err


def test_mappo_through_the_bridge_beats_random_play(tmp_path: Path) -> None:
    # random play on mpe2 simple_spread (3 agents) scores about -26 per agent
    _run(
        tmp_path,
        "pettingzoo:mpe2.simple_spread_v3",
        40_000,
        "--num-envs",
        "8",
        "--num-minibatches",
        "2",
        "--hidden-sizes",
        "64,64",
    )
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    last = np.mean([r["episode_return"] for r in rows[-len(rows) // 5 :]])
    assert last > -23.0, last


def test_magent2_battle_trains_through_the_bridge(tmp_path: Path) -> None:
    pytest.importorskip("magent2")
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
