"""``DictToTensorPreprocessor`` and ``DictObservationWrapper`` with Tianshou's own classes.

Covers one extractor per space kind, nesting, masks, gradients, ``[B, ...]`` / ``[B, N, ...]``
inputs, ``Batch`` input, errors naming key paths; the wrapper inside DQN and PPO (optimizer,
target network, action masks, attributes); DQN learning a task whose reward needs two Dict
entries with Tianshou's Collector and trainer; a shared DQN on PettingZoo's connect four.
"""

from __future__ import annotations

import re
from typing import Any

import gymnasium as gym
import numpy as np
import pettingzoo
import pytest
import torch
from gymnasium import spaces
from tianshou.algorithm import DQN, PPO
from tianshou.algorithm.modelfree.dqn import DiscreteQLearningPolicy
from tianshou.algorithm.modelfree.reinforce import DiscreteActorPolicy
from tianshou.algorithm.optim import AdamOptimizerFactory
from tianshou.data import Batch, Collector, CollectStats, VectorReplayBuffer
from tianshou.env import DummyVectorEnv
from tianshou.trainer import OffPolicyTrainerParams
from tianshou.utils.net.common import Net
from tianshou.utils.net.discrete import DiscreteActor, DiscreteCritic
from tianshou.utils.torch_utils import policy_within_training_step
from torch import nn

from bridge.pettingzoo import EnhancedPettingZooEnv
from bridge.tianshou.dict_obs import (
    DictObservationWrapper,
    DictToTensorPreprocessor,
    is_image_space,
    is_mask_key,
)
from bridge.tianshou.manager import FlexibleMultiAgentPolicyManager

torch.set_num_threads(1)

B, N = 5, 3

# --- helpers -------------------------------------------------------------------------------------


def stack(samples: list[Any]) -> Any:
    """A list of observations of one space as one batch (nested dicts / tuples of arrays)."""
    first = samples[0]
    if isinstance(first, dict):
        return {k: stack([s[k] for s in samples]) for k in first}
    if isinstance(first, tuple):
        return tuple(stack([s[i] for s in samples]) for i in range(len(first)))
    return np.stack([np.asarray(s) for s in samples])


def sample_batch(space: spaces.Space, *lead: int, seed: int = 0) -> Any:
    """``prod(lead)`` samples of ``space`` shaped ``[*lead, ...]``."""
    space.seed(seed)
    flat = stack([space.sample() for _ in range(int(np.prod(lead)))])
    return _reshape(flat, lead)


