"""Space-driven observation encoders (``jmarl.nn.encoders``) and their use by PPO policies."""

from __future__ import annotations

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jmarl
from jmarl.agents.sharing import make_policy_mapping
from jmarl.algos.ppo.networks import make_actor_critic
from jmarl.env import spaces
from jmarl.env.spaces import Box, Dict, Discrete, MultiBinary, MultiDiscrete, Tuple
from jmarl.nn.encoders import (
    Conv3x3,
    EncoderConfig,
    check_obs,
    is_image,
    is_mask_key,
    make_encoder,
    needs_encoder,
    output_dim,
)

CFG = EncoderConfig(features=8, embed_dim=4, cnn_channels=(4, 8))
IMAGE = Box(0.0, 255.0, (8, 8, 3), "uint8")
NESTED = Dict.from_mapping(
    {
        "image": IMAGE,
        "id": Discrete(3),
        "action_mask": MultiBinary((5,)),
        "pair": Tuple((MultiDiscrete((2, 3)), Dict.from_mapping({"x": Box(-1.0, 1.0, (2, 3))}))),
    }
)
SPACES = {
    "box_1d": Box(-1.0, 1.0, (3,)),
    "box_2d": Box(-1.0, 1.0, (2, 3)),
    "image_uint8": IMAGE,
    "image_float": Box(0.0, 1.0, (10, 12, 1)),
    "image_large": Box(0.0, 255.0, (40, 36, 4), "uint8"),
    "discrete": Discrete(4),
    "discrete_1": Discrete(1),
    "multi_discrete": MultiDiscrete((2, 3, 4)),
    "multi_binary": MultiBinary((5,)),
    "dict_depth_1": Dict.from_mapping({"a": Box(0.0, 1.0, (2,)), "b": Discrete(2)}),
    "tuple": Tuple((Discrete(2), MultiBinary((3,)))),
    "nested_depth_3": NESTED,
}
# Per part: Box / MultiBinary / image -> features (8); Discrete -> embed_dim (4) each dim.
EXPECTED_DIM = {
    "box_1d": 8,
    "box_2d": 8,
    "image_uint8": 8,
    "image_float": 8,
    "image_large": 8,
    "discrete": 4,
    "discrete_1": 4,
    "multi_discrete": 12,
    "multi_binary": 8,
    "dict_depth_1": 12,
    "tuple": 12,
    "nested_depth_3": 8 + 4 + (8 + 8),  # image + id + (2 dims * 4, x); action_mask skipped
}


def _sample(space: spaces.Space, seed: int = 1, batch: tuple[int, ...] = ()) -> object:
    return spaces.sample(jax.random.key(seed), space, batch)


@pytest.mark.parametrize("name", SPACES)
def test_features_and_gradients_per_space(name: str) -> None:
    """Output width = output_dim; every parameter array gets a nonzero gradient."""
    space = SPACES[name]
    enc = make_encoder(space, CFG)
    params = enc.init(jax.random.key(0))
    obs = _sample(space, batch=(16,))
    weights = jax.random.normal(jax.random.key(2), (EXPECTED_DIM[name],))

    def loss(p: object) -> tuple[jax.Array, jax.Array]:
        out = jax.vmap(enc.apply, in_axes=(None, 0))(p, obs)
        return jnp.sum(out @ weights), out

    (_, out), grads = jax.jit(jax.value_and_grad(loss, has_aux=True))(params)
    assert output_dim(space, CFG) == EXPECTED_DIM[name]
    assert out.shape == (16, EXPECTED_DIM[name]) and out.dtype == jnp.float32
    assert np.all(np.isfinite(out))
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        assert np.any(np.asarray(g) != 0), f"zero gradient for {jax.tree_util.keystr(path)}"


def test_parameter_tree_mirrors_the_observation() -> None:
    params = make_encoder(NESTED, CFG).init(jax.random.key(0))["params"]
    assert set(params) == {"id", "image", "pair"}  # the mask has no extractor
    assert set(params["pair"]) == {"item_0", "item_1"}
    assert set(params["pair"]["item_0"]["MultiEmbed_0"]) == {"dim_0", "dim_1"}
    assert params["image"]["ImageCNN_0"]["Conv3x3_0"]["kernel"].shape == (3, 3, 3, 4)


