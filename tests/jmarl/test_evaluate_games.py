"""``jmarl evaluate`` reports the NashConv of a trained policy in games it can enumerate."""

from __future__ import annotations

import json
from pathlib import Path

import jax
import pytest
from flax import serialization

import jmarl
from jmarl.cli import main
from jmarl.eval.policies import actor_critic_policy, greedy_policy
from jmarl.run.checkpoint import CHECKPOINT_NAME
from jmarl.run.config import from_dict
from jmarl.run.driver import nash_conv_report

SMALL = ["--steps", "200", "--num-envs", "4", "--rollout-length", "25", "--hidden-sizes", "8"]


def _saved_policy_params(run: Path) -> tuple:
    """Seed 0's parameters read from the checkpoint file itself, and the run's trainer."""
    cfg = from_dict(json.loads((run / "config.json").read_text()))
    env = jmarl.make(cfg.env)
    trainer = cfg.algorithm.make(
        env, cfg.algo_config, cfg.steps, jmarl.make_policy_mapping(env.spec, cfg.sharing)
    )
    template = trainer.init_learner(jax.random.key(0)).params
    raw = serialization.msgpack_restore((run / CHECKPOINT_NAME).read_bytes())
    saved = jax.tree.map(lambda x: x[0], raw["state"]["params"])  # [seeds, ...]
    return serialization.from_state_dict(template, saved), env, trainer


def _evaluate(run: Path, capsys: pytest.CaptureFixture[str], *flags: str) -> dict:
    capsys.readouterr()
    assert main(["evaluate", str(run), "--episodes", "8", *flags]) == 0
    return json.loads(capsys.readouterr().out.strip().splitlines()[-1])


def test_evaluate_reports_the_trained_policys_nash_conv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["train", "--env", "kuhn_poker", "--algo", "ippo", *SMALL, "--quiet"]
    assert main([*argv, "--out", str(tmp_path)]) == 0
    params, env, trainer = _saved_policy_params(tmp_path)
    # stochastic evaluation: the actor's exact action distribution
    want = jmarl.nash_conv(env, actor_critic_policy(trainer, params, env.spec))
    assert _evaluate(tmp_path, capsys)["nash_conv"] == pytest.approx(want, abs=1e-6)
    # deterministic evaluation: its greedy actions
    greedy = jmarl.nash_conv(env, greedy_policy(trainer, params, env.spec))
    got = _evaluate(tmp_path, capsys, "--deterministic")["nash_conv"]
    assert got == pytest.approx(greedy, abs=1e-6) and got != pytest.approx(want)


def test_no_nash_conv_where_the_game_cannot_be_enumerated() -> None:
    env = jmarl.make("simple_spread", num_agents=2)
    trainer = jmarl.make_ppo(env, jmarl.PPOConfig(), 100)
    assert nash_conv_report(env, trainer, None, 1, False) == {}
