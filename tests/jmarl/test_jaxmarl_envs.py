"""Every env JaxMARL 0.2.0 registers, through ``from_jaxmarl``: it passes ``check_env`` and
two MAPPO and two IPPO updates give finite metrics, or it is one the table says cannot run
here, with the reason.

JaxMARL is a test-only dependency, installed by the README's test command (with
``--no-deps``: see there) and imported plainly, so a missing JaxMARL fails, never skips.
"""

from __future__ import annotations

import importlib.util
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import jaxmarl
import numpy as np
import pytest

import jmarl
from jmarl.env.jaxmarl_adapter import from_jaxmarl
from jmarl.testing import check_env, tiny_config

MPE = [
    "MPE_simple_v3",
    "MPE_simple_tag_v3",
    "MPE_simple_world_comm_v3",
    "MPE_simple_spread_v3",
    "MPE_simple_crypto_v3",
    "MPE_simple_speaker_listener_v4",
    "MPE_simple_push_v3",
    "MPE_simple_adversary_v3",
    "MPE_simple_reference_v3",
    "MPE_simple_facmac_v1",
    "MPE_simple_facmac_3a_v1",
]
MABRAX = ["ant_4x2", "halfcheetah_6x1", "hopper_3x1", "humanoid_9|8", "walker2d_2x3"]
ROBOTARIUM = [
    "JaxRobotarium_navigation",
    "JaxRobotarium_discovery",
    "JaxRobotarium_material_transport",
    "JaxRobotarium_warehouse",
    "JaxRobotarium_arctic_transport",
    "JaxRobotarium_foraging",
    "JaxRobotarium_rware",
    "JaxRobotarium_predator_prey",
]
TRAINS = [
    *MPE,
    "switch_riddle",
    "SMAX",
    "HeuristicEnemySMAX",
    "LearnedPolicyEnemySMAX",
    "storm_2p",
    "storm_np",
    "hanabi",
    "overcooked",
    "overcooked_v2",
    "coin_game",
    "jaxnav",
]
# envs that do not fit the per-agent protocol, and the error from_jaxmarl gives
REFUSED = {
    # InTheGrid returns one observation dict for all agents ({"observations": [N, ...],
    # "inventory": [5, N]}) and one reward array; env.agents are the ints 0..N-1
    "storm": r"observation is not keyed by agent: no entry for agent 0",
    # JaxMARL 0.2.0 declares Box(16) observations for these and returns longer ones
    "MPE_simple_facmac_6a_v1": r"observation of agent 'adversary_0' has shape \(28,\), .* \(16,\)",
    "MPE_simple_facmac_9a_v1": r"observation of agent 'adversary_0' has shape \(\d+,\), .* \(16,\)",
}
# the package each optional family needs (none is a jmarl test dependency)
NEEDS = {**dict.fromkeys(MABRAX, "brax"), **dict.fromkeys(ROBOTARIUM, "jaxrobotarium")}
# Each env compiles check_env's programs and two trainers (20 s to 2 minutes on one core):
# CI runs two that cover the failures (no get_avail_actions, agents with different
# spaces, MultiDiscrete observations), the rest run with `-m slow`.
FAST = {"MPE_simple_speaker_listener_v4", "switch_riddle"}
SLOW = set(TRAINS) - FAST


class _Uniform(NamedTuple):
    n: int
    shape: tuple[int, ...]

    def sample(self, seed: jax.Array) -> jax.Array:
        return jax.random.randint(seed, self.shape, 0, self.n)


class _UniformPolicy:
    """A stand-in for the trained enemy ``LearnedPolicyEnemySMAX`` takes:
    ``apply(params, obs) -> (distribution, value)``; moves uniformly at random."""

    def apply(self, params: Any, obs: jax.Array) -> tuple[_Uniform, None]:
        del params
        return _Uniform(5, obs.shape[:-1]), None


def _make(name: str) -> tuple[Any, dict[str, Any]]:
    """``jaxmarl.make(name)`` and the ``from_jaxmarl`` arguments it needs."""
    if name == "LearnedPolicyEnemySMAX":
        return jaxmarl.make(name, policy=_UniformPolicy(), params=jnp.zeros(())), {}
    if name == "hanabi":  # no episode bound of its own: truncated by the adapter
        return jaxmarl.make(name), {"max_steps": 80}
    return jaxmarl.make(name), {}


def _sharing(spec: jmarl.EnvSpec) -> str:
    same = len(set(spec.agent_observation_spaces)) == len(set(spec.agent_action_spaces)) == 1
    return "shared" if same else "independent"


def test_the_table_covers_every_registered_env() -> None:
    assert set(jaxmarl.registered_envs) == set(TRAINS) | set(REFUSED) | set(NEEDS)


def _params(names: list[str]) -> list[Any]:
    return [
        pytest.param(n, marks=pytest.mark.slow) if n in SLOW else pytest.param(n) for n in names
    ]


# JaxMARL's own warnings: jaxnav's default map, its lidar's bool scatter under jax 0.10, and
# the nudge from overcooked (v1) to overcooked_v2
@pytest.mark.filterwarnings("ignore:max_dist_to_goal:UserWarning")
@pytest.mark.filterwarnings("ignore:scatter inputs have incompatible types:FutureWarning")
@pytest.mark.filterwarnings("ignore:OvercookedV2 is now released:DeprecationWarning")
@pytest.mark.parametrize("name", _params(TRAINS))
def test_env_passes_check_env_and_trains(name: str) -> None:
    raw, kwargs = _make(name)
    env = from_jaxmarl(raw, **kwargs)
    check_env(env, jax.random.key(0), num_steps=min(2 * env.spec.max_steps + 2, 60))
    tiny = tiny_config(jmarl.PPOConfig())
    for algo in ("mappo", "ippo"):
        cfg = jmarl.ppo_config_for(algo, tiny)
        trainer = jmarl.make_ppo(env, cfg, 2 * cfg.steps_per_update, _sharing(env.spec))
        metrics = jax.jit(trainer.train)(jax.random.key(0)).metrics
        for key, value in metrics.items():
            value = np.asarray(value)
            assert value.shape[0] == 2, (algo, key)
            if not key.startswith("episode_"):  # NaN where no episode ended in the update
                assert np.all(np.isfinite(value)), (algo, key, value)


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_env_that_cannot_fit_is_refused_when_wrapping(name: str) -> None:
    with pytest.raises(ValueError, match=REFUSED[name]):
        from_jaxmarl(jaxmarl.make(name))


@pytest.mark.parametrize("name", sorted(NEEDS))
def test_env_that_needs_a_missing_package_says_so(name: str) -> None:
    package = NEEDS[name]
    assert importlib.util.find_spec(package) is None, (
        f"{package} is installed: test {name} in TRAINS"
    )
    with pytest.raises((ImportError, ValueError), match=package):
        jaxmarl.make(name)
