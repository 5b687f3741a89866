"""The algorithm contract: every registered algorithm x sharing mode passes
``jmarl.testing.check_algorithm``, and a new algorithm is its own module plus one registry call.

The toy algorithm below (REINFORCE on a linear softmax policy, no critic) touches nothing else:
registered, it trains, checkpoints and evaluates through the CLI and the run driver unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jmarl
from jmarl.algos import register, unregister
from jmarl.algos.base import ActOutput, Algorithm, Trainer, Transition
from jmarl.algos.rollout import make_trainer, no_carry, num_updates_for
from jmarl.cli import main
from jmarl.env.base import Env, TimeStep
from jmarl.nn.distributions import make_categorical
from jmarl.nn.network import Network
from jmarl.ops.losses import masked_mean
from jmarl.testing import check_algorithm, make_probe_env

# --- a toy algorithm: its whole module -------------------------------------------------------


@dataclass(frozen=True)
class ToyConfig:
    """:param num_envs: envs per update. :param rollout_length: steps per env per update.
    :param lr: SGD learning rate."""

    num_envs: int = 4
    rollout_length: int = 8
    lr: float = 0.1


class ToyState(NamedTuple):
    params: Any
    opt_state: Any


def make_toy(env: Env, cfg: ToyConfig, total_steps: int, mapping: jmarl.PolicyMapping) -> Trainer:
    """REINFORCE with reward-to-go over one rollout, one linear policy shared per block."""
    n_actions = env.spec.action_space.n
    obs_dim = env.spec.observation_space.shape[0]
    linear = Network(
        lambda k: 0.01 * jax.random.normal(k, (obs_dim, n_actions)), lambda w, x: x @ w
    )
    net = jmarl.share(linear, mapping)
    dist = make_categorical(n_actions)
    optimizer = optax.sgd(cfg.lr)

    def act(params: Any, ts: TimeStep, key: jax.Array, carry: Any, deterministic: bool = False):
        logits = jax.vmap(net.apply, in_axes=(None, 0))(params, ts.obs)
        if deterministic:
            return ActOutput(dist.mode(logits, ts.action_mask), {}, carry)
        return ActOutput(dist.sample(key, logits, ts.action_mask), {}, carry)

    def loss(params: Any, traj: Transition) -> jax.Array:
        def to_go(carry: jax.Array, x: tuple) -> tuple[jax.Array, jax.Array]:
            r, d = x
            g = r + d * carry
            return g, g

        _, returns = jax.lax.scan(
            to_go, jnp.zeros_like(traj.reward[0]), (traj.reward, traj.discount), reverse=True
        )
        logits = jax.vmap(jax.vmap(net.apply, in_axes=(None, 0)), in_axes=(None, 0))(
            params, traj.obs
        )
        log_prob = dist.log_prob(logits, traj.action, traj.action_mask)
        return -masked_mean(log_prob * returns, traj.alive)

    def learn(state: ToyState, traj: Transition, last_ts: TimeStep, key: jax.Array):
        value, grads = jax.value_and_grad(loss)(state.params, traj)
        updates, opt_state = optimizer.update(grads, state.opt_state)
        return ToyState(optax.apply_updates(state.params, updates), opt_state), {"loss": value}

    def init_learner(key: jax.Array) -> ToyState:
        params = net.init(key)
        return ToyState(params, optimizer.init(params))

    return make_trainer(
        env,
        init_learner=init_learner,
        act=act,
        learn=learn,
        acting_params=lambda s: s.params,
        init_carry=no_carry,
        num_envs=cfg.num_envs,
        rollout_length=cfg.rollout_length,
        num_updates=num_updates_for(cfg.num_envs * cfg.rollout_length, total_steps),
        mapping=mapping,
        config=cfg,
    )


TOY = Algorithm("toy_reinforce", ToyConfig, make_toy, section="toy", summary="a test algorithm")

# --- the tests -------------------------------------------------------------------------------


@pytest.fixture
def toy() -> Iterator[Algorithm]:
    register(TOY)  # the one registry call
    yield TOY
    unregister(TOY.name)


# ``custom`` (a shared and a stacked block side by side) for every algorithm, and ``shared``
# (one block: the rows fast path) for one algorithm of each implementation family, take every
# code path of ``jmarl.share`` in CI; the other pairs run with ``-m slow``.
CI_PAIRS = {(name, "custom") for name in jmarl.ALGORITHMS} | {
    ("mappo", "shared"),
    ("qmix", "shared"),
    ("maddpg", "shared"),
}


@pytest.mark.parametrize(
    ("name", "sharing"),
    [
        (n, m) if (n, m) in CI_PAIRS else pytest.param(n, m, marks=pytest.mark.slow)
        for n in jmarl.ALGORITHMS
        for m in jmarl.SHARING_MODES
    ],
)
def test_every_algorithm_passes_the_conformance_check(name: str, sharing: str) -> None:
    check_algorithm(jmarl.ALGORITHMS[name], sharing=sharing)


def test_the_toy_algorithm_passes_the_conformance_check(toy: Algorithm) -> None:
    check_algorithm(toy, sharing="custom")


def test_a_registered_toy_algorithm_trains_and_evaluates_through_the_cli(
    toy: Algorithm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["train", "--algo", "toy_reinforce", "--steps", "256", "--lr", "0.05", "--quiet"]
    assert main([*args, "--out", str(tmp_path)]) == 0
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["algo"] == "toy_reinforce" and config["toy"] == {
        "num_envs": 4,
        "rollout_length": 8,
        "lr": 0.05,
    }
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["env_steps"] for r in rows] == [32 * (i + 1) for i in range(8)]
    capsys.readouterr()
    assert main(["evaluate", str(tmp_path), "--episodes", "4"]) == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["episodes"] == 4 and np.isfinite(result["episode_return"])


def test_a_check_fails_for_a_broken_algorithm() -> None:
    # an act that ignores the action mask breaks the contract: the check must say so
    def unmasked(env: Env, cfg: Any, total_steps: int, mapping: jmarl.PolicyMapping) -> Trainer:
        trainer = jmarl.ALGORITHMS["ippo"].make(env, cfg, total_steps, mapping)

        def act(params: Any, ts: TimeStep, key: jax.Array, carry: Any, det: bool = False):
            out = trainer.act(params, ts._replace(action_mask=None), key, carry, det)
            return out._replace(action=jnp.zeros_like(out.action) + 1)  # often masked

        return trainer._replace(act=act)

    broken = jmarl.ALGORITHMS["ippo"]._replace(name="broken", make=unmasked)
    with pytest.raises(AssertionError, match="masked action"):
        check_algorithm(broken, env=make_probe_env(num_agents=3))
