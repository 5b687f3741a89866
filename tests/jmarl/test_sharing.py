"""Agent -> policy mapping: modes, errors, memory, equivariance, decentralisation."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from jmarl.agents.sharing import make_policy_mapping, share
from jmarl.algos.ppo.networks import make_actor_critic
from jmarl.env import spaces
from jmarl.nn.network import Network
from jmarl.nn.networks import MLP, make_actor, make_critic, mlp_rows


def _spec(n: int = 4, hetero: bool = False) -> jmarl.EnvSpec:
    obs = spaces.Box(-1.0, 1.0, (3,))
    per_agent = tuple(spaces.Box(-1.0, 1.0, (2 if hetero and i == n - 1 else 3,)) for i in range(n))
    return jmarl.EnvSpec(
        name="toy",
        agent_ids=tuple(f"a{i}" for i in range(n)),
        observation_space=obs,
        action_space=spaces.Discrete(2),
        state_space=spaces.Box(-1.0, 1.0, (5,)),
        max_steps=5,
        agent_observation_spaces=per_agent,
    )


def test_modes_build_expected_blocks() -> None:
    spec = _spec(4)
    shared = make_policy_mapping(spec, "shared")
    assert [(b.kind, b.agents) for b in shared.blocks] == [("shared", (0, 1, 2, 3))]
    assert set(shared.policy_map.values()) == {"shared"}
    indep = make_policy_mapping(spec, "independent")
    assert [(b.kind, b.agents) for b in indep.blocks] == [("stacked", (0, 1, 2, 3))]
    assert indep.policy_map == {"a0": "a0", "a1": "a1", "a2": "a2", "a3": "a3"}
    grouped = make_policy_mapping(spec, "grouped", {"red": ["a0", "a2"], "blue": ["a1", "a3"]})
    assert [(b.kind, b.agents) for b in grouped.blocks] == [
        ("shared", (0, 2)),
        ("shared", (1, 3)),
    ]
    custom = make_policy_mapping(spec, "custom", policy_mapping_fn=lambda a: {"a0": "x"}.get(a, a))
    # "x" has one agent, as do a1..a3: all singletons merge into one stacked block.
    assert [(b.kind, b.agents) for b in custom.blocks] == [("stacked", (0, 1, 2, 3))]
    custom2 = make_policy_mapping(spec, "custom", policy_mapping_fn=lambda a: "p" + a[-1] * 0)
    assert custom2.policy_ids == ("p",)


@pytest.mark.parametrize(
    ("mode", "kwargs", "match"),
    [
        ("bogus", {}, "unknown sharing mode"),
        ("grouped", {}, "needs agent_groups"),
        ("grouped", {"agent_groups": {"g": ["a0", "a1", "a2"]}}, "without a group"),
        ("grouped", {"agent_groups": {"g": ["a0", "zz"]}}, "unknown agent 'zz'"),
        ("grouped", {"agent_groups": {"g": ["a0", "a1"], "h": ["a1", "a2", "a3"]}}, "two groups"),
        ("custom", {}, "needs policy_mapping_fn"),
        ("custom", {"policy_mapping_fn": lambda a: 3}, "must return str"),
    ],
)
def test_bad_configurations_raise(mode: str, kwargs: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        make_policy_mapping(_spec(4), mode, **kwargs)


def test_sharing_across_different_spaces_is_rejected() -> None:
    spec = _spec(4, hetero=True)
    with pytest.raises(ValueError, match=r"'a0' and 'a3'.*differ"):
        make_policy_mapping(spec, "shared")
    with pytest.raises(ValueError, match="spaces differ"):
        make_policy_mapping(spec, "grouped", {"g": ["a0", "a3"], "h": ["a1", "a2"]})
    # independent, or a group that keeps the odd agent alone, is fine
    make_policy_mapping(spec, "independent")
    make_policy_mapping(spec, "grouped", {"g": ["a0", "a1", "a2"], "h": ["a3"]})


def _linear() -> Network:
    return Network(lambda k: jax.random.normal(k, (3, 2)), lambda w, x: x @ w)


# Agent orders whose block permutation is not its own inverse (e.g. blocks (0, 3), (1, 2) give
# the order [0, 3, 1, 2]): a missing or wrong inverse permutation hands agents another
# block's outputs. Involutions such as [0, 2, 1, 3] would hide that.
SHARING_CASES = [
    ("shared", {}),
    ("independent", {}),
    ("grouped", {"agent_groups": {"g": ["a3", "a1"], "h": ["a0", "a2"]}}),
    ("grouped", {"agent_groups": {"g": ["a1", "a2"], "h": ["a0", "a3"]}}),
    ("custom", {"policy_mapping_fn": lambda a: "p" if a in ("a0", "a1") else a}),
    ("custom", {"policy_mapping_fn": lambda a: {"a0": "x", "a1": "y", "a2": "y", "a3": "x"}[a]}),
    ("custom", {"policy_mapping_fn": lambda a: "p" if a in ("a1", "a3") else a}),
]


def _params_by_policy(mapping: jmarl.PolicyMapping, params: tuple) -> dict[str, jax.Array]:
    """Policy id -> that policy's own parameters, read from the block layout."""
    own: dict[str, jax.Array] = {}
    for block, p in zip(mapping.blocks, params):
        if block.kind == "shared":
            own[block.policy_ids[0]] = p
        else:
            own.update({pid: p[j] for j, pid in enumerate(block.policy_ids)})
    return own


