"""Dict observations for torch networks and Tianshou policies.

:class:`DictToTensorPreprocessor` is a ``torch.nn.Module`` that encodes a gymnasium ``Dict``
observation into one feature vector per row, ``[*lead, output_dim]``, with one trainable
extractor per entry; :class:`DictObservationWrapper` puts one in front of a Tianshou policy's
network so that the policy acts and learns on Dict observations with Tianshou's unmodified
``Collector``, trainers and algorithms.

Encoding rules (keep the mask and image rules in step with the JAX encoder in
``jmarl/nn/encoders.py``):

* Entries are visited in sorted key order; nested ``Dict`` and ``Tuple`` spaces recurse.
* Mask entries are not encoded: a key ``"mask"``, ``"action_mask"`` or any key ending in
  ``"_mask"`` (:func:`is_mask_key`), at any depth. They may be present or absent in the input.
* ``Box`` that is an image (:func:`is_image_space`: ``(H, W, C)`` with ``1 <= C <= 4`` and
  ``H, W >= 8``): a small CNN (3x3 convolutions, stride 2 from the second layer on, and in the
  first for images of 32 pixels or more; average-pooled to at most 8x8), then a ``Linear``;
  ``uint8`` images are scaled by 1/255.
* Any other ``Box`` (smaller grids such as board games included) and ``MultiBinary``:
  flattened, cast to ``float32``, one ``Linear``.
* ``Discrete``: one ``Embedding`` (``start`` is subtracted).
* ``MultiDiscrete``: one ``Embedding`` per element of ``nvec``, concatenated.
* Anything else (``Text``, ``Graph``, ``Sequence``, ``OneOf``, ...): ``NotImplementedError``
  naming the key path and the space.

Every ``Linear`` and convolution is followed by the activation (ReLU by default); embeddings
are used as they are. The features of all entries are concatenated. Widths and activation
default to those of ``jmarl.nn.encoders.EncoderConfig``.

Input: a dict, a Tianshou ``Batch`` or nests of them, with tensors, numpy arrays or numbers as
leaves; a ``Tuple`` entry is a tuple or list (Tianshou's ``Batch`` cannot hold tuples of
differently shaped arrays, so observations that go through a ``Collector`` should nest ``Dict``
instead). Every leaf is ``[*lead, *shape]``, where ``shape`` is its space's shape and ``lead``
(e.g. ``[B]`` or ``[B, N]``) is the same for all leaves. Wrong keys, shapes, dtypes or
out-of-range indices raise ``ValueError`` naming the key path, e.g. ``obs['sensors']['goal']``.

**Design of the wrapper.** In Tianshou 2.0.1 the user builds the networks and the ``Algorithm``
builds the optimizers from modules it picks out of the policy: ``DQN`` optimizes
``policy.parameters()`` and copies ``policy.model`` for its target network, ``PPO`` / ``A2C``
optimize ``ActorCritic(policy.actor, critic)``. An encoder that only sat in front of the
policy would therefore be left out of PPO's optimizer and out of DQN's target network. So the
wrapper puts the preprocessor *inside* the policy's network attributes (``model`` and/or
``actor``): each becomes ``preprocessor -> original network``. Every algorithm then trains the
preprocessor with the policy's own optimizer and copies it into target networks, and no
Tianshou class is patched. The wrapper itself is a Tianshou ``Policy`` that hands the inner
policy the observation in one container whose ``mask`` attribute is the action mask, which is
where Tianshou's policies look for one (so DQN masks illegal actions, also when the env calls
it ``action_mask``). Critics, which algorithms call on the raw observations, are wrapped with
:meth:`DictObservationWrapper.wrap_critic`.

Usage (wrap the policy *before* building the algorithm, so that its optimizer sees the
preprocessor)::

    pre = DictToTensorPreprocessor(env.observation_space)
    net = Net(state_shape=pre.output_dim, action_shape=env.action_space.n, hidden_sizes=[64])
    policy = DiscreteQLearningPolicy(model=net, action_space=env.action_space)
    policy = DictObservationWrapper(policy, env.observation_space, preprocessor=pre)
    algorithm = DQN(policy=policy, optim=AdamOptimizerFactory(lr=1e-3))
"""

