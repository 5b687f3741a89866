"""Auxiliary losses (``jmarl.algos.auxiliary``): named parameter sets and loss terms beside
actor and critic, with their own optimizer labels, frozen with their policies."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jmarl
from jmarl.algos import register, unregister
from jmarl.algos.auxiliary import AuxiliaryLoss, action_prediction, other_agents
from jmarl.algos.base import Algorithm
from jmarl.algos.ppo import make as make_ppo_trainer
from jmarl.testing import check_algorithm, make_probe_env

ENV = make_probe_env(num_agents=3, num_actions=4, episode_length=4)
CFG = jmarl.PPOConfig(
    num_envs=8,
    rollout_length=8,
    num_minibatches=2,
    hidden_sizes=(16,),
    centralized_critic=False,
    lr=3e-3,
)


def _train(auxiliaries: tuple = (), updates: int = 3, seed: int = 0, **kw: object):
    mapping = jmarl.make_policy_mapping(ENV.spec, kw.pop("sharing", "shared"))  # type: ignore[arg-type]
    trainer = make_ppo_trainer(ENV, CFG, updates * CFG.steps_per_update, mapping, auxiliaries)
    return jax.jit(trainer.train)(jax.random.key(seed))


def test_other_agents_lists_everyone_but_self_in_agent_order() -> None:
    np.testing.assert_array_equal(other_agents(3), [[1, 2], [0, 2], [0, 1]])


def test_an_auxiliary_head_that_reads_only_its_own_parameters_changes_nothing_else() -> None:
    plain, with_head = _train(), _train((action_prediction(),))
    params, params_h = plain.state.learner.params, with_head.state.learner.params
    assert params.aux is None and set(params_h.aux) == {"action_model"}
    for a, b in zip(jax.tree.leaves(params[:2]), jax.tree.leaves(params_h[:2])):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    for name in ("policy_loss", "value_loss", "entropy"):
        np.testing.assert_allclose(plain.metrics[name], with_head.metrics[name], rtol=1e-6)
    assert {"action_model/loss", "action_model/accuracy"} <= set(with_head.metrics)


def test_the_opponent_model_learns_which_half_of_the_others_actions_is_allowed() -> None:
    # the probe env allows the other agent j only actions with (a + t + j) even, and agent i
    # sees t: the best prediction puts 1/2 on each allowed action, cross-entropy log 2, from
    # log 4 for a uniform guess (the policies stay uniform over allowed actions: all pay alike)
    out = _train((action_prediction(hidden=(32,), weight=1.0),), updates=30)
    loss = np.asarray(out.metrics["action_model/loss"])
    assert abs(loss[0] - math.log(4)) < 0.05, loss[0]
    # 30 small updates get most of the way: below 0.9 (70% of the gap), and the top guess is
    # right about half the time (1/4 for a uniform guess)
    assert loss[-5:].mean() < 0.9, loss[-5:]
    assert np.asarray(out.metrics["action_model/accuracy"])[-5:].mean() > 0.4


def test_an_auxiliary_set_gets_its_own_optimizer_label() -> None:
    # routed to an optimizer that never moves: its parameters stay bit-identical while the
    # actor trains with the algorithm's optimizer
    def frozen_head(spec: jmarl.EnvSpec, mapping: jmarl.PolicyMapping) -> AuxiliaryLoss:
        return action_prediction()(spec, mapping)._replace(optimizer=optax.set_to_zero())

    start = make_ppo_trainer(
        ENV, CFG, CFG.steps_per_update, jmarl.make_policy_mapping(ENV.spec), (frozen_head,)
    ).init_learner
    out = _train((frozen_head,))
    init = jax.jit(start)(jax.random.split(jax.random.key(0), 3)[0])
    for a, b in zip(
        jax.tree.leaves(init.params.aux), jax.tree.leaves(out.state.learner.params.aux)
    ):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(
        jax.tree.leaves(init.params.actor)[0], jax.tree.leaves(out.state.learner.params.actor)[0]
    )


@pytest.mark.parametrize("name", ["actor", "critic", "twice"])
def test_bad_auxiliary_names_are_refused(name: str) -> None:
    heads = (action_prediction(name), action_prediction(name if name != "twice" else "twice"))
    with pytest.raises(ValueError, match="reserved or used twice"):
        _train(heads if name == "twice" else heads[:1])


def test_action_prediction_needs_discrete_actions() -> None:
    env = jmarl.make("simple_spread", num_agents=2, continuous_actions=True)
    with pytest.raises(ValueError, match="Discrete"):
        make_ppo_trainer(env, CFG, 100, jmarl.make_policy_mapping(env.spec), (action_prediction(),))


@pytest.fixture
def ippo_om() -> Iterator[Algorithm]:
    make_om = functools.partial(make_ppo_trainer, auxiliaries=(action_prediction(hidden=(8,)),))
    algo = jmarl.ALGORITHMS["ippo"]._replace(name="ippo_om", make=make_om)
    register(algo)  # a variant with an auxiliary head is one registry call
    yield algo
    unregister(algo.name)


@pytest.mark.parametrize("sharing", [pytest.param("shared", marks=pytest.mark.slow), "custom"])
def test_a_variant_with_an_opponent_model_passes_the_conformance_check(
    ippo_om: Algorithm, sharing: str
) -> None:
    # includes: with every policy frozen, all acting parameters (the head's too) stay put
    check_algorithm(ippo_om, sharing=sharing)


def test_a_frozen_policys_head_stays_frozen_while_the_others_train() -> None:
    mapping = jmarl.make_policy_mapping(ENV.spec, "independent")
    trainer = make_ppo_trainer(ENV, CFG, 2 * CFG.steps_per_update, mapping, (action_prediction(),))
    state = jax.jit(trainer.init)(jax.random.key(0))
    state = state._replace(learner=state.learner._replace(trainable=jnp.array([True, False, True])))
    step = jax.jit(trainer.step)
    new, _ = step(step(state)[0])
    (before,), (after,) = (
        state.learner.params.aux["action_model"],
        new.learner.params.aux["action_model"],
    )
    for a, b in zip(jax.tree.leaves(before), jax.tree.leaves(after)):
        np.testing.assert_array_equal(a[1], b[1])
        assert not np.array_equal(a[0], b[0])