@pytest.mark.parametrize(("mode", "kw"), SHARING_CASES)
def test_each_agent_gets_its_own_policys_output(mode: str, kw: dict) -> None:
    spec = _spec(4)
    x = jax.random.normal(jax.random.key(1), (4, 3))
    mapping = make_policy_mapping(spec, mode, **kw)
    net = share(_linear(), mapping)
    params = net.init(jax.random.key(0))
    out = net.apply(params, x)
    assert out.shape == (4, 2)
    own = _params_by_policy(mapping, params)
    assert set(own) == set(mapping.policy_of_agent)
    for agent, pid in enumerate(mapping.policy_of_agent):
        # the agent's output is its own policy applied to its own input alone
        np.testing.assert_allclose(out[agent], x[agent] @ own[pid], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("mode", "kw"), SHARING_CASES[:3])
@pytest.mark.parametrize("batch_dims", [1, 2])
def test_batch_axes_give_each_row_its_own_policys_output(
    mode: str, kw: dict, batch_dims: int
) -> None:
    spec = _spec(4)
    lead = (5, 2)[:batch_dims]
    x = jax.random.normal(jax.random.key(1), (*lead, 4, 3))
    mapping = make_policy_mapping(spec, mode, **kw)
    net = share(_linear(), mapping)
    params = net.init(jax.random.key(0))
    out = net.apply(params, x, batch_dims=batch_dims)
    assert out.shape == (*lead, 4, 2)
    own = _params_by_policy(mapping, params)
    for agent, pid in enumerate(mapping.policy_of_agent):
        expected = x[..., agent, :] @ own[pid]
        np.testing.assert_allclose(out[..., agent, :], expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(("algo", "agent_id"), [("ippo", False), ("mappo", True)])
def test_actor_critic_batch_axes_equal_a_vmap_over_the_batch(algo: str, agent_id: bool) -> None:
    spec = _spec(4)
    cfg = jmarl.ppo_config_for(algo, jmarl.PPOConfig(agent_id_input=agent_id))
    ac = make_actor_critic(spec, make_policy_mapping(spec, "shared"), cfg)
    params = ac.init(jax.random.key(0))
    obs = jax.random.normal(jax.random.key(1), (6, 4, 3))
    state = jax.random.normal(jax.random.key(2), (6, 5))
    np.testing.assert_allclose(
        ac.policy(params.actor, obs, batch_dims=1),
        jax.vmap(ac.policy, in_axes=(None, 0))(params.actor, obs),
        rtol=1e-5,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        ac.value(params.critic, obs, state, batch_dims=1),
        jax.vmap(ac.value, in_axes=(None, 0, 0))(params.critic, obs, state),
        rtol=1e-5,
        atol=1e-6,
    )


def test_the_cases_include_orders_that_do_not_undo_themselves() -> None:
    def involution(mode: str, kw: dict) -> bool:
        mapping = make_policy_mapping(_spec(4), mode, **kw)
        order = [i for b in mapping.blocks for i in b.agents]
        return [order[i] for i in order] == list(range(4))

    assert sum(not involution(mode, kw) for mode, kw in SHARING_CASES) >= 2


@pytest.mark.parametrize(("mode", "kw"), SHARING_CASES[1:])
def test_distinct_policies_start_from_distinct_parameters(mode: str, kw: dict) -> None:
    spec = _spec(4)
    mapping = make_policy_mapping(spec, mode, **kw)
    own = _params_by_policy(mapping, share(_linear(), mapping).init(jax.random.key(0)))
    ids = sorted(own)
    for i, a in enumerate(ids):
        for b in ids[i + 1 :]:
            assert not np.allclose(own[a], own[b]), f"policies {a!r} and {b!r} start equal"


def test_independent_actor_critics_start_from_distinct_parameters() -> None:
    env = jmarl.make("simple_spread", num_agents=3)
    ac = make_actor_critic(
        env.spec, make_policy_mapping(env.spec, "independent"), jmarl.PPOConfig()
    )
    params = ac.init(jax.random.key(0))
    for tree in (params.actor, params.critic):
        for leaf in jax.tree.leaves(tree):  # [3, ...]: one row per agent
            if np.ptp(np.asarray(leaf)) == 0:  # biases start at 0 for every agent
                continue
            rows = np.asarray(leaf).reshape(3, -1)
            assert not np.allclose(rows[0], rows[1]) and not np.allclose(rows[1], rows[2])


def _param_count(tree: object) -> int:
    return sum(int(np.prod(x.shape)) for x in jax.tree.leaves(tree))


def test_shared_parameters_do_not_grow_with_agents() -> None:
    cfg = jmarl.PPOConfig(hidden_sizes=(16,))
    shared, indep = {}, {}
    for n in (2, 10, 100):
        spec = _spec(n)
        for mode, out in (("shared", shared), ("independent", indep)):
            ac = make_actor_critic(spec, make_policy_mapping(spec, mode), cfg)
            out[n] = _param_count(jax.eval_shape(ac.init, jax.random.key(0)))
    assert shared[2] == shared[10] == shared[100]
    assert indep[100] == 100 * shared[100] and indep[10] == 10 * shared[10]


def _ac(env: jmarl.Env, mode: str, algo: str = "mappo", **cfg_kw: object):  # type: ignore[no-untyped-def]
    cfg = jmarl.ppo_config_for(algo, jmarl.PPOConfig(hidden_sizes=(32, 32), **cfg_kw))
    ac = make_actor_critic(env.spec, make_policy_mapping(env.spec, mode), cfg)
    return ac, ac.init(jax.random.key(0))


def test_shared_policy_is_permutation_equivariant() -> None:
    env = jmarl.make("simple_spread", num_agents=5)
    ac, params = _ac(env, "shared")
    _, ts = env.reset(jax.random.key(3))
    perm = jnp.array([3, 0, 4, 1, 2])
    out = ac.policy(params.actor, ts.obs)
    out_perm = ac.policy(params.actor, ts.obs[perm])
    np.testing.assert_allclose(out_perm, out[perm], rtol=1e-5, atol=1e-6)
    v = ac.value(params.critic, ts.obs, ts.state)
    np.testing.assert_allclose(ac.value(params.critic, ts.obs[perm], ts.state), v[perm], atol=1e-5)


def test_agent_id_input_breaks_symmetry() -> None:
    env = jmarl.make("simple_spread", num_agents=3)
    ac, params = _ac(env, "shared", agent_id_input=True)
    same = jnp.broadcast_to(env.reset(jax.random.key(0))[1].obs[0], (3, 18))
    out = ac.policy(params.actor, same)
    assert not np.allclose(out[0], out[1])


@pytest.mark.parametrize("mode", ["shared", "independent"])
def test_actor_ignores_other_agents_but_central_critic_does_not(mode: str) -> None:
    env = jmarl.make("simple_spread", num_agents=4)
    ac, params = _ac(env, mode, algo="mappo")
    _, ts = env.reset(jax.random.key(0))
    # Jacobian of agent 0's outputs w.r.t. every agent's observation
    jac = jax.jacobian(lambda o: ac.policy(params.actor, o)[0])(ts.obs)  # [P, N, D]
    assert np.abs(jac[:, 0]).sum() > 0
    np.testing.assert_array_equal(jac[:, 1:], 0.0)
    vjac = jax.jacobian(lambda s: ac.value(params.critic, ts.obs, s)[0])(ts.state)
    assert np.abs(vjac).sum() > 0  # the MAPPO critic reads the global state
    ippo, p2 = _ac(env, mode, algo="ippo")
    ijac = jax.jacobian(lambda o: ippo.value(p2.critic, o, ts.state)[0])(ts.obs)
    np.testing.assert_array_equal(ijac[1:], 0.0)


def test_policy_mapping_is_hashable_and_a_jit_static_argument() -> None:
    groups = {"red": ["a0", "a2"], "blue": ["a1", "a3"]}
    mapping = make_policy_mapping(_spec(4), "grouped", groups)
    again = make_policy_mapping(_spec(4), "grouped", groups)
    # Equal mappings (and their blocks) hash equal, so jit can key its cache on them.
    assert mapping == again and hash(mapping) == hash(again)
    assert hash(mapping.blocks[0]) == hash(again.blocks[0])
    # Immutable, so a hash taken once cannot go stale.
    with pytest.raises(AttributeError):
        mapping.blocks = ()  # type: ignore[misc]
    with pytest.raises(AttributeError):
        mapping.blocks[0].agents = (1,)  # type: ignore[misc]

    traces = []

    def block_sums(x: jax.Array, m: jmarl.PolicyMapping) -> jax.Array:
        traces.append(m)  # runs only while tracing
        return jnp.stack([x[jnp.asarray(b.agents)].sum() for b in m.blocks])

    jitted = jax.jit(block_sums, static_argnums=1)
    x = jnp.arange(4.0)  # agent i holds i
    # red = agents (0, 2): 0 + 2 = 2;  blue = agents (1, 3): 1 + 3 = 4
    np.testing.assert_array_equal(jitted(x, mapping), [2.0, 4.0])
    # An equal mapping hits the compiled cache: no second trace.
    np.testing.assert_array_equal(jitted(x, again), [2.0, 4.0])
    assert len(traces) == 1

    def block_sum(x: jax.Array, block: jmarl.agents.sharing.Block) -> jax.Array:
        return x[jnp.asarray(block.agents)].sum()

    # A Block alone is a valid static argument too: agents (1, 3) -> 1 + 3 = 4
    assert float(jax.jit(block_sum, static_argnums=1)(x, mapping.blocks[1])) == 4.0


@pytest.mark.parametrize(
    ("hidden", "activation"), [((), "tanh"), ((8,), "relu"), ((16, 8), "tanh")]
)
@pytest.mark.parametrize("rows", [1, 37])
def test_mlp_rows_gives_vmap_of_the_mlp_values_and_gradients(
    hidden: tuple[int, ...], activation: str, rows: int
) -> None:
    """mlp_rows (hidden layers feature-major) computes vmap(MLP.apply), gradients included."""
    mlp = MLP(hidden, 5, activation, out_scale=1.0)
    params = mlp.init(jax.random.key(0), jnp.zeros((6,)))
    x = jax.random.normal(jax.random.key(1), (rows, 6))
    per_row = lambda p: jax.vmap(mlp.apply, in_axes=(None, 0))(p, x)
    batched = lambda p: mlp_rows(p, x, activation)
    np.testing.assert_allclose(batched(params), per_row(params), rtol=1e-5, atol=1e-6)
    loss = lambda f: lambda p: jnp.sum(jnp.sin(f(p)))
    g_rows, g_vmap = jax.grad(loss(batched))(params), jax.grad(loss(per_row))(params)
    for a, b in zip(jax.tree.leaves(g_rows), jax.tree.leaves(g_vmap)):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_only_plain_mlps_on_flat_inputs_get_the_rows_path() -> None:
    obs = jnp.zeros((6,))
    assert make_actor(obs, 5).apply_rows is not None
    assert make_critic(obs).apply_rows is not None
    assert make_actor(obs, 4, gaussian=True).apply_rows is None
    assert make_actor(obs, 5, gru_size=8).apply_rows is None
    space = spaces.Box(-1.0, 1.0, (6,))
    assert make_actor(obs, 5, input_space=space).apply_rows is None


def test_one_shared_policy_runs_the_networks_rows_path() -> None:
    """share() hands the B x N rows of one shared policy to apply_rows (planted: +1)."""
    spec = _spec(3)
    mapping = jmarl.make_policy_mapping(spec, "shared")
    net = make_actor(jnp.zeros((4,)), 2)
    marked = Network(net.init, net.apply, lambda p, x: net.apply_rows(p, x) + 1.0)
    params = share(net, mapping).init(jax.random.key(0))
    x = jax.random.normal(jax.random.key(1), (7, 3, 4))
    plain = share(net, mapping).apply(params, x, batch_dims=1)
    np.testing.assert_allclose(share(marked, mapping).apply(params, x, batch_dims=1), plain + 1.0)