from __future__ import annotations

import copy
import math
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import torch
from gymnasium import spaces
from tianshou.algorithm.algorithm_base import Policy
from tianshou.data import Batch, to_numpy
from torch import nn

from bridge.tianshou.training_step import PassesOnTrainingStep
from jmarl.nn.encoders import (
    ACTION_MASK_KEYS,
    LARGE_IMAGE_SIZE,
    POOLED_SIZE,
    is_image_shape,
    is_mask_key,
)

__all__ = [
    "DictObservationWrapper",
    "DictToTensorPreprocessor",
    "is_image_space",
    "is_mask_key",
]

_ROOT = "obs"
_NETWORKS = ("model", "actor")
_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "tanh": nn.Tanh,
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
}


def is_image_space(space: spaces.Space) -> bool:
    """Whether a space is encoded by the CNN: a channels-last ``Box`` ``(H, W, C)``.

    The rule (jmarl's :func:`~jmarl.nn.encoders.is_image_shape`): three dimensions,
    ``1 <= C <= 4`` and ``H, W >= 8``. Channels-first images, stacks of more than 4 channels and
    smaller grids (board games) are flattened like any other ``Box``.

    >>> is_image_space(spaces.Box(0, 255, (8, 8, 3))), is_image_space(spaces.Box(0, 1, (6, 7, 2)))
    (True, False)
    """
    return isinstance(space, spaces.Box) and is_image_shape(space.shape)


class _Leaf(NamedTuple):
    """One encoded entry: its key path (for messages) and its space."""

    path: str
    space: spaces.Space


def _leaves(space: spaces.Space, path: str) -> list[_Leaf]:
    """The encoded entries of ``space`` in visiting order (sorted keys, masks skipped)."""
    if isinstance(space, spaces.Dict):
        return [
            leaf
            for key in sorted(space.spaces)
            if not is_mask_key(key)
            for leaf in _leaves(space.spaces[key], f"{path}[{key!r}]")
        ]
    if isinstance(space, spaces.Tuple):
        return [leaf for i, sub in enumerate(space.spaces) for leaf in _leaves(sub, f"{path}[{i}]")]
    return [_Leaf(path, space)]


# --- extractors: [M, *shape] -> [M, output_dim] -------------------------------------------------


def _rows(x: torch.Tensor) -> torch.Tensor:
    """``[M, *shape]`` flattened to ``[M, prod(shape)]`` (also for ``M == 0``)."""
    return x.flatten(1) if x.dim() > 1 else x[:, None]


class _Widths(NamedTuple):
    """Extractor settings (see :class:`DictToTensorPreprocessor`)."""

    features: int
    embed_dim: int
    cnn_channels: tuple[int, ...]
    activation: type[nn.Module]


class _LinearExtractor(nn.Module):
    """``Box`` (not an image) or ``MultiBinary``: flatten, ``float32``, ``Linear``, activation."""

    def __init__(self, space: spaces.Box | spaces.MultiBinary, widths: _Widths) -> None:
        super().__init__()
        size = max(1, math.prod(space.shape))
        self.layers = nn.Sequential(nn.Linear(size, widths.features), widths.activation())
        self.output_dim = widths.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(_rows(x).float())


