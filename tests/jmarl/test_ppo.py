"""Contracts of the PPO training loop: smoke over modes, determinism, scan safety, masks."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from jmarl.algos.base import Transition
from jmarl.algos.ppo.losses import PPOBatch, ppo_loss
from jmarl.algos.ppo.networks import make_actor_critic
from jmarl.algos.ppo.update import shuffle

TINY = jmarl.PPOConfig(
    num_envs=2, rollout_length=5, num_epochs=2, num_minibatches=2, hidden_sizes=(8,)
)
GROUPS = {"g0": ["agent_0", "agent_2"], "g1": ["agent_1"]}


def _trainer(
    algo: str = "mappo", sharing: str = "shared", continuous: bool = False, updates: int = 2
) -> jmarl.Trainer:
    env = jmarl.make("simple_spread", num_agents=3, max_steps=4, continuous_actions=continuous)
    kwargs: dict = {}
    if sharing == "grouped":
        kwargs["agent_groups"] = GROUPS
    if sharing == "custom":
        kwargs["policy_mapping_fn"] = lambda a: "even" if a in ("agent_0", "agent_2") else a
    cfg = jmarl.ppo_config_for(algo, TINY)
    return jmarl.make_ppo(env, cfg, updates * cfg.steps_per_update, sharing, **kwargs)


@pytest.mark.parametrize("algo", ["ippo", "mappo"])
@pytest.mark.parametrize("sharing", ["shared", "independent", "grouped", "custom"])
@pytest.mark.parametrize("continuous", [False, True])
def test_two_updates_of_every_mode(algo: str, sharing: str, continuous: bool) -> None:
    trainer = _trainer(algo, sharing, continuous)
    out = jax.jit(trainer.train)(jax.random.key(0))
    m = out.metrics
    assert m["loss"].shape == (2,)
    for name in ("loss", "policy_loss", "value_loss", "entropy", "grad_norm"):
        assert np.all(np.isfinite(m[name])), name
    np.testing.assert_array_equal(m["update"], [1, 2])
    assert int(out.state.update) == 2


def test_same_key_same_metrics_and_different_keys_differ() -> None:
    trainer = _trainer()
    train = jax.jit(trainer.train)
    a, b = train(jax.random.key(1)), train(jax.random.key(1))
    c = train(jax.random.key(2))
    chex.assert_trees_all_equal(a.metrics, b.metrics)
    assert not np.allclose(a.metrics["loss"], c.metrics["loss"])


def test_vmap_over_seeds_matches_single_runs() -> None:
    trainer = _trainer()
    keys = jax.random.split(jax.random.key(0), 3)
    many = jax.jit(jax.vmap(trainer.train))(keys)
    assert many.metrics["loss"].shape == (3, 2)
    one = jax.jit(trainer.train)(keys[1])
    np.testing.assert_allclose(many.metrics["loss"][1], one.metrics["loss"], rtol=2e-4, atol=1e-5)


def test_step_is_scan_safe_and_does_not_retrace() -> None:
    trainer = _trainer(sharing="grouped")
    runner = jax.jit(trainer.init)(jax.random.key(0))

    @jax.jit
    @chex.assert_max_traces(n=1)
    def step(r: jmarl.TrainerState) -> tuple:
        return trainer.step(r)

    new, _ = step(runner)
    shapes = lambda t: jax.tree.map(lambda x: (x.shape, x.dtype), t)
    assert shapes(new) == shapes(runner)
    assert jax.tree.structure(new) == jax.tree.structure(runner)
    step(new)  # a second call with the same shapes must not retrace
    chex.clear_trace_counter()


def test_shared_optimizer_state_is_stored_once() -> None:
    def sizes(sharing: str) -> tuple[int, int]:
        runner = jax.eval_shape(_trainer(sharing=sharing).init, jax.random.key(0))
        count = lambda t: sum(int(np.prod(x.shape)) for x in jax.tree.leaves(t))
        return count(runner.learner.params), count(runner.learner.opt_state)

    (p_s, o_s), (p_i, o_i) = sizes("shared"), sizes("independent")
    assert p_i == 3 * p_s
    assert o_s <= 2 * p_s + 16  # Adam: two moments per parameter plus counters
    assert o_i >= 3 * (o_s - 16)


def _loss_inputs(alive_agent_1: bool) -> tuple:
    trainer = _trainer()
    env = jmarl.make("simple_spread", num_agents=3, max_steps=4)
    ac = make_actor_critic(env.spec, trainer.mapping, trainer.config)
    params = ac.init(jax.random.key(0))
    _, ts = jax.vmap(env.reset)(jax.random.split(jax.random.key(1), 4))  # B=4
    alive = jnp.ones((4, 3), bool).at[:, 1].set(alive_agent_1)
    tr = Transition(
        obs=ts.obs,
        state=ts.state,
        action=jnp.ones((4, 3), jnp.int32),
        reward=jnp.ones((4, 3)),
        discount=jnp.ones((4, 3)),
        alive=alive,
        action_mask=None,
        extras={"log_prob": jnp.full((4, 3), -1.6), "value": jnp.zeros((4, 3))},
    )
    adv = jnp.array([[1.0, 5.0, -1.0]] * 4) * jnp.arange(1, 5)[:, None]
    return ac, params, PPOBatch(tr, adv, adv), trainer.config


def test_dead_agents_do_not_enter_the_loss() -> None:
    ac, params, batch, cfg = _loss_inputs(alive_agent_1=False)
    loss, _ = ppo_loss(params, batch, ac, cfg)
    # change everything about the dead agent: the loss must not move
    tr = batch.transition
    poisoned = batch._replace(
        transition=tr._replace(
            obs=tr.obs.at[:, 1].set(1e3),
            extras={**tr.extras, "log_prob": tr.extras["log_prob"].at[:, 1].set(9.0)},
        ),
        advantages=batch.advantages.at[:, 1].set(-123.0),
        targets=batch.targets.at[:, 1].set(77.0),
    )
    loss2, _ = ppo_loss(params, poisoned, ac, cfg)
    np.testing.assert_allclose(loss, loss2, rtol=1e-6)
    grad_obs = jax.grad(
        lambda o: ppo_loss(params, batch._replace(transition=tr._replace(obs=o)), ac, cfg)[0]
    )(tr.obs)
    np.testing.assert_array_equal(grad_obs[:, 1], 0.0)
    assert np.abs(grad_obs[:, 0]).sum() > 0


def test_128_agents_train_with_one_shared_policy() -> None:
    # 100+ agents: one shared parameter set serves all of them; the MAPPO critic's global state
    # is the compact 6N-float one, so two updates stay cheap
    env = jmarl.make("simple_spread", num_agents=128, max_steps=3)
    cfg = jmarl.PPOConfig(
        num_envs=1, rollout_length=3, num_epochs=1, num_minibatches=1, hidden_sizes=(8,)
    )
    trainer = jmarl.make_ppo(env, cfg, 2 * cfg.steps_per_update, "shared")
    out = jax.jit(trainer.train)(jax.random.key(0))
    assert len(trainer.mapping.blocks) == 1 and trainer.mapping.blocks[0].kind == "shared"
    for name in ("loss", "entropy", "grad_norm", "episode_return"):
        assert np.all(np.isfinite(out.metrics[name])), name
    np.testing.assert_array_equal(out.metrics["episodes"], [1, 1])
    actor = out.state.learner.params.actor
    assert all(leaf.shape[0] != 128 for leaf in jax.tree.leaves(actor))  # not stacked per agent


def _policy_leaves(mapping: jmarl.PolicyMapping, blocks: tuple, policy: str) -> list:
    """The arrays of ``policy`` in a tuple-of-blocks tree (its row of a stacked block)."""
    for block, tree in zip(mapping.blocks, blocks):
        if policy in block.policy_ids:
            if block.kind == "shared":
                return jax.tree.leaves(tree)
            j = block.policy_ids.index(policy)
            return [leaf[j] for leaf in jax.tree.leaves(tree)]
    raise KeyError(policy)


def _moments(opt_state: object) -> list:
    """Every parameter-shaped part of an optimizer state (Adam's first and second moments)."""
    is_params = lambda x: isinstance(x, jmarl.algos.ppo.ActorCriticParams)
    return [x for x in jax.tree.leaves(opt_state, is_leaf=is_params) if is_params(x)]


@pytest.mark.parametrize("sharing", ["independent", "grouped", "custom"])
def test_frozen_policies_stay_bit_identical_while_the_others_learn(sharing: str) -> None:
    trainer = _trainer(sharing=sharing, updates=5)  # the learning rate anneals over 5 updates
    mapping = trainer.mapping
    step = jax.jit(trainer.step)
    # every policy learns for two updates (so Adam's moments are not zero), then one freezes
    state = step(step(jax.jit(trainer.init)(jax.random.key(0)))[0])[0]
    frozen, learning = mapping.policy_ids[0], mapping.policy_ids[-1]
    trainable = jnp.ones(len(mapping.policy_ids), bool).at[0].set(False)
    state = state._replace(learner=state.learner._replace(trainable=trainable))
    new = step(step(step(state)[0])[0])[0]
    old_l, new_l = state.learner, new.learner
    trees = lambda lr: (
        [lr.params.actor, lr.params.critic]
        + [part for m in _moments(lr.opt_state) for part in (m.actor, m.critic)]
    )
    for before, after in zip(trees(old_l), trees(new_l)):
        for a, b in zip(
            _policy_leaves(mapping, before, frozen), _policy_leaves(mapping, after, frozen)
        ):
            np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    moved = [
        not np.array_equal(np.asarray(a), np.asarray(b))
        for a, b in zip(
            _policy_leaves(mapping, old_l.params.actor, learning),
            _policy_leaves(mapping, new_l.params.actor, learning),
        )
    ]
    assert any(moved), f"policy {learning!r} did not learn"


@pytest.mark.parametrize("size", [1, 2, 3, 5, 64, 800, 3200, 4097, 70_000])
def test_shuffle_is_a_permutation_of_every_index(size: int) -> None:
    """Both paths: the packed single-operand sort (<= 2^16) and the argsort fallback."""
    perm = np.asarray(jax.jit(shuffle, static_argnums=1)(jax.random.key(size), size))
    assert perm.dtype == np.int32
    np.testing.assert_array_equal(np.sort(perm), np.arange(size))


def test_shuffle_draws_every_order_equally_often() -> None:
    """4800 shuffles of 4 items: each of the 24 orders ~200 times (chi-square, 23 dof; the
    0.1% critical value is 49.7); the same key gives the same order."""
    keys = jax.random.split(jax.random.key(0), 4800)
    perms = np.asarray(jax.jit(jax.vmap(lambda k: shuffle(k, 4)))(keys))
    _, counts = np.unique(perms, axis=0, return_counts=True)
    assert len(counts) == 24
    chi2 = float(np.sum((counts - 200.0) ** 2 / 200.0))
    assert chi2 < 49.7, (chi2, counts)
    np.testing.assert_array_equal(shuffle(keys[0], 4), shuffle(keys[0], 4))


def test_shuffle_splits_items_evenly_between_minibatches() -> None:
    """Across shuffles of 3200 rows, each row lands in the first half with probability 1/2:
    no index (early or late in the rollout) is favoured."""
    keys = jax.random.split(jax.random.key(1), 400)
    first_half = jax.jit(jax.vmap(lambda k: jnp.zeros(3200).at[shuffle(k, 3200)[:1600]].set(1.0)))
    share = np.asarray(first_half(keys)).mean(axis=0)  # [3200], each ~ Binomial(400, 1/2)/400
    assert abs(share.mean() - 0.5) < 1e-6
    assert np.abs(share - 0.5).max() < 5 * 0.5 / np.sqrt(400) + 0.05
    early, late = share[:800].mean(), share[-800:].mean()
    assert abs(early - late) < 0.02, (early, late)