def _reshape(tree: Any, lead: tuple[int, ...]) -> Any:
    if isinstance(tree, dict):
        return {k: _reshape(v, lead) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(_reshape(v, lead) for v in tree)
    return tree.reshape(*lead, *tree.shape[1:])


def kinds_space() -> spaces.Dict:
    """One entry of every supported kind, a nested Dict and Tuple, and two masks."""
    return spaces.Dict(
        {
            "vec": spaces.Box(-1, 1, (3,)),
            "scalar": spaces.Box(0, 5, ()),
            "img": spaces.Box(0, 255, (8, 9, 3), np.uint8),
            "goal": spaces.Discrete(4, start=2),
            "cells": spaces.MultiDiscrete([[2, 3], [4, 5]]),
            "bits": spaces.MultiBinary(5),
            "nested": spaces.Dict(
                {"pair": spaces.Tuple((spaces.Discrete(2), spaces.Box(0, 1, (2,))))}
            ),
            "action_mask": spaces.MultiBinary(3),
            "alive_mask": spaces.MultiBinary(1),
        }
    )


def snapshot(module: nn.Module) -> list[torch.Tensor]:
    return [p.detach().clone() for p in module.parameters()]


def all_changed(before: list[torch.Tensor], module: nn.Module) -> bool:
    return all(not torch.equal(b, a) for b, a in zip(before, module.parameters()))


# --- the preprocessor: extractors ---------------------------------------------------------------

KIND_CASES = [
    (spaces.Box(-1, 1, (3, 2)), nn.Linear, 64),
    (spaces.Box(0, 5, ()), nn.Linear, 64),
    (spaces.Box(0, 255, (8, 9, 3), np.uint8), nn.Conv2d, 64),
    (spaces.Box(0, 1, (40, 36, 1)), nn.Conv2d, 64),
    (spaces.Box(0, 1, (6, 7, 2), np.int8), nn.Linear, 64),  # a board: smaller than 8x8
    (spaces.Box(0, 1, (3, 8, 8)), nn.Linear, 64),  # channels first: not an image
    (spaces.Discrete(4, start=-1), nn.Embedding, 16),
    (spaces.MultiDiscrete([3, 4, 2]), nn.Embedding, 3 * 16),
    (spaces.MultiDiscrete([[2, 3], [4, 5]], start=[[1, 1], [0, 0]]), nn.Embedding, 4 * 16),
    (spaces.MultiBinary([2, 3]), nn.Linear, 64),
]


@pytest.mark.parametrize(
    ("space", "layer", "dim"), KIND_CASES, ids=[str(c[0])[:30] for c in KIND_CASES]
)
def test_each_space_kind_gets_its_extractor(space: spaces.Space, layer: type, dim: int) -> None:
    pre = DictToTensorPreprocessor(spaces.Dict({"x": space}))
    assert pre.output_dim == dim
    assert any(isinstance(m, layer) for m in pre.modules())
    assert any(isinstance(m, nn.Conv2d) for m in pre.modules()) == (layer is nn.Conv2d)
    embeddings = [m for m in pre.modules() if isinstance(m, nn.Embedding)]
    if isinstance(space, spaces.MultiDiscrete):  # one Embedding per element, sized by nvec
        assert [e.num_embeddings for e in embeddings] == space.nvec.reshape(-1).tolist()
    out = pre(sample_batch(pre.observation_space, B))
    assert out.shape == (B, dim) and out.dtype == torch.float32


def test_feature_sizes_are_configurable_and_output_dim_is_their_sum() -> None:
    settings = {"features": 5, "embed_dim": 3, "cnn_channels": (4,), "activation": "tanh"}
    pre = DictToTensorPreprocessor(kinds_space(), **settings)
    # vec 5 + scalar 5 + img 5 + goal 3 + cells 4*3 + bits 5 + pair: Discrete 3 + Box 5
    assert pre.output_dim == 5 + 5 + 5 + 3 + 12 + 5 + 3 + 5 == 43
    assert pre(sample_batch(pre.observation_space, B)).shape == (B, 43)
    assert any(isinstance(m, nn.Tanh) for m in pre.modules())
    assert not any(isinstance(m, nn.ReLU) for m in pre.modules())
    for bad in ({"features": 0}, {"cnn_channels": ()}, {"activation": "swish"}):
        with pytest.raises(ValueError, match=r"widths|activation"):
            DictToTensorPreprocessor(kinds_space(), **bad)  # type: ignore[arg-type]


# (H, W, C) -> conv strides and the Linear's input: 32 channels x pooled height x width
CNN_CASES = [
    ((8, 9, 3), [1, 2], 32 * 4 * 5),  # 8x9 -> 8x9 -> 4x5, no pooling
    ((40, 36, 1), [2, 2], 32 * 5 * 5),  # 40x36 -> 20x18 -> 10x9, pooled by 2x2 to 5x5
    ((64, 64, 4), [2, 2], 32 * 8 * 8),  # 64x64 -> 32x32 -> 16x16, pooled by 2x2 to 8x8
]


@pytest.mark.parametrize(("shape", "strides", "flat"), CNN_CASES)
def test_image_cnn_layout(shape: tuple[int, ...], strides: list[int], flat: int) -> None:
    pre = DictToTensorPreprocessor(spaces.Dict({"img": spaces.Box(0, 1, shape)}))
    convs = [m for m in pre.modules() if isinstance(m, nn.Conv2d)]
    assert [c.stride[0] for c in convs] == strides
    assert pre.extractors[0].head[0].in_features == flat
    assert pre(sample_batch(pre.observation_space, 2)).shape == (2, 64)


def test_uint8_images_are_scaled_to_unit_range() -> None:
    u8 = DictToTensorPreprocessor(spaces.Dict({"img": spaces.Box(0, 255, (8, 8, 3), np.uint8)}))
    f32 = DictToTensorPreprocessor(spaces.Dict({"img": spaces.Box(0, 1, (8, 8, 3))}))
    f32.load_state_dict(u8.state_dict())
    img = sample_batch(u8.observation_space, B)["img"]
    torch.testing.assert_close(u8({"img": img}), f32({"img": img / 255.0}))


def test_rules_for_masks_and_images() -> None:
    keys = ("mask", "action_mask", "x_mask", "masks", "obs")
    assert [is_mask_key(k) for k in keys] == [True, True, True, False, False]
    assert is_image_space(spaces.Box(0, 1, (8, 8, 1))) and is_image_space(
        spaces.Box(0, 1, (9, 8, 4))
    )
    assert not is_image_space(spaces.Box(0, 1, (7, 8, 1)))  # too small
    assert not is_image_space(spaces.Box(0, 1, (8, 8, 5)))  # too many channels
    assert not is_image_space(spaces.Box(0, 1, (8, 8)))
    assert not is_image_space(spaces.MultiBinary([2, 2, 2]))


def test_keys_are_sorted_and_masks_are_not_encoded() -> None:
    pre = DictToTensorPreprocessor(kinds_space())
    assert pre.paths == [
        "obs['bits']",
        "obs['cells']",
        "obs['goal']",
        "obs['img']",
        "obs['nested']['pair'][0]",
        "obs['nested']['pair'][1]",
        "obs['scalar']",
        "obs['vec']",
    ]
    obs = sample_batch(pre.observation_space, B)
    base = pre(obs)
    flipped = dict(obs, action_mask=1 - obs["action_mask"])
    torch.testing.assert_close(pre(flipped), base)  # masks do not move the features
    without = {k: v for k, v in obs.items() if not is_mask_key(k)}
    torch.testing.assert_close(pre(without), base)  # and may be left out


def test_each_entry_moves_only_its_own_slice_in_sorted_order() -> None:
    space = spaces.Dict({"b": spaces.Box(-1, 1, (2,)), "a": spaces.Discrete(3)})
    pre = DictToTensorPreprocessor(space, features=4, embed_dim=2, activation="tanh")
    obs = {"a": np.array([0, 1]), "b": np.zeros((2, 2), np.float32)}
    base = pre(obs)
    moved = pre(dict(obs, b=np.ones((2, 2), np.float32)))
    changed = (moved != base).any(dim=0)
    assert changed.tolist() == [False, False, True, True, True, True]  # "a" first, then "b"


DEEPEST = {1: (2, "obs['k0']"), 2: (4, "obs['k1'][0]['k0']"), 3: (5, "obs['k2']['k1'][0]['k0']")}


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_nested_dict_and_tuple_at_any_depth(depth: int) -> None:
    space: spaces.Space = spaces.Box(-1, 1, (2,))
    for level in range(depth):  # levels alternate Dict(k: x) and Dict(k: Tuple(x, Discrete))
        inner = spaces.Tuple((space, spaces.Discrete(3))) if level % 2 else space
        space = spaces.Dict({f"k{level}": inner, "flag": spaces.Discrete(2)})
    pre = DictToTensorPreprocessor(space, features=4, embed_dim=2)
    count, deepest = DEEPEST[depth]
    assert len(pre.paths) == count and deepest in pre.paths
    assert pre.output_dim == 4 + 2 * (count - 1)
    assert pre(sample_batch(space, B, N)).shape == (B, N, pre.output_dim)


def test_gradients_reach_every_extractor() -> None:
    pre = DictToTensorPreprocessor(kinds_space())
    pre(sample_batch(pre.observation_space, B)).square().sum().backward()
    for name, param in pre.named_parameters():
        assert param.grad is not None and param.grad.abs().sum() > 0, name


# --- the preprocessor: inputs -------------------------------------------------------------------


def test_batch_shapes_b_and_b_n_encode_each_row_alone() -> None:
    pre = DictToTensorPreprocessor(kinds_space())
    obs = sample_batch(pre.observation_space, B, N)
    out = pre(obs)
    assert out.shape == (B, N, pre.output_dim)
    rows = pre(_reshape_tree(obs, (B * N,)))
    torch.testing.assert_close(out.reshape(B * N, -1), rows)
    one = pre(_index_tree(obs, (1, 2)))  # an unbatched observation gives [output_dim]
    assert one.shape == (pre.output_dim,)
    torch.testing.assert_close(one, out[1, 2])


def _reshape_tree(tree: Any, lead: tuple[int, ...]) -> Any:
    if isinstance(tree, dict):
        return {k: _reshape_tree(v, lead) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(_reshape_tree(v, lead) for v in tree)
    return tree.reshape(*lead, *tree.shape[2:])


def _index_tree(tree: Any, idx: tuple[int, ...]) -> Any:
    if isinstance(tree, dict):
        return {k: _index_tree(v, idx) for k, v in tree.items()}
    if isinstance(tree, tuple):
        return tuple(_index_tree(v, idx) for v in tree)
    return tree[idx]


def test_tianshou_batch_numpy_and_tensor_inputs_agree() -> None:
    space = spaces.Dict(
        {
            "pos": spaces.Box(-1, 1, (2,)),
            "board": spaces.Box(0, 1, (4, 4, 2), np.int8),
            "inner": spaces.Dict({"id": spaces.Discrete(3), "bits": spaces.MultiBinary(2)}),
            "mask": spaces.MultiBinary(4),
        }
    )
    pre = DictToTensorPreprocessor(space)
    obs = sample_batch(space, B)
    tensors = {k: v for k, v in obs.items() if k != "inner"}
    tensors = {k: torch.as_tensor(v) for k, v in tensors.items()}
    tensors["inner"] = {k: torch.as_tensor(v) for k, v in obs["inner"].items()}
    expected = pre(obs)
    torch.testing.assert_close(pre(Batch(obs)), expected)
    torch.testing.assert_close(pre(tensors), expected)
    read_only = {k: v for k, v in obs.items()}
    read_only["pos"] = np.broadcast_to(obs["pos"][:1], obs["pos"].shape)  # no torch warning
    assert pre(read_only).shape == expected.shape


# --- the preprocessor: errors -------------------------------------------------------------------


UNSUPPORTED = [
    (spaces.Dict({"name": spaces.Text(5)}), "obs['name']", "Text"),
    (
        spaces.Dict({"a": spaces.Dict({"b": spaces.Tuple((spaces.Discrete(2), spaces.Text(3)))})}),
        "obs['a']['b'][1]",
        "Text",
    ),
    (spaces.Dict({"s": spaces.Sequence(spaces.Discrete(2))}), "obs['s']", "Sequence"),
]


@pytest.mark.parametrize(("space", "path", "kind"), UNSUPPORTED)
def test_unsupported_spaces_name_the_key_path_and_space(
    space: spaces.Dict, path: str, kind: str
) -> None:
    with pytest.raises(NotImplementedError, match=re.escape(path) + f", {kind}"):
        DictToTensorPreprocessor(space)


def test_bad_spaces_are_refused() -> None:
    with pytest.raises(TypeError, match="Dict"):
        DictToTensorPreprocessor(spaces.Box(0, 1, (3,)))  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no entry to encode"):
        DictToTensorPreprocessor(spaces.Dict({"action_mask": spaces.MultiBinary(2)}))


def _bad_inputs() -> list[tuple[Any, str, str]]:
    good = sample_batch(kinds_space(), B)
    pair = good["nested"]["pair"]
    return [
        ({k: v for k, v in good.items() if k != "vec"}, "obs", r"missing keys \['vec'\]"),
        (dict(good, extra=np.zeros(B)), "obs", r"unexpected keys \['extra'\]"),
        (dict(good, nested={"pair": pair, "x": 1}), "obs['nested']", "unexpected keys"),
        (dict(good, vec=np.zeros((B, 4))), "obs['vec']", r"expected shape \[\*batch, 3\]"),
        (dict(good, img=np.zeros((B, 9, 8, 3), np.uint8)), "obs['img']", "expected shape"),
        (dict(good, goal=np.zeros((B + 1,), np.int64) + 2), "obs['goal']", "leading"),
        (dict(good, goal=np.full(B, 6)), "obs['goal']", "outside"),
        (dict(good, goal=np.full(B, 2.5)), "obs['goal']", "whole numbers"),
        (dict(good, cells=np.full((B, 2, 2), 3)), "obs['cells']", "outside"),
        (dict(good, nested={"pair": pair[0]}), "obs['nested']['pair']", "tuple or list of 2"),
        (dict(good, nested=np.zeros(B)), "obs['nested']", "expected a dict"),
        (dict(good, vec=["a"] * B), "obs['vec']", "cannot make a tensor"),
    ]


@pytest.mark.parametrize(("obs", "path", "what"), _bad_inputs())
def test_bad_inputs_name_the_key_path(obs: Any, path: str, what: str) -> None:
    pre = DictToTensorPreprocessor(kinds_space())
    with pytest.raises(ValueError, match=re.escape(path) + r"\W.*" + what):
        pre(obs)


# --- the wrapper --------------------------------------------------------------------------------


def cue_space() -> spaces.Dict:
    return spaces.Dict(
        {
            "cue": spaces.Dict({"color": spaces.Discrete(2)}),
            "position": spaces.Box(-1, 1, (2,)),
            "action_mask": spaces.Box(0, 1, (3,), np.int8),
        }
    )


class CueEnv(gym.Env):
    """One-step episodes; the reward needs two Dict entries.

    The right action is ``color XOR (position[0] > 0)``: +1 for it, -1 for the other one.
    Action 2 is always masked out (-1 if taken anyway); ``position[1]`` is noise. Random
    legal play scores 0, the best policy 1.
    """

    observation_space = cue_space()
    action_space = spaces.Discrete(3)

    def reset(
        self, *, seed: int | None = None, options: dict | None = None
    ) -> tuple[dict[str, Any], dict]:
        super().reset(seed=seed)
        rng = self.np_random
        side, size = rng.choice([-1.0, 1.0]), rng.uniform(0.2, 1.0)
        self._obs = {
            "cue": {"color": int(rng.integers(2))},
            "position": np.array([side * size, rng.uniform(-1, 1)], np.float32),
            "action_mask": np.array([1, 1, 0], np.int8),
        }
        return self._obs, {}

    def step(self, action: Any) -> tuple[dict[str, Any], float, bool, bool, dict]:
        best = self._obs["cue"]["color"] ^ int(self._obs["position"][0] > 0)
        return self._obs, 1.0 if int(action) == best else -1.0, True, False, {}


def cue_dqn(**kwargs: Any) -> tuple[DQN, DictObservationWrapper]:
    space = cue_space()
    pre = DictToTensorPreprocessor(space, features=16, embed_dim=8)
    net = Net(state_shape=pre.output_dim, action_shape=3, hidden_sizes=[64])
    eps = {"eps_training": kwargs.pop("eps_training", 0.2), "eps_inference": 0.0}
    inner = DiscreteQLearningPolicy(model=net, action_space=spaces.Discrete(3), **eps)
    policy = DictObservationWrapper(inner, space, preprocessor=pre)
    algorithm = DQN(policy=policy, optim=AdamOptimizerFactory(lr=3e-3), **kwargs)
    return algorithm, policy


def cue_collector(algorithm: Any, envs: int, seed: int, size: int = 2000) -> Collector:
    venv = DummyVectorEnv([CueEnv] * envs)
    venv.seed(seed)
    result = Collector[CollectStats](algorithm, venv, VectorReplayBuffer(size, envs))
    result.reset()
    return result


def test_wrapper_trains_the_preprocessor_and_copies_it_into_the_target_network() -> None:
    torch.manual_seed(0)
    algorithm, policy = cue_dqn(target_update_freq=5)
    pre = policy.preprocessor
    assert policy.networks == ("model",)
    assert policy.model.preprocessor is pre  # read through to the inner policy
    target = [m for m in algorithm.model_old.modules() if isinstance(m, DictToTensorPreprocessor)]
    assert len(target) == 1 and target[0] is not pre  # the target has its own lagged copy
    before = snapshot(pre)
    collector = cue_collector(algorithm, envs=2, seed=1)
    with policy_within_training_step(algorithm.policy):
        collector.collect(n_step=64)
        stats = algorithm.update(sample_size=32, buffer=collector.buffer)
    assert np.isfinite(stats.loss)
    assert all_changed(before, pre)


def test_dqn_honours_an_action_mask_named_action_mask() -> None:
    _, policy = cue_dqn(eps_training=1.0)
    obs = sample_batch(cue_space(), 64)
    obs["action_mask"][:] = [0, 1, 0]
    batch = Batch(obs=obs, info={})
    assert (policy(batch).act == 1).all()
    policy.is_within_training_step = True  # eps_training = 1: every action is random
    assert (policy.add_exploration_noise(np.zeros(64, np.int64), batch) == 1).all()


def test_unknown_attributes_are_read_from_and_written_to_the_inner_policy() -> None:
    _, policy = cue_dqn()
    policy.set_eps_training(0.5)
    assert policy.policy.eps_training == 0.5 == policy.eps_training
    policy.eps_inference = 0.25
    assert policy.policy.eps_inference == 0.25 and "eps_inference" not in policy.__dict__
    with policy_within_training_step(policy):
        assert policy.policy.is_within_training_step
    assert not policy.policy.is_within_training_step
    policy.train(False)
    assert not policy.policy.training and not policy.preprocessor.training


def test_compute_action_takes_one_unbatched_observation() -> None:
    _, policy = cue_dqn()
    obs, _ = CueEnv().reset(seed=3)
    obs["action_mask"] = np.array([0, 0, 1], np.int8)
    assert policy.compute_action(obs) == 2


def test_state_dict_round_trip() -> None:
    algorithm, policy = cue_dqn()
    other, _ = cue_dqn()
    other.load_state_dict(algorithm.state_dict())
    obs = Batch(obs=sample_batch(cue_space(), 8), info={})
    torch.testing.assert_close(other.policy(obs).logits, policy(obs).logits)


def test_wrapper_configuration_errors() -> None:
    space = cue_space()
    net = Net(state_shape=4, action_shape=3)
    inner = DiscreteQLearningPolicy(model=net, action_space=spaces.Discrete(3))
    with pytest.raises(TypeError, match="Policy"):
        DictObservationWrapper(net, space)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="Dict"):
        DictObservationWrapper(inner, spaces.Box(0, 1, (3,)))  # type: ignore[arg-type]
    other = DictToTensorPreprocessor(spaces.Dict({"x": spaces.Discrete(2)}))
    with pytest.raises(ValueError, match="built for"):
        DictObservationWrapper(inner, space, preprocessor=other)
    with pytest.raises(ValueError, match="has no network attribute model or actor"):
        DictObservationWrapper(inner, space, networks=())
    with pytest.raises(ValueError, match=r"DiscreteQLearningPolicy\.critic"):
        DictObservationWrapper(inner, space, networks=["critic"])
    DictObservationWrapper(inner, space)
    with pytest.raises(ValueError, match="already takes Dict observations"):
        DictObservationWrapper(inner, space)


def test_wrapped_policy_rejects_observations_with_wrong_keys() -> None:
    _, policy = cue_dqn()
    obs = sample_batch(cue_space(), 4)
    obs["cue"] = {"colour": obs["cue"]["color"]}
    with pytest.raises(ValueError, match=re.escape("obs['cue']") + ".*missing keys"):
        policy(Batch(obs=obs, info={}))


def test_ppo_one_update_trains_a_preprocessor_shared_by_actor_and_critic() -> None:
    torch.manual_seed(0)
    space = cue_space()
    pre = DictToTensorPreprocessor(space, features=16, embed_dim=8)
    actor = DiscreteActor(preprocess_net=Net(state_shape=pre.output_dim, hidden_sizes=[32]),
                          action_shape=3)  # fmt: skip
    inner = DiscreteActorPolicy(actor=actor, action_space=spaces.Discrete(3))
    policy = DictObservationWrapper(inner, space, preprocessor=pre)
    assert policy.networks == ("actor",)
    critic = policy.wrap_critic(
        DiscreteCritic(preprocess_net=Net(state_shape=pre.output_dim, hidden_sizes=[32]))
    )
    separate = policy.wrap_critic(nn.Linear(pre.output_dim, 1), share_preprocessor=False)
    assert separate.preprocessor is not pre
    assert not torch.equal(separate.preprocessor.extractors[0].embeddings[0].weight,
                           pre.extractors[0].embeddings[0].weight)  # fmt: skip
    algorithm = PPO(policy=policy, critic=critic, optim=AdamOptimizerFactory(lr=1e-3))
    collector = cue_collector(algorithm, envs=2, seed=2)
    before = snapshot(pre)
    with policy_within_training_step(algorithm.policy):
        collector.collect(n_step=64)
        stats = algorithm.update(buffer=collector.buffer, batch_size=32, repeat=2)
    losses = stats.get_loss_stats_dict()
    assert losses and all(np.isfinite(v) for v in losses.values())
    assert all_changed(before, pre)


# --- learning -----------------------------------------------------------------------------------


def test_dqn_learns_a_task_that_needs_two_dict_entries() -> None:
    """Collector + OffPolicyTrainer: greedy return >= 0.9 (random legal play: 0, best: 1)."""
    torch.manual_seed(0)
    np.random.seed(0)  # noqa: NPY002 (Tianshou explores with the global generator)
    algorithm, _ = cue_dqn()
    result = algorithm.run_training(
        OffPolicyTrainerParams(
            training_collector=cue_collector(algorithm, envs=4, seed=0),
            test_collector=cue_collector(algorithm, envs=4, seed=100),
            max_epochs=20,
            epoch_num_steps=400,
            collection_step_num_env_steps=20,
            test_step_num_episodes=200,
            batch_size=64,
            update_step_num_gradient_steps_per_sample=0.5,
            stop_fn=lambda mean_return: mean_return >= 0.95,
            show_progress=False,
            verbose=False,
        )
    )
    final = cue_collector(algorithm, envs=4, seed=1000).collect(n_episode=400)
    assert final.returns.mean() >= 0.9, (result.best_reward, final.returns.mean())


# --- a PettingZoo env with Dict observations and action masks ----------------------------------


def connect_four() -> EnhancedPettingZooEnv:
    env = pettingzoo.make("aec", "classic/connect_four-v3")
    return EnhancedPettingZooEnv(env, mode="aec", agent_id="index")


def test_connect_four_shared_dqn_collects_and_updates_through_the_wrapper() -> None:
    """AEC obs ``{"agent_id", "obs": board (6, 7, 2), "mask"}``: no manual flattening."""
    torch.manual_seed(0)
    env = connect_four()
    pre = DictToTensorPreprocessor(env.observation_space)
    assert pre.paths == ["obs['agent_id']", "obs['obs']"]  # the mask is not encoded
    assert not any(isinstance(m, nn.Conv2d) for m in pre.modules())  # 6x7: below 8x8
    net = Net(state_shape=pre.output_dim, action_shape=7, hidden_sizes=[64])
    inner = DiscreteQLearningPolicy(model=net, action_space=env.action_space, eps_training=0.3)
    policy = DictObservationWrapper(inner, env.observation_space, preprocessor=pre)
    dqn = DQN(policy=policy, optim=AdamOptimizerFactory(lr=1e-3), target_update_freq=10)
    manager = FlexibleMultiAgentPolicyManager(dqn, env, mode="shared")
    venv = DummyVectorEnv([connect_four] * 2)
    collector = Collector[CollectStats](manager, venv, VectorReplayBuffer(1000, 2))
    collector.reset()
    before = snapshot(pre)
    with policy_within_training_step(manager.policy):
        stats = collector.collect(n_step=300)
        update = manager.update(collector.buffer, sample_size=64)
    assert stats.n_collected_steps == 300 and stats.n_collected_episodes > 0
    rows = collector.buffer[collector.buffer.sample_indices(0)]
    assert rows.obs.mask[np.arange(len(rows)), rows.act].all()  # only legal moves were played
    loss = update.get_loss_stats_dict()["shared/loss"]
    assert np.isfinite(loss)
    assert all_changed(before, pre)


def test_connect_four_trains_with_tianshous_off_policy_trainer() -> None:
    """The whole Tianshou loop (trainer, training + test collectors, exploration, updates) on
    connect_four's Dict observations and masks, with one shared DQN playing both seats."""
    torch.manual_seed(1)
    np.random.seed(1)  # noqa: NPY002 (Tianshou explores with the global generator)
    env = connect_four()
    pre = DictToTensorPreprocessor(env.observation_space)
    inner = DiscreteQLearningPolicy(
        model=Net(state_shape=pre.output_dim, action_shape=7, hidden_sizes=[64]),
        action_space=env.action_space, eps_training=0.3, eps_inference=0.0,
    )  # fmt: skip
    policy = DictObservationWrapper(inner, env.observation_space, preprocessor=pre)
    dqn = DQN(policy=policy, optim=AdamOptimizerFactory(lr=1e-3), target_update_freq=50)
    manager = FlexibleMultiAgentPolicyManager(dqn, env, mode="shared")
    train = Collector[CollectStats](
        manager, DummyVectorEnv([connect_four] * 4), VectorReplayBuffer(4000, 4),
        exploration_noise=True,
    )  # fmt: skip
    test = Collector[CollectStats](manager, DummyVectorEnv([connect_four] * 2))
    before = snapshot(policy.preprocessor) + snapshot(inner.model)
    result = manager.run_training(
        OffPolicyTrainerParams(
            training_collector=train,
            test_collector=test,
            max_epochs=2,
            epoch_num_steps=400,
            collection_step_num_env_steps=20,
            test_step_num_episodes=4,
            batch_size=32,
            update_step_num_gradient_steps_per_sample=0.25,
            multi_agent_return_reduction=lambda r: r[:, 0],
            show_progress=False,
            verbose=False,
        )
    )
    assert result.train_step == 800 and result.update_step == 40  # one per collection step
    assert result.test_step > 0 and np.isfinite(result.best_reward)
    rows = train.buffer[train.buffer.sample_indices(0)]  # every stored row
    assert rows.obs.mask[np.arange(len(rows)), rows.act].all()  # explored moves were legal too
    after = list(policy.preprocessor.parameters()) + list(inner.model.parameters())
    assert all(not torch.equal(b, a.detach()) for b, a in zip(before, after))


# --- Dict observations through EnhancedPettingZooEnv and the manager ---------------------------


@pytest.mark.parametrize("env_mode", ["parallel", "aec"])
def test_each_agents_dict_reaches_its_own_wrapped_dqn_and_trains_it(env_mode: str) -> None:
    """Independent mode on a 3-agent env with nested Dict observations and masks: every
    sub-policy sees only its agent's dicts (``me.kind`` is 1 + the agent's index; a dead
    agent's blank row has the lowest value, 1) and the
    re-stitched Dict transitions update every wrapped DQN."""
    from test_pettingzoo_env import NestedDictEnv  # tests/bridge is on sys.path

    torch.manual_seed(0)

    def make() -> EnhancedPettingZooEnv:
        return EnhancedPettingZooEnv(NestedDictEnv(), mode=env_mode)

    env = make()
    seen: dict[int, list] = {k: [] for k in range(3)}
    algos = []
    for k, agent in enumerate(env.agents):
        space = env.policy_observation_space(agent)
        pre = DictToTensorPreprocessor(space, features=8, cnn_channels=(4,))
        inner = DiscreteQLearningPolicy(
            model=Net(state_shape=pre.output_dim, action_shape=4, hidden_sizes=[16]),
            action_space=env.padded_action_space, eps_training=0.5,
        )  # fmt: skip
        policy = DictObservationWrapper(inner, space, preprocessor=pre)
        policy.register_forward_pre_hook(lambda m, args, k=k: seen[k].append(args[0].obs))
        algos.append(DQN(policy=policy, optim=AdamOptimizerFactory(lr=1e-3)))
    manager = FlexibleMultiAgentPolicyManager(algos, env, mode="independent")
    collector = Collector[CollectStats](
        manager, DummyVectorEnv([make] * 2), VectorReplayBuffer(200, 2)
    )
    collector.reset()
    before = [snapshot(a.policy) for a in algos]
    with policy_within_training_step(manager.policy):
        collector.collect(n_step=24 if env_mode == "parallel" else 60)
        stats = manager.update(collector.buffer, sample_size=8)
    for k in range(3):
        kinds = np.concatenate([np.asarray(obs.obs.me.kind) for obs in seen[k]])
        blank = 1 if k == 2 and env_mode == "parallel" else 1 + k  # "c" dies after one step
        assert (kinds == 1 + k).any() and np.isin(kinds, [1 + k, blank]).all()
        agent_ids = np.concatenate([np.asarray(obs.agent_id) for obs in seen[k]])
        assert (agent_ids == k).all()
    assert sorted(stats.per_policy) == ["a", "b", "c"]
    assert all(np.isfinite(s.loss) for s in stats.per_policy.values())
    assert all(all_changed(b, a.policy) for b, a in zip(before, algos))