def _conv_stack(space: spaces.Box, widths: _Widths) -> tuple[nn.Sequential, int]:
    """3x3 convolutions (stride 2 after the first, and in the first for large images) and
    average pooling to at most 8x8; returns the layers and their flat output size."""
    height, width, channels = space.shape
    layers: list[nn.Module] = []
    for i, out in enumerate(widths.cnn_channels):
        stride = 2 if i > 0 or min(height, width) >= LARGE_IMAGE_SIZE else 1
        layers += [nn.Conv2d(channels, out, 3, stride, padding=1), widths.activation()]
        height, width, channels = -(-height // stride), -(-width // stride), out
    window = (-(-height // POOLED_SIZE), -(-width // POOLED_SIZE))
    if window != (1, 1):
        layers.append(nn.AvgPool2d(window, window, ceil_mode=True))
        height, width = -(-height // window[0]), -(-width // window[1])
    return nn.Sequential(*layers, nn.Flatten()), channels * height * width


class _ImageExtractor(nn.Module):
    """``(H, W, C)`` image: :func:`_conv_stack`, then ``Linear`` and activation.

    ``uint8`` images are scaled by 1/255.
    """

    def __init__(self, space: spaces.Box, widths: _Widths) -> None:
        super().__init__()
        self.convs, flat = _conv_stack(space, widths)
        self.head = nn.Sequential(nn.Linear(flat, widths.features), widths.activation())
        self.scale = 1.0 / 255.0 if space.dtype == np.uint8 else 1.0
        self.output_dim = widths.features

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        images = x.float().permute(0, 3, 1, 2) * self.scale
        return self.head(self.convs(images))


class _EmbeddingExtractor(nn.Module):
    """``Discrete`` (one ``Embedding``) or ``MultiDiscrete`` (one per element of ``nvec``)."""

    def __init__(self, space: spaces.Discrete | spaces.MultiDiscrete, dim: int, path: str) -> None:
        super().__init__()
        nvec = np.asarray(space.nvec if isinstance(space, spaces.MultiDiscrete) else space.n)
        start = np.array(np.broadcast_to(space.start, nvec.shape), np.int64).reshape(-1)
        self.sizes = [int(n) for n in nvec.reshape(-1)]
        self.embeddings = nn.ModuleList(nn.Embedding(n, dim) for n in self.sizes)
        self.register_buffer("start", torch.as_tensor(start, dtype=torch.long), persistent=False)
        self.register_buffer("limit", torch.as_tensor(self.sizes), persistent=False)
        self.path, self.space = path, space
        self.output_dim = dim * len(self.sizes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        index = self._index(_rows(x))
        return torch.cat([emb(index[:, k]) for k, emb in enumerate(self.embeddings)], dim=-1)

    def _index(self, x: torch.Tensor) -> torch.Tensor:
        """Zero-based indices, checked to be whole numbers in range."""
        if x.is_floating_point() and not torch.equal(x, x.round()):
            raise ValueError(f"{self.path}: expected whole numbers, got fractional values")
        if x.dtype == torch.bool or x.is_complex():
            raise ValueError(f"{self.path}: expected integer indices, got dtype {x.dtype}")
        index = x.long() - self.start
        bad = (index < 0) | (index >= self.limit)
        if bool(bad.any()):
            value = int(x[bad][0])
            raise ValueError(f"{self.path}: value {value} is outside its space {self.space!r}")
        return index


def _extractor(leaf: _Leaf, widths: _Widths) -> nn.Module:
    space = leaf.space
    if is_image_space(space):
        return _ImageExtractor(space, widths)
    if isinstance(space, spaces.Box | spaces.MultiBinary):
        return _LinearExtractor(space, widths)
    if isinstance(space, spaces.Discrete | spaces.MultiDiscrete):
        return _EmbeddingExtractor(space, widths.embed_dim, leaf.path)
    raise NotImplementedError(
        f"DictToTensorPreprocessor has no extractor for {leaf.path}, {space!r}: supported are "
        "Box, Discrete, MultiDiscrete, MultiBinary, nested Dict and Tuple"
    )


# --- reading inputs -----------------------------------------------------------------------------


def _entries(obs: Any, space: spaces.Dict, path: str) -> Mapping[str, Any]:
    """The entries of a dict-like ``obs``, checked against the keys of ``space``."""
    if isinstance(obs, Batch):
        found = {key: obs[key] for key in obs.get_keys()}
    elif isinstance(obs, Mapping):
        found = dict(obs)
    else:
        raise ValueError(
            f"{path}: expected a dict or tianshou Batch for {space!r}, got {type(obs).__name__}"
        )
    missing = sorted(k for k in space.spaces if k not in found and not is_mask_key(k))
    extra = sorted(str(k) for k in found if k not in space.spaces)
    if missing or extra:
        raise ValueError(f"{path}: missing keys {missing}, unexpected keys {extra}")
    return found


def _gather(obs: Any, space: spaces.Space, path: str) -> list[Any]:
    """The values of the encoded entries of ``obs``, in the order of :func:`_leaves`."""
    if isinstance(space, spaces.Dict):
        found = _entries(obs, space, path)
        return [
            value
            for key in sorted(space.spaces)
            if not is_mask_key(key)
            for value in _gather(found[key], space.spaces[key], f"{path}[{key!r}]")
        ]
    if isinstance(space, spaces.Tuple):
        if not isinstance(obs, list | tuple) or len(obs) != len(space.spaces):
            raise ValueError(
                f"{path}: expected a tuple or list of {len(space.spaces)} parts for {space!r}, "
                f"got {type(obs).__name__}"
            )
        return [
            value
            for i, (part, sub) in enumerate(zip(obs, space.spaces))
            for value in _gather(part, sub, f"{path}[{i}]")
        ]
    return [obs]


def _lead_shape(value: torch.Tensor, leaf: _Leaf) -> tuple[int, ...]:
    """The leading (batch) dims of one leaf, after checking its trailing shape."""
    shape = tuple(leaf.space.shape or ())
    tail = tuple(value.shape[value.dim() - len(shape) :]) if value.dim() >= len(shape) else None
    if tail != shape:
        raise ValueError(
            f"{leaf.path}: expected shape [*batch, {', '.join(map(str, shape))}] for "
            f"{leaf.space!r}, got {list(value.shape)}"
        )
    return tuple(value.shape[: value.dim() - len(shape)])


def _to_tensor(value: Any, leaf: _Leaf, device: torch.device) -> torch.Tensor:
    if isinstance(value, np.ndarray) and not value.flags.writeable:
        value = np.array(value)  # torch warns about read-only arrays
    try:
        return torch.as_tensor(value, device=device)
    except (TypeError, RuntimeError, ValueError) as err:
        raise ValueError(
            f"{leaf.path}: cannot make a tensor of {type(value).__name__} for {leaf.space!r} "
            f"({err})"
        ) from None


def _widths(features: int, embed_dim: int, cnn_channels: Sequence[int], activation: str) -> _Widths:
    channels = tuple(int(c) for c in cnn_channels)
    if features < 1 or embed_dim < 1 or not channels or min(channels) < 1:
        raise ValueError(
            f"widths must be >= 1 (and cnn_channels non-empty), got features={features}, "
            f"embed_dim={embed_dim}, cnn_channels={channels}"
        )
    if activation not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {activation!r}; one of {sorted(_ACTIVATIONS)}")
    return _Widths(features, embed_dim, channels, _ACTIVATIONS[activation])


class DictToTensorPreprocessor(nn.Module):
    """Encodes a gymnasium ``Dict`` observation into ``[*lead, output_dim]`` features.

    See the module docstring for the rules (sorted keys, masks skipped, one extractor per
    space kind). Leading dims are kept: ``[B, ...]`` entries give ``[B, output_dim]``,
    ``[B, N, ...]`` entries (e.g. one row per agent) give ``[B, N, output_dim]``.

    The settings are those of ``jmarl.nn.encoders.EncoderConfig``, with the same defaults.

    :param observation_space: the ``Dict`` space of the observations.
    :param features: output width of the ``Linear`` of each ``Box`` / ``MultiBinary`` entry and
        of each image CNN; wider entries cost parameters in the next network's first layer.
    :param embed_dim: ``Embedding`` width of a ``Discrete`` entry, and of each element of a
        ``MultiDiscrete`` one.
    :param cnn_channels: channels of the CNN's 3x3 conv layers (one layer per entry).
    :param activation: ``"tanh"`` | ``"relu"`` | ``"gelu"`` | ``"silu"``, after every
        ``Linear`` and conv layer (embeddings are used as they are).
    :raises TypeError: ``observation_space`` is not a ``Dict``.
    :raises NotImplementedError: an entry's space has no extractor (named by its key path).
    :raises ValueError: the space has no entry to encode (only masks, or empty), or a bad
        setting.

    Attributes: ``output_dim`` (features per row), ``observation_space``, ``paths`` (the key
    paths of the encoded entries, in feature order).

    >>> space = spaces.Dict({"pos": spaces.Box(-1, 1, (2,)), "goal": spaces.Discrete(4)})
    >>> pre = DictToTensorPreprocessor(space, features=8, embed_dim=4)
    >>> pre.paths, pre.output_dim
    (["obs['goal']", "obs['pos']"], 12)
    >>> pre({"pos": torch.zeros(5, 3, 2), "goal": torch.ones(5, 3, dtype=torch.long)}).shape
    torch.Size([5, 3, 12])
    """

    def __init__(
        self,
        observation_space: spaces.Dict,
        *,
        features: int = 64,
        embed_dim: int = 16,
        cnn_channels: Sequence[int] = (16, 32),
        activation: str = "relu",
    ) -> None:
        super().__init__()
        if not isinstance(observation_space, spaces.Dict):
            raise TypeError(
                "DictToTensorPreprocessor needs a gymnasium.spaces.Dict observation space, got "
                f"{observation_space!r}"
            )
        self.observation_space = observation_space
        self._leaves = _leaves(observation_space, _ROOT)
        if not self._leaves:
            raise ValueError(f"{observation_space!r} has no entry to encode (masks are skipped)")
        widths = _widths(features, embed_dim, cnn_channels, activation)
        self.extractors = nn.ModuleList(_extractor(leaf, widths) for leaf in self._leaves)
        self.paths = [leaf.path for leaf in self._leaves]
        self.output_dim = sum(ext.output_dim for ext in self.extractors)

    def forward(self, obs: Any) -> torch.Tensor:
        """Features ``[*lead, output_dim]`` of a Dict observation (see the class docstring)."""
        device = next(self.parameters()).device
        values = _gather(obs, self.observation_space, _ROOT)
        tensors = [_to_tensor(v, leaf, device) for v, leaf in zip(values, self._leaves)]
        lead = self._common_lead(tensors)
        rows = math.prod(lead)
        features = [
            ext(t.reshape(rows, *(leaf.space.shape or ())))
            for ext, leaf, t in zip(self.extractors, self._leaves, tensors)
        ]
        return torch.cat(features, dim=-1).reshape(*lead, self.output_dim)

    def _common_lead(self, tensors: list[torch.Tensor]) -> tuple[int, ...]:
        """The leading dims shared by all entries; ``ValueError`` naming one that differs."""
        leads = [_lead_shape(t, leaf) for t, leaf in zip(tensors, self._leaves)]
        for leaf, lead in zip(self._leaves, leads):
            if lead != leads[0]:
                raise ValueError(
                    f"{leaf.path}: leading (batch) dims {list(lead)} differ from "
                    f"{list(leads[0])} of {self._leaves[0].path}"
                )
        return leads[0]


# --- the policy wrapper -------------------------------------------------------------------------


class _PolicyObs:
    """What the inner policy receives as ``batch.obs``: the Dict observation, and its mask.

    It has no ``obs`` attribute, so Q-learning policies pass it whole to their model, and a
    ``mask`` attribute only if the observation has an action mask.
    """

    __slots__ = ("data", "mask")

    def __init__(self, data: Any, mask: Any = None) -> None:
        self.data = data
        if mask is not None:
            self.mask = mask

    def __len__(self) -> int:
        return _batch_len(self.data)


def _batch_len(data: Any) -> int:
    """The number of rows of a (nested) batch of observations."""
    if isinstance(data, Batch):
        return len(data)
    if isinstance(data, Mapping):
        return _batch_len(next(iter(data.values())))
    if isinstance(data, list | tuple):
        return _batch_len(data[0])
    return len(data)


class _DictInputNet(nn.Module):
    """``preprocessor -> net``: a network of the inner policy, fed Dict observations.

    Other attributes (``output_dim``, ``max_action``, ...) are read from ``net``.
    """

    def __init__(self, preprocessor: nn.Module, net: nn.Module) -> None:
        super().__init__()
        self.preprocessor = preprocessor
        self.net = net

    def forward(self, obs: Any, *args: Any, **kwargs: Any) -> Any:
        data = obs.data if isinstance(obs, _PolicyObs) else obs
        return self.net(self.preprocessor(data), *args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(super().__getattr__("net"), name)


def _fresh_copy(module: nn.Module) -> nn.Module:
    """A copy of ``module`` with newly initialized parameters."""
    out = copy.deepcopy(module)
    for sub in out.modules():
        if sub is not out and callable(getattr(sub, "reset_parameters", None)):
            sub.reset_parameters()
    return out


def _with_batch_axis(obs: Any) -> Any:
    """A single observation as a batch of one (every leaf gets a leading axis)."""
    if isinstance(obs, Mapping | Batch):
        keys = obs.get_keys() if isinstance(obs, Batch) else obs.keys()
        return {key: _with_batch_axis(obs[key]) for key in keys}
    if isinstance(obs, list | tuple):
        return type(obs)(_with_batch_axis(part) for part in obs)
    return np.asarray(obs)[None]


class DictObservationWrapper(PassesOnTrainingStep, Policy):
    """A Tianshou policy that acts and learns on Dict observations (see the module docstring).

    The preprocessor is inserted into the inner policy's networks (``model`` for Q-learning
    policies, ``actor`` for actor policies): each becomes ``preprocessor -> network``, so the
    algorithm built on this wrapper trains the preprocessor with the policy's optimizer and
    copies it into its target networks. Wrap the policy before building the algorithm, and
    size the network's input by ``preprocessor.output_dim``.

    :param policy: the Tianshou policy to wrap (e.g. ``DiscreteQLearningPolicy``,
        ``DiscreteActorPolicy``, ``ProbabilisticActorPolicy``); it is modified in place.
    :param observation_space: the ``Dict`` observation space.
    :param preprocessor: the encoder to use (default: ``DictToTensorPreprocessor`` of
        ``observation_space`` with default sizes); any module mapping the observation to
        features works.
    :param networks: names of the inner policy's network attributes that take observations
        (default: those of ``"model"`` and ``"actor"`` that it has).
    :raises TypeError: ``policy`` is not a Tianshou ``Policy`` or the space is not a ``Dict``.
    :raises ValueError: no network to wrap, a network is already wrapped, or the preprocessor
        was built for another space.

    The action mask (entry ``"mask"``, else ``"action_mask"``) is handed to the inner policy
    where Tianshou policies read it (``batch.obs.mask``). Tianshou's actor policies (PPO,
    A2C) ignore it, as they do without this wrapper. Attributes the wrapper does not define
    are read from and written to the inner policy (``policy``), e.g. ``set_eps_training``.
    """

    def __init__(
        self,
        policy: Policy,
        observation_space: spaces.Dict,
        preprocessor: nn.Module | None = None,
        networks: Sequence[str] | None = None,
    ) -> None:
        if not isinstance(policy, Policy):
            raise TypeError(f"expected a tianshou Policy to wrap, got {type(policy).__name__}")
        if preprocessor is None:
            preprocessor = DictToTensorPreprocessor(observation_space)
        _check_preprocessor(preprocessor, observation_space)
        super().__init__(
            action_space=policy.action_space,
            observation_space=observation_space,
            action_scaling=policy.action_scaling,
            action_bound_method=policy.action_bound_method,
        )
        keys = observation_space.spaces
        self.mask_key = next((k for k in ACTION_MASK_KEYS if k in keys), None)
        self.networks = _wrap_networks(policy, preprocessor, networks)
        self.preprocessor = preprocessor
        self.policy = policy  # last: from here on, unknown attributes go to the inner policy

    # --- Tianshou Policy interface ---------------------------------------------------------------

    def forward(self, batch: Batch, state: Any = None, **kwargs: Any) -> Batch:
        """The inner policy's output on ``batch`` (``batch.obs`` is the Dict observation).

        Keyword arguments (e.g. DQN's ``model=`` for its target network) are passed on.
        """
        return self.policy(self._inner_batch(batch), state=state, **kwargs)

    def add_exploration_noise(self, act: Any, batch: Batch) -> Any:
        """The inner policy's exploration noise (it sees the action mask as ``obs.mask``)."""
        return self.policy.add_exploration_noise(act, self._inner_batch(batch))

    def map_action(self, act: Any) -> np.ndarray:
        """The inner policy's action mapping (bounding, scaling)."""
        return self.policy.map_action(act)

    def map_action_inverse(self, act: Any) -> np.ndarray:
        """The inner policy's inverse action mapping."""
        return self.policy.map_action_inverse(act)

    def compute_action(
        self, obs: Any, info: dict[str, Any] | None = None, state: Any = None
    ) -> np.ndarray | int:
        """The action for one (unbatched) Dict observation, as the env takes it."""
        batch = Batch(obs=_with_batch_axis(obs), info=info)
        act = to_numpy(self.forward(batch, state=state).act)[0]
        act = self.map_action(act)
        return int(act) if isinstance(self.action_space, spaces.Discrete) else act

    def wrap_critic(self, critic: nn.Module, share_preprocessor: bool = True) -> nn.Module:
        """``critic`` fed Dict observations, for algorithms that call it on ``batch.obs``.

        :param critic: e.g. a ``DiscreteCritic`` or ``ContinuousCritic`` whose input size is
            the preprocessor's ``output_dim``; extra arguments (actions) are passed on.
        :param share_preprocessor: use the policy's preprocessor (one encoder trained by actor
            and critic losses, as in PPO with a shared trunk; then build the algorithm with the
            actor in the critic's optimizer, as PPO does) or a newly initialized copy (for
            algorithms with separate actor and critic optimizers, e.g. SAC).
        """
        pre = self.preprocessor if share_preprocessor else _fresh_copy(self.preprocessor)
        return _DictInputNet(pre, critic)

    # --- helpers ---------------------------------------------------------------------------------

    def _inner_batch(self, batch: Batch) -> Batch:
        """A shallow copy of ``batch`` with ``obs`` in the form the inner policy expects."""
        obs = batch.obs
        mask = None
        if self.mask_key is not None:
            mask = _entries(obs, self.observation_space, _ROOT).get(self.mask_key)
        inner = Batch(batch, copy=False)
        inner.obs = _PolicyObs(obs, mask)
        return inner

    def __getattr__(self, name: str) -> Any:
        try:
            return super().__getattr__(name)
        except AttributeError:
            inner = self.__dict__.get("_modules", {}).get("policy")
            if inner is None:
                raise
            return getattr(inner, name)

    def __setattr__(self, name: str, value: Any) -> None:
        inner = self.__dict__.get("_modules", {}).get("policy")
        forward_to_inner = (
            inner is not None
            and name not in self.__dict__
            and not hasattr(type(self), name)
            and not isinstance(value, nn.Module | torch.Tensor)
            and hasattr(inner, name)
        )
        if forward_to_inner:
            setattr(inner, name, value)
        else:
            super().__setattr__(name, value)


def _check_preprocessor(preprocessor: nn.Module, observation_space: spaces.Space) -> None:
    if not isinstance(observation_space, spaces.Dict):
        raise TypeError(
            f"DictObservationWrapper needs a gymnasium.spaces.Dict space, got {observation_space!r}"
        )
    own = getattr(preprocessor, "observation_space", observation_space)
    if own != observation_space:
        raise ValueError(
            f"the preprocessor was built for {own!r}, not for the wrapper's {observation_space!r}"
        )


def _wrap_networks(
    policy: Policy, preprocessor: nn.Module, networks: Sequence[str] | None
) -> tuple[str, ...]:
    """Replaces each named network of ``policy`` by ``preprocessor -> network``."""
    names = (
        tuple(networks)
        if networks is not None
        else tuple(n for n in _NETWORKS if isinstance(getattr(policy, n, None), nn.Module))
    )
    if not names:
        raise ValueError(
            f"{type(policy).__name__} has no network attribute {' or '.join(_NETWORKS)}; pass "
            "networks=[names of the attributes that take observations]"
        )
    for name in names:
        net = getattr(policy, name, None)
        if not isinstance(net, nn.Module):
            raise ValueError(f"{type(policy).__name__}.{name} is not a torch module: {net!r}")
        if isinstance(net, _DictInputNet):
            raise ValueError(f"{type(policy).__name__}.{name} already takes Dict observations")
        setattr(policy, name, _DictInputNet(preprocessor, net))
    return names
