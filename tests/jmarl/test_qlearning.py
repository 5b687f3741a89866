"""Multi-agent Q-learning (IQL, VDN, QMIX): the replay buffer, TD targets by hand, the mixers'
monotonicity, exploration, decentralised utilities, bad input, the QMIX paper's two-step
game (QMIX finds the optimal 8, VDN settles for 7), and recurrent utilities (conformance, a
memory task feed-forward cannot solve)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from jmarl.algos.base import Transition
from jmarl.algos.qlearning import QConfig, make
from jmarl.algos.qlearning.losses import chosen, greedy, next_values, team_target
from jmarl.algos.qlearning.networks import make_q_networks
from jmarl.algos.qlearning.recurrent import rollout_sequences, unroll
from jmarl.algos.qlearning.train import make_act
from jmarl.algos.qlearning.update import QActing
from jmarl.algos.replay import add, init_replay, replay_bytes, rollout_items, sample
from jmarl.algos.rollout import make_rollout
from jmarl.cli import main
from jmarl.config_check import ConfigError
from jmarl.critics import make_qmix_mixer, make_vdn_mixer
from jmarl.env.base import TimeStep
from jmarl.env.games.two_step import OPTIMAL_RETURN, SAFE_RETURN
from jmarl.env.memory import memoryless_bound
from jmarl.eval.evaluate import make_evaluate
from jmarl.testing import check_algorithm, make_probe_env, tiny_config

# --- replay buffer ---------------------------------------------------------------------------


def test_the_buffer_is_a_ring_that_keeps_the_newest_items() -> None:
    buf = init_replay({"x": jnp.zeros(())}, capacity=4)
    buf = add(buf, {"x": jnp.array([1.0, 2.0, 3.0])})
    assert (int(buf.size), int(buf.position)) == (3, 3)
    buf = add(buf, {"x": jnp.array([4.0, 5.0])})  # 5 overwrites 1, the oldest
    assert buf.items["x"].tolist() == [5.0, 2.0, 3.0, 4.0]
    assert (int(buf.size), int(buf.position)) == (4, 1)


def test_sampling_draws_only_filled_slots() -> None:
    buf = add(init_replay(jnp.zeros(()), capacity=100), jnp.array([7.0, 8.0]))
    drawn = np.asarray(sample(buf, jax.random.key(0), 500))
    assert set(drawn.tolist()) == {7.0, 8.0}  # never an empty slot's 0


def test_buffer_memory_is_stated_up_front() -> None:
    item = {"obs": jnp.zeros((3, 18)), "action": jnp.zeros((3,), jnp.int32)}
    assert replay_bytes(item, 1000) == 1000 * (3 * 18 * 4 + 3 * 4)


# --- TD targets by hand ----------------------------------------------------------------------


def test_double_q_values_the_online_choice_with_the_target_network() -> None:
    online = jnp.array([[1.0, 5.0, 2.0]])  # online prefers action 1
    target = jnp.array([[4.0, 3.0, 9.0]])  # target prefers action 2
    mask = jnp.array([[True, True, True]])
    assert next_values(online, target, mask, double_q=True).tolist() == [3.0]  # target[1]
    assert next_values(online, target, mask, double_q=False).tolist() == [9.0]  # max target
    masked = jnp.array([[True, False, False]])
    assert next_values(online, target, masked, double_q=True).tolist() == [4.0]  # only 0 allowed


def test_greedy_and_chosen_respect_the_mask() -> None:
    q = jnp.array([[1.0, 9.0, 3.0], [2.0, 1.0, 0.0]])
    mask = jnp.array([[True, False, True], [False, True, True]])
    assert greedy(q, mask).tolist() == [2, 1]
    assert chosen(q, jnp.array([1, 0])).tolist() == [9.0, 2.0]


def test_team_target_by_hand() -> None:
    reward = jnp.array([[1.0, 3.0], [2.0, 2.0]])  # team rewards 2 and 2
    discount = jnp.array([[0.0, 1.0], [0.0, 0.0]])  # env 0 goes on (one agent), env 1 ended
    next_total = jnp.array([10.0, 10.0])
    # 2 + 0.5 * 1 * 10 = 7 ; 2 + 0.5 * 0 * 10 = 2
    assert team_target(reward, discount, next_total, 0.5).tolist() == [7.0, 2.0]


def test_transitions_pair_each_step_with_the_next_observation() -> None:
    t, e, n = 3, 2, 1
    obs = jnp.arange(t * e, dtype=jnp.float32).reshape(t, e, n, 1)
    z = jnp.zeros((t, e, n))
    traj = Transition(obs, jnp.zeros((t, e, 1)), z.astype(int), z, z + 1, z > -1, None, {})
    last_obs = jnp.full((e, n, 1), 100.0)
    last = TimeStep(
        last_obs, jnp.zeros((e, 1)), z[0], z[0] > 0, z[0] > 0, z[0, :, 0] > 0, z[0] > -1, None
    )
    items = rollout_items(traj, last, mask_width=2)
    assert items.obs[:, 0, 0].tolist() == [0, 1, 2, 3, 4, 5]  # [T * E]: step-major
    assert items.next_obs[:, 0, 0].tolist() == [2, 3, 4, 5, 100, 100]
    assert items.action_mask.shape == (6, 1, 2) and bool(items.action_mask.all())


# --- mixers ----------------------------------------------------------------------------------


def test_vdn_sums_the_utilities() -> None:
    mixer = make_vdn_mixer()
    assert (
        float(mixer.apply(mixer.init(jax.random.key(0)), jnp.array([1.0, -2.0, 4.0]), None)) == 3.0
    )


def test_qmix_is_monotonic_in_every_utility_and_conditions_on_the_state() -> None:
    mixer = make_qmix_mixer(num_agents=3, state_dim=4, embed_dim=8, hypernet_hidden=16)
    params = mixer.init(jax.random.key(0))
    qs = jax.random.normal(jax.random.key(1), (64, 3)) * 5
    states = jax.random.normal(jax.random.key(2), (64, 4))
    grads = jax.vmap(jax.grad(mixer.apply, argnums=1), in_axes=(None, 0, 0))(params, qs, states)
    assert bool((grads >= 0).all())
    q = jnp.array([1.0, 2.0, 3.0])
    assert float(mixer.apply(params, q, states[0])) != float(mixer.apply(params, q, states[1]))


# --- acting ----------------------------------------------------------------------------------


def _nets(sharing: str = "shared", **kw: object):
    env = make_probe_env(num_agents=3, num_actions=4)
    cfg = QConfig(hidden_sizes=(16,), **kw)  # type: ignore[arg-type]
    nets = make_q_networks(env.spec, jmarl.make_policy_mapping(env.spec, sharing), cfg)
    _, ts = jax.vmap(env.reset)(jax.random.split(jax.random.key(0), 5))
    return env, nets, nets.init(jax.random.key(1)), ts


def test_acting_is_greedy_without_exploration_and_uniform_over_allowed_actions_with_it() -> None:
    _, nets, params, ts = _nets()
    act = jax.jit(make_act(nets), static_argnums=4)
    q = nets.q_values(params.agents, ts.obs, batch_dims=1)
    greedy_actions = greedy(q, ts.action_mask)
    out = act(QActing(params.agents, jnp.float32(0.0)), ts, jax.random.key(2), (), False)
    np.testing.assert_array_equal(out.action, greedy_actions)
    keys = jax.random.split(jax.random.key(3), 400)
    explored = jax.vmap(
        lambda k: act(QActing(params.agents, jnp.float32(1.0)), ts, k, (), False).action
    )(keys)
    counts = np.stack([(np.asarray(explored) == a).mean(0) for a in range(4)], -1)  # [E, N, A]
    allowed = np.asarray(ts.action_mask)
    assert (counts[~allowed] == 0).all()
    np.testing.assert_allclose(
        counts[allowed], (1 / allowed.sum(-1, keepdims=True) * allowed)[allowed], atol=0.1
    )


@pytest.mark.parametrize("sharing", ["shared", "independent"])
def test_an_agents_utility_ignores_other_agents_observations(sharing: str) -> None:
    _, nets, params, ts = _nets(sharing)
    q = nets.q_values(params.agents, ts.obs, batch_dims=1)
    moved = ts.obs.at[:, 1:].add(3.0)  # every agent but agent 0
    q2 = nets.q_values(params.agents, moved, batch_dims=1)
    np.testing.assert_array_equal(q[:, 0], q2[:, 0])
    assert not np.allclose(q[:, 1:], q2[:, 1:])


# --- bad input -------------------------------------------------------------------------------


def _cli_error(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.mark.parametrize("algo", ["iql", "vdn", "qmix"])
def test_q_learning_on_continuous_actions_exits_2_naming_the_mismatch(algo: str, capsys) -> None:
    line = _cli_error(["train", "--algo", algo, "--continuous-actions", "--steps", "1000"], capsys)
    assert f"{algo} needs discrete actions" in line and "Box" in line


def test_qmix_without_a_global_state_is_refused() -> None:
    env = make_probe_env(num_agents=2)
    spec = env.spec
    stateless = env._replace(
        spec=type(spec)(**{**spec.__dict__, "state_space": jmarl.spaces.Box(0.0, 1.0, (0,))})
    )
    mapping = jmarl.make_policy_mapping(stateless.spec, "shared")
    with pytest.raises(ConfigError, match="qmix's mixer conditions on the global state"):
        make(stateless, QConfig(mixer="qmix"), 10_000, mapping)
    make(stateless, QConfig(mixer="vdn", learning_starts=0), 10_000, mapping)  # VDN needs no state


def test_settings_that_cannot_learn_are_refused() -> None:
    env = jmarl.make("two_step")
    mapping = jmarl.make_policy_mapping(env.spec, "shared")
    with pytest.raises(ConfigError, match="leaves no update to learn"):
        make(env, QConfig(learning_starts=5000), 4000, mapping)
    with pytest.raises(ConfigError, match="raise --buffer-size"):
        QConfig(num_envs=8, rollout_length=10, buffer_size=50)


# --- learning: the QMIX paper's two-step game ------------------------------------------------

SEEDS = 5


def _two_step_returns(mixer: str) -> np.ndarray:
    """Greedy returns of ``SEEDS`` seeds trained with uniform exploration (as in the paper)."""
    env = jmarl.make("two_step")
    cfg = QConfig(
        num_envs=8,
        rollout_length=2,
        buffer_size=512,
        batch_size=32,
        learning_starts=64,
        num_epochs=1,
        lr=5e-3,
        anneal_lr=False,
        gamma=0.99,
        epsilon_start=1.0,
        epsilon_finish=1.0,
        target_update_interval=50,
        hidden_sizes=(32,),
        mixer=mixer,
        mixer_embed_dim=8,
        mixer_hidden=16,
    )
    trainer = make(env, cfg, 16_000, jmarl.make_policy_mapping(env.spec, "independent"))
    out = jax.jit(jax.vmap(trainer.train))(jax.random.split(jax.random.key(0), SEEDS))
    evaluate = make_evaluate(env, trainer, episodes=1, deterministic=True)
    params = jax.vmap(trainer.acting_params)(out.state.learner)
    return np.asarray(
        jax.vmap(evaluate, in_axes=(0, None))(params, jax.random.key(1)).returns
    ).ravel()


def test_qmix_learns_the_optimal_joint_policy_of_the_two_step_game() -> None:
    np.testing.assert_array_equal(_two_step_returns("qmix"), [OPTIMAL_RETURN] * SEEDS)


def test_vdn_settles_for_the_safe_branch_of_the_two_step_game() -> None:
    np.testing.assert_array_equal(_two_step_returns("vdn"), [SAFE_RETURN] * SEEDS)


# --- recurrent utilities -----------------------------------------------------------------------


def test_recurrent_qmix_passes_the_conformance_check() -> None:
    check_algorithm(jmarl.ALGORITHMS["qmix"], cfg=QConfig(recurrent=True), sharing="custom")


def test_recurrent_q_learning_solves_a_task_feed_forward_cannot() -> None:
    """The memory task: recall step 0's cue at step 2. Memoryless policies score at most 1/2
    (:func:`jmarl.env.memory.memoryless_bound`); replayed sequences from stored carries let
    the GRU learn to score 1 (greedy, 200 episodes per seed, 3 seeds)."""
    env = jmarl.make("memory", num_agents=2, max_steps=3, num_cues=2)
    cfg = QConfig(
        num_envs=16,
        rollout_length=3,
        buffer_size=3000,
        batch_size=96,
        learning_starts=480,
        num_epochs=2,
        lr=3e-3,
        epsilon_decay=0.5,
        target_update_interval=50,
        hidden_sizes=(32, 32),
        mixer="none",
        recurrent=True,
        gru_size=32,
    )
    trainer = make(env, cfg, 60_000, jmarl.make_policy_mapping(env.spec, "shared"))
    out = jax.jit(jax.vmap(trainer.train))(jax.random.split(jax.random.key(0), 3))
    evaluate = make_evaluate(env, trainer, episodes=200, deterministic=True)
    params = jax.vmap(trainer.acting_params)(out.state.learner)
    returns = jax.vmap(evaluate, in_axes=(0, None))(params, jax.random.key(1)).returns
    assert memoryless_bound(2) == 0.5
    assert np.asarray(returns.mean(-1)).min() >= 0.95


def test_replaying_a_stored_sequence_reproduces_the_utilities_acted_on() -> None:
    """Rollouts of 5 steps over 3-step episodes (so a sequence starts mid-episode, from a
    non-zero carry, and crosses an episode start): replaying each stored sequence from its
    ``h0`` gives, at every step, the utilities computed from the carry that step was acted
    from."""
    env = jmarl.make("memory", num_agents=2, max_steps=3, num_cues=2)
    cfg = QConfig(num_envs=4, rollout_length=5, buffer_size=100, recurrent=True, gru_size=8)
    trainer = make(env, cfg, 10_000, jmarl.make_policy_mapping(env.spec, "independent"))
    state = jax.jit(trainer.init)(jax.random.key(0))
    rollout = make_rollout(env, trainer.act, cfg.rollout_length)
    acting = trainer.acting_params(state.learner)
    rs, _ = rollout(acting, state.rollout, jax.random.key(1))
    rs, traj = rollout(acting, rs, jax.random.key(2))
    assert float(jnp.abs(traj.extras["carry"][0]).sum()) > 0  # starts from a non-zero carry
    assert bool(traj.extras["reset"][1:].any())  # and crosses an episode start
    seqs = rollout_sequences(traj, rs.timestep, num_actions=2)
    nets = make_q_networks(env.spec, trainer.mapping, cfg)
    replayed = unroll(nets, acting.q, seqs)[:, :-1]  # [E, T, N, A]
    step = jax.vmap(jax.vmap(nets.q_step, in_axes=(None, 0, 0, 0)), in_axes=(None, 0, 0, 0))
    _, acted = step(acting.q, traj.extras["carry"], traj.obs, traj.extras["reset"])  # [T, E, ...]
    np.testing.assert_allclose(replayed, jnp.swapaxes(acted, 0, 1), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("mixer", "width"), [("none", 0), ("vdn", 0), ("qmix", 3)])
def test_the_buffer_stores_the_global_state_only_for_a_mixer_that_reads_it(
    mixer: str, width: int
) -> None:
    env = jmarl.make("two_step")  # state: f32[3]
    cfg = QConfig(num_envs=4, rollout_length=2, mixer=mixer, buffer_size=64, learning_starts=0)
    trainer = make(env, cfg, 10_000, jmarl.make_policy_mapping(env.spec, "shared"))
    items = jax.eval_shape(trainer.init_learner, jax.random.key(0)).replay.items
    assert items.state.shape == (64, width) and items.next_state.shape == (64, width)


@pytest.mark.parametrize(("algo", "opt"), [("vdn", "opt_state"), ("maddpg", "actor_opt")])
def test_a_frozen_policy_keeps_its_adam_moments_while_the_others_train(algo: str, opt: str) -> None:
    """Custom mapping on the probe env: agents 0 and 2 share policy ``even`` (frozen), agent 1
    has its own; all train one step (non-zero moments), then ``even`` is frozen: after two more
    steps its parameters and Adam moments are bit-identical while the other policy's moved."""
    env = make_probe_env(num_agents=3)
    algorithm = jmarl.ALGORITHMS[algo]
    cfg = algorithm.configure(tiny_config(algorithm.defaults))
    mapping = jmarl.make_policy_mapping(
        env.spec, "custom", policy_mapping_fn=lambda a: a if a == "agent_1" else "even"
    )
    trainer = algorithm.make(env, cfg, 3 * cfg.num_envs * cfg.rollout_length, mapping)
    step = jax.jit(trainer.step)
    state = step(jax.jit(trainer.init)(jax.random.key(0)))[0]  # every policy trains once
    trainable = jnp.asarray([p != "even" for p in mapping.policy_ids])
    state = state._replace(learner=state.learner._replace(trainable=trainable))
    before, after = state.learner, step(step(state)[0])[0].learner
    even = [b.policy_ids[0] for b in mapping.blocks].index("even")
    weights = lambda s: trainer.acting_params(s)[0]
    shape = jax.tree.structure(weights(before))
    is_blocks = lambda t: isinstance(t, tuple) and jax.tree.structure(t) == shape
    moments = lambda s: [
        t[even] for t in jax.tree.leaves(getattr(s, opt), is_leaf=is_blocks) if is_blocks(t)
    ]
    assert len(moments(before)) == 2  # Adam's mu and nu
    jax.tree.map(np.testing.assert_array_equal, moments(before), moments(after))
    jax.tree.map(np.testing.assert_array_equal, weights(before)[even], weights(after)[even])
    moved = jax.tree.leaves(
        jax.tree.map(np.array_equal, weights(before)[1 - even], weights(after)[1 - even])
    )
    assert not all(moved)