def test_large_images_are_pooled_to_at_most_8x8() -> None:
    params = make_encoder(SPACES["image_large"], CFG).init(jax.random.key(0))["params"]
    # 40x36 -> stride 2 (first layer, >= 32) 20x18 -> stride 2 10x9 -> pooled 5x5, 8 channels
    assert params["ImageCNN_0"]["Dense_0"]["kernel"].shape == (5 * 5 * 8, 8)


@pytest.mark.parametrize("batch", [(5,), (5, 3)], ids=["B", "B,N"])
def test_vmapped_batches_match_single_observations(batch: tuple[int, ...]) -> None:
    enc = make_encoder(NESTED, CFG)
    params = enc.init(jax.random.key(0))
    obs = _sample(NESTED, batch=batch)
    apply = enc.apply
    for _ in batch:
        apply = jax.vmap(apply, in_axes=(None, 0))
    out = jax.jit(apply)(params, obs)
    assert out.shape == (*batch, output_dim(NESTED, CFG))
    index = (1,) * len(batch)
    one = enc.apply(params, jax.tree.map(lambda x: x[index], obs))
    np.testing.assert_allclose(out[index], one, rtol=1e-5, atol=1e-6)


def test_action_mask_entries_are_skipped() -> None:
    enc = make_encoder(NESTED, CFG)
    params = enc.init(jax.random.key(0))
    obs = _sample(NESTED)
    flipped = {**obs, "action_mask": 1 - obs["action_mask"]}
    without = {k: v for k, v in obs.items() if k != "action_mask"}
    out = enc.apply(params, obs)
    np.testing.assert_array_equal(out, enc.apply(params, flipped))
    np.testing.assert_array_equal(out, enc.apply(params, without))  # masks may be absent


def test_mask_and_image_rules() -> None:
    assert [is_mask_key(k) for k in ("mask", "action_mask", "move_mask", "masks", "image")] == [
        True,
        True,
        True,
        False,
        False,
    ]
    assert is_image(Box(0, 1, (8, 8, 1))) and is_image(Box(0, 255, (64, 48, 4), "uint8"))
    assert not is_image(Box(0, 1, (3, 8, 8)))  # channels first: 8 channels
    assert not is_image(Box(0, 1, (7, 8, 3)))  # too small
    assert not is_image(Box(0, 1, (8, 8)))
    assert not needs_encoder(Box(0, 1, (8, 8)))
    assert needs_encoder(IMAGE) and needs_encoder(Discrete(2)) and needs_encoder(NESTED)


def test_conv3x3_matches_flax_conv() -> None:
    x = jax.random.normal(jax.random.key(0), (9, 10, 3))
    for stride in (1, 2):
        conv = Conv3x3(5, stride)
        params = conv.init(jax.random.key(1), x)
        ref = nn.Conv(5, (3, 3), strides=stride, padding=((1, 1), (1, 1)))
        expected = ref.apply(params, x[None])[0]
        np.testing.assert_allclose(conv.apply(params, x), expected, rtol=1e-5, atol=1e-5)


def test_uint8_images_are_scaled_to_unit_range() -> None:
    u8, f32 = IMAGE, Box(0.0, 1.0, IMAGE.shape)
    params = make_encoder(u8, CFG).init(jax.random.key(0))
    img = _sample(u8)
    out_u8 = make_encoder(u8, CFG).apply(params, img)
    out_f32 = make_encoder(f32, CFG).apply(params, img.astype(jnp.float32) / 255.0)
    np.testing.assert_allclose(out_u8, out_f32, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda o: {k: v for k, v in o.items() if k != "id"}, r"obs: keys .* missing \['id'\]"),
        (lambda o: {**o, "extra": jnp.zeros(2)}, r"obs: keys .* unexpected \['extra'\]"),
        (
            lambda o: {**o, "pair": (o["pair"][0], {"x": jnp.zeros((3, 2))})},
            r"obs\['pair'\]\[1\]\['x'\]: expected shape \(2, 3\) .* got \(3, 2\)",
        ),
        (lambda o: {**o, "pair": (o["pair"][0],)}, r"obs\['pair'\]: expected a tuple of 2"),
        (lambda o: {**o, "id": jnp.float32(1.0)}, r"obs\['id'\]: Discrete.* integer"),
        (lambda o: {**o, "image": o["image"][None]}, r"obs\['image'\]: .* vmap"),
        (lambda o: o["image"], r"obs: expected a dict"),
    ],
    ids=["missing", "extra", "nested-shape", "tuple-length", "float-id", "batched", "not-dict"],
)
def test_wrong_observations_name_the_key_path(change: object, message: str) -> None:
    enc = make_encoder(NESTED, CFG)
    params = enc.init(jax.random.key(0))
    bad = change(_sample(NESTED))  # type: ignore[operator]
    with pytest.raises(ValueError, match=message):
        enc.apply(params, bad)
    with pytest.raises(ValueError, match=message):  # the same inside jit (at trace time)
        jax.jit(enc.apply)(params, bad)
    with pytest.raises(ValueError, match=message):
        check_obs(NESTED, bad)


