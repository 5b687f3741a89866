"""Learning tests on small budgets: IPPO and MAPPO must clearly beat doing nothing.

Per-agent episode returns on jmarl's simple_spread (3 agents, 25 steps), mean +- standard error
over 100k episodes (benchmarks/baseline_returns.py, benchmarks/results/baseline_returns.json):
uniform random -26.48 +- 0.02, doing nothing (action 0 every step) -24.21 +- 0.03, one fixed move
every step about -66, the scripted go-to-assigned-landmark policy -10.65 +- 0.01. Doing nothing
is the best policy that learns nothing. Longer runs live in the benchmark scripts.
"""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jmarl
from jmarl.eval.evaluate import make_evaluate

BUDGET = 400_000
DO_NOTHING = -24.21
EPISODES = 4096  # evaluation episodes, played side by side in one jitted program


# The final actor on 4096 episodes (fixed key; per-episode std about 5, SE 0.08). Measured at
# 400k steps: mappo/shared -19.42 (seed 0), -19.2 to -19.4 (seeds 0-3), -19.0 to -19.5 (seeds
# 0-5 trained side by side under vmap); ippo/independent -19.90 (seed 0), -19.9 to -20.3
# (seeds 0-3), -18.9 to -20.3 (vmap, seeds 0-5). The untrained actor on the same episodes:
# -26.4 (as random play). The bars lie 4.2 and 3.2 above doing nothing (over 40 SE) and 0.55 /
# 0.73 (7-9 SE) below the worst seed. With the learning rate 0 both score -26.4.
@pytest.mark.parametrize(
    ("algo", "sharing", "bar"), [("mappo", "shared", -20.0), ("ippo", "independent", -21.0)]
)
def test_learns_simple_spread_on_a_small_budget(algo: str, sharing: str, bar: float) -> None:
    env = jmarl.make("simple_spread", num_agents=3)
    cfg = jmarl.ppo_config_for(algo, jmarl.PPOConfig(gamma=0.9))
    trainer = jmarl.make_ppo(env, cfg, BUDGET, sharing)
    out = jax.jit(trainer.train)(jax.random.key(0))
    evaluate = jax.jit(make_evaluate(env, trainer, EPISODES))
    episodes = jax.random.key(1)  # the same env resets and env keys for both evaluations
    trained = np.asarray(evaluate(trainer.acting_params(out.state.learner), episodes).returns)
    untrained_actor = trainer.acting_params(trainer.init(jax.random.key(0)).learner)
    untrained = np.asarray(evaluate(untrained_actor, episodes).returns)
    se = trained.std(ddof=1) / np.sqrt(EPISODES)
    gain = (trained - untrained).mean()
    summary = f"{algo}/{sharing}: {trained.mean():.2f} +- {se:.2f}, {gain:+.2f} over untrained"
    assert trained.mean() > bar, summary
    assert bar >= DO_NOTHING + 3 * se, f"{EPISODES} episodes (SE {se:.2f}) cannot separate {bar}"
    # training did the improving: the untrained actor plays like random, below doing nothing
    assert untrained.mean() < DO_NOTHING - 1.0, untrained.mean()
