"""IPPO/MAPPO give, seed for seed, the metrics recorded before the algorithm contract moved
them (``data/ppo_reference.json``): a faithful move changes no number.

Regenerate the file only for a change that is meant to alter the numerics, in a commit that
says so: ``python tests/jmarl/test_reference_metrics.py`` (from the repository root).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np
import pytest

if __name__ == "__main__":  # recording: the same environment the test suite uses
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
    os.environ.setdefault("JAX_PLATFORMS", "cpu")

import jmarl

DATA = Path(__file__).parent / "data" / "ppo_reference.json"
TINY = dict(num_envs=2, rollout_length=5, num_epochs=2, num_minibatches=2, hidden_sizes=(8,))
GROUPS = {"g0": ["agent_0", "agent_2"], "g1": ["agent_1"]}
CASES = [
    *[
        (algo, sharing, "simple_spread")
        for algo in ("ippo", "mappo")
        for sharing in ("shared", "independent", "grouped", "custom")
    ],
    ("mappo", "shared", "simple_spread_continuous"),
    ("ippo", "shared", "dict_goal"),
]


def run_case(algo: str, sharing: str, env_name: str) -> dict[str, Any]:
    """Three updates at seed 0: every metric per update and the final parameters' sums."""
    if env_name == "dict_goal":
        env = jmarl.make("dict_goal", num_agents=2)
    else:
        continuous = env_name.endswith("continuous")
        env = jmarl.make("simple_spread", num_agents=3, max_steps=4, continuous_actions=continuous)
    kwargs: dict[str, Any] = {}
    if sharing == "grouped":
        kwargs["agent_groups"] = GROUPS
    if sharing == "custom":
        kwargs["policy_mapping_fn"] = lambda a: "even" if a in ("agent_0", "agent_2") else a
    cfg = jmarl.ppo_config_for(algo, jmarl.PPOConfig(**TINY, cnn_channels=(4,)))
    trainer = jmarl.make_ppo(env, cfg, 3 * cfg.steps_per_update, sharing, **kwargs)
    out = jax.jit(trainer.train)(jax.random.key(0))
    params = out.state.learner.params
    return {
        "metrics": {k: np.asarray(v, np.float64).tolist() for k, v in sorted(out.metrics.items())},
        "param_abs_sums": [
            float(np.abs(np.asarray(x, np.float64)).sum()) for x in jax.tree.leaves(params)
        ],
    }


def case_id(case: tuple[str, str, str]) -> str:
    return "-".join(case)


@pytest.mark.parametrize("case", CASES, ids=case_id)
def test_metrics_equal_the_recorded_reference(case: tuple[str, str, str]) -> None:
    reference = json.loads(DATA.read_text())[case_id(case)]
    got = run_case(*case)
    assert sorted(got["metrics"]) == sorted(reference["metrics"])
    for name, values in reference["metrics"].items():
        np.testing.assert_allclose(got["metrics"][name], values, rtol=1e-4, atol=1e-6, err_msg=name)
    np.testing.assert_allclose(got["param_abs_sums"], reference["param_abs_sums"], rtol=1e-4)


if __name__ == "__main__":
    DATA.parent.mkdir(exist_ok=True)
    DATA.write_text(json.dumps({case_id(c): run_case(*c) for c in CASES}, indent=1) + "\n")
    print(f"wrote {DATA}")