def test_nothing_to_encode_is_an_error() -> None:
    only_masks = Dict.from_mapping({"action_mask": MultiBinary((3,))})
    assert output_dim(only_masks) == 0
    with pytest.raises(ValueError, match="nothing to encode"):
        make_encoder(only_masks).init(jax.random.key(0))


def test_bad_encoder_config() -> None:
    with pytest.raises(ValueError, match="cnn_channels"):
        EncoderConfig(cnn_channels=())
    with pytest.raises(ValueError, match="activation"):
        EncoderConfig(activation="sigmoid")


# --- PPO policies over structured observations ------------------------------------------


SMALL = jmarl.PPOConfig(hidden_sizes=(16,), encoder_features=8, embed_dim=4, cnn_channels=(4,))


@pytest.mark.parametrize(
    ("mode", "groups", "algo", "agent_id"),
    [
        ("shared", None, "mappo", False),
        ("independent", None, "ippo", False),
        ("grouped", {"a": ["agent_0", "agent_2"], "b": ["agent_1"]}, "mappo", True),
    ],
)
def test_actor_critic_encodes_dict_observations(
    mode: str, groups: dict[str, list[str]] | None, algo: str, agent_id: bool
) -> None:
    env = jmarl.make("dict_goal", num_agents=3)
    cfg = jmarl.ppo_config_for(algo, dataclasses.replace(SMALL, agent_id_input=agent_id))
    ac = make_actor_critic(env.spec, make_policy_mapping(env.spec, mode, groups), cfg)
    params = ac.init(jax.random.key(0))
    _, ts = env.reset(jax.random.key(1))
    logits = ac.policy(params.actor, ts.obs)
    values = ac.value(params.critic, ts.obs, ts.state)
    assert logits.shape == (3, 5) and values.shape == (3,)
    actor_enc = params.actor[0]["params"]["encoder"]
    critic_enc = params.critic[0]["params"]["encoder"]
    obs_keys = {"image", "position", "target"}  # no extractor for "action_mask"
    assert set(actor_enc) == ({"agent_id", "obs"} if agent_id else obs_keys)
    assert ("state" in critic_enc) == (algo == "mappo")  # MAPPO: own obs + global state


def test_actor_ignores_other_agents_observations() -> None:
    env = jmarl.make("dict_goal", num_agents=3)
    ac = make_actor_critic(env.spec, make_policy_mapping(env.spec, "shared"), SMALL)
    params = ac.init(jax.random.key(0))
    _, ts = env.reset(jax.random.key(1))
    obs = dict(ts.obs)
    obs["image"] = obs["image"].at[1].set(255 - obs["image"][1])
    obs["target"] = obs["target"].at[1].set((obs["target"][1] + 1) % 4)
    before = np.asarray(ac.policy(params.actor, ts.obs))
    after = np.asarray(ac.policy(params.actor, obs))
    np.testing.assert_array_equal(before[[0, 2]], after[[0, 2]])
    assert not np.allclose(before[1], after[1])


def test_flat_box_observations_keep_the_plain_mlp() -> None:
    env = jmarl.make("simple_spread", num_agents=2)
    ac = make_actor_critic(env.spec, make_policy_mapping(env.spec, "shared"), jmarl.PPOConfig())
    params = ac.init(jax.random.key(0))
    assert set(params.actor[0]["params"]) == {"Dense_0", "Dense_1", "Dense_2"}
    assert params.actor[0]["params"]["Dense_0"]["kernel"].shape == (12, 64)
