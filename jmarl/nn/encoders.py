"""Observation encoders built from a jmarl space description.

:func:`make_encoder` turns ONE agent's observation of ``space`` into one feature vector
``f32[output_dim(space, cfg)]``; batches (``[B, ...]``, ``[B, N, ...]``) go through ``vmap``,
which is how :func:`jmarl.agents.sharing.share` applies it to every agent::

    space = Dict.from_mapping({"image": Box(0, 255, (8, 8, 3), "uint8"), "id": Discrete(4)})
    enc = make_encoder(space)                  # Network(init, apply)
    params = enc.init(key)
    features = enc.apply(params, obs)          # obs = {"image": u8[8, 8, 3], "id": i32[]}

One extractor per part, in the order of the space (``Dict`` keys sorted, ``Tuple`` in order):

* ``Box`` that is an image (see :func:`is_image`): a small CNN, then ``Dense(features)``;
* any other ``Box`` (any shape): flattened, then ``Dense(features)``;
* ``Discrete(n)``: an ``Embedding(n, embed_dim)`` of the value;
* ``MultiDiscrete(nvec)``: one ``Embedding(nvec[i], embed_dim)`` per dimension;
* ``MultiBinary``: flattened, then ``Dense(features)``;
* ``Dict`` / ``Tuple``: their parts, recursively.

The parts' features are concatenated. ``Dict`` entries whose key names a mask (see
:func:`is_mask_key`; the same rule as ``bridge.tianshou.dict_obs``) are not encoded and may be left
out of the observation: a mask restricts the action distribution, it is not a feature.
jmarl policies take the action mask from ``TimeStep.action_mask`` only, so an environment
that shows its mask in the observation (as PettingZoo envs do) must also return it there.

Observations are checked against the space when the encoder is traced: a missing or
unexpected key, a wrong shape or a non-integer discrete value raises ``ValueError`` naming the
key path (e.g. ``obs['pair'][1]``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import flax.linen as nn
import jax.numpy as jnp
import numpy as np

from jmarl.env import spaces
from jmarl.env.spaces import Box, Dict, Discrete, MultiBinary, MultiDiscrete, Space, Tuple
from jmarl.nn.activations import ACTIVATIONS
from jmarl.nn.network import Network
from jmarl.types import Array, Params, PRNGKey, PyTree

MIN_IMAGE_SIZE = 8  # height and width of the smallest Box treated as an image
MAX_IMAGE_CHANNELS = 4
POOLED_SIZE = 8  # CNN feature maps are average-pooled to at most this height and width
LARGE_IMAGE_SIZE = 32  # from this size on, the first conv layer also has stride 2
ACTION_MASK_KEYS = ("mask", "action_mask")  # where a Dict observation may carry the action mask


@dataclass(frozen=True)
class EncoderConfig:
    """Widths of the encoder's extractors.

    :param features: output width of the Dense layer of each Box / MultiBinary part and of
        each image CNN; wider parts cost parameters in the head's first layer.
    :param embed_dim: embedding width of a Discrete part, and of each MultiDiscrete dimension.
    :param cnn_channels: channels of the CNN's 3x3 conv layers (one layer per entry).
    :param activation: ``tanh`` | ``relu`` | ``gelu`` | ``silu``, after every Dense and conv
        layer (embeddings are used as they are).
    """

    features: int = 64
    embed_dim: int = 16
    cnn_channels: tuple[int, ...] = (16, 32)
    activation: str = "relu"

    def __post_init__(self) -> None:
        if self.features < 1 or self.embed_dim < 1:
            raise ValueError(f"EncoderConfig widths must be >= 1, got {self}")
        if not self.cnn_channels or min(self.cnn_channels) < 1:
            raise ValueError(f"cnn_channels must be positive widths, got {self.cnn_channels}")
        if self.activation not in ACTIVATIONS:
            raise ValueError(f"unknown activation {self.activation!r}")


def is_mask_key(key: str) -> bool:
    """Whether the ``Dict`` entry ``key`` is a mask, which is not encoded.

    The rule: ``key == "mask"`` or ``key`` ends with ``"_mask"`` (``"action_mask"``,
    ``"alive_mask"``), at any depth. An informative entry must therefore not be named
    ``*_mask`` (call a visibility mask ``"visibility"``), or it will be ignored.

    >>> [is_mask_key(k) for k in ("mask", "action_mask", "alive_mask", "masked", "obs")]
    [True, True, True, False, False]
    """
    return key == "mask" or key.endswith("_mask")


def is_image_shape(shape: tuple[int, ...]) -> bool:
    """Whether a ``Box`` of ``shape`` is an image: ``(H, W, C)`` with ``1 <= C <= 4`` and
    ``H, W >= 8`` (the rule of :func:`is_image`, also used by ``bridge``'s torch encoder).

    >>> is_image_shape((8, 8, 3)), is_image_shape((3, 8, 8)), is_image_shape((6, 7, 2))
    (True, False, False)
    """
    if len(shape) != 3:
        return False
    h, w, c = shape
    return 1 <= c <= MAX_IMAGE_CHANNELS and min(h, w) >= MIN_IMAGE_SIZE


def is_image(space: Space) -> bool:
    """Whether ``space`` is encoded by the CNN: a channels-last ``Box`` ``(H, W, C)``.

    The rule (:func:`is_image_shape`): three dimensions, ``1 <= C <= 4`` and ``H, W >= 8``.
    Channels-first images, stacks of more than 4 channels and smaller grids are flattened like
    any other Box. ``uint8`` images are scaled by ``1/255``; other dtypes are used as they are.

    >>> is_image(Box(0, 255, (8, 8, 3), "uint8")), is_image(Box(0, 1, (3, 8, 8)))
    (True, False)
    """
    return isinstance(space, Box) and is_image_shape(space.shape)


def needs_encoder(space: Space) -> bool:
    """Whether a policy over ``space`` needs :func:`make_encoder` (anything but a flat Box).

    A non-image ``Box`` is flattened straight into the MLP, as jmarl always did.
    """
    return not isinstance(space, Box) or is_image(space)


def output_dim(space: Space, cfg: EncoderConfig = EncoderConfig()) -> int:
    """Width of the feature vector the encoder of ``space`` returns.

    >>> output_dim(Dict.from_mapping({"id": Discrete(3), "action_mask": MultiBinary((5,))}))
    16
    """
    if isinstance(space, Dict):
        return sum(output_dim(s, cfg) for k, s in space.spaces if not is_mask_key(k))
    if isinstance(space, Tuple):
        return sum(output_dim(s, cfg) for s in space.spaces)
    if isinstance(space, Discrete):
        return cfg.embed_dim
    if isinstance(space, MultiDiscrete):
        return cfg.embed_dim * len(space.nvec)
    if isinstance(space, (Box, MultiBinary)):
        return cfg.features
    raise TypeError(f"unknown space {space!r}")


# --- checks ------------------------------------------------------------------------------


def check_obs(space: Space, obs: PyTree, path: str = "obs") -> None:
    """Checks that ``obs`` is ONE observation of ``space`` (no batch dimensions).

    Mask entries (:func:`is_mask_key`) may be absent; when present they are checked too.

    :raises ValueError: naming the key path of the first mismatch (type, keys, tuple
        length, shape, or a non-integer value for a discrete part).
    """
    if isinstance(space, Dict):
        _check_keys(space, obs, path)
        for k, s in space.spaces:
            if k in obs:
                check_obs(s, obs[k], f"{path}[{k!r}]")
    elif isinstance(space, Tuple):
        if not isinstance(obs, (tuple, list)) or len(obs) != len(space.spaces):
            got = f"length {len(obs)}" if isinstance(obs, (tuple, list)) else type(obs).__name__
            raise ValueError(f"{path}: expected a tuple of {len(space.spaces)} parts, got {got}")
        for i, (s, x) in enumerate(zip(space.spaces, obs)):
            check_obs(s, x, f"{path}[{i}]")
    else:
        _check_leaf(space, obs, path)


def _check_keys(space: Dict, obs: PyTree, path: str) -> None:
    if not isinstance(obs, Mapping):
        raise ValueError(
            f"{path}: expected a dict with keys {list(space.keys())}, got {type(obs).__name__}"
        )
    missing = sorted(k for k in set(space.keys()) - set(obs) if not is_mask_key(k))
    extra = sorted(set(obs) - set(space.keys()), key=str)
    if missing or extra:
        raise ValueError(
            f"{path}: keys do not match the space; missing {missing}, unexpected {extra} "
            f"(expected {list(space.keys())})"
        )


def _check_leaf(space: Space, x: PyTree, path: str) -> None:
    if not hasattr(x, "shape") and not np.isscalar(x):
        raise ValueError(f"{path}: expected an array for {space!r}, got {type(x).__name__}")
    shape, (expected, _) = tuple(jnp.shape(x)), spaces.as_array_spec(space)
    if shape != expected:
        raise ValueError(
            f"{path}: expected shape {expected} for {space!r}, got {shape} "
            "(encoders take one observation; add batch dimensions with vmap)"
        )
    if isinstance(space, (Discrete, MultiDiscrete)):
        dtype = jnp.result_type(x)
        if not jnp.issubdtype(dtype, jnp.integer):
            raise ValueError(f"{path}: {space!r} needs integer values, got dtype {dtype}")


# --- extractors ---------------------------------------------------------------------------


class Conv3x3(nn.Module):
    """3x3 convolution, zero padding 1 on every side: ``[H, W, C] -> [ceil(H/s), ceil(W/s), F]``.

    Computed as nine shifted slices and one contraction rather than ``lax.conv``: on XLA:CPU
    the gradient of ``lax.conv`` inside ``lax.scan`` (every PPO update) runs about 8 times
    slower. Parameters are laid out as ``flax.linen.Conv``'s (``kernel [3, 3, C, F]``).
    """

    features: int
    stride: int = 1

    @nn.compact
    def __call__(self, x: Array) -> Array:
        h, w, c = x.shape
        kernel = self.param("kernel", nn.initializers.lecun_normal(), (3, 3, c, self.features))
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        padded = jnp.pad(x, ((1, 1), (1, 1), (0, 0)))
        s = self.stride
        shifted = [padded[i : i + h : s, j : j + w : s] for i in range(3) for j in range(3)]
        patches = jnp.stack(shifted, axis=-2)  # [H', W', 9, C]
        return jnp.einsum("hwkc,kcf->hwf", patches, kernel.reshape(9, c, self.features)) + bias


class ImageCNN(nn.Module):
    """``(H, W, C)`` image -> ``f32[features]``.

    :class:`Conv3x3` layers, one per entry of ``channels``; every layer after the first has
    stride 2, the first too when ``min(H, W) >= 32``. The last feature map is average-pooled
    to at most 8x8, flattened and mapped by ``Dense(features)``.
    """

    channels: tuple[int, ...]
    features: int
    activation: str

    @nn.compact
    def __call__(self, x: Array) -> Array:
        act = ACTIVATIONS[self.activation]
        if x.dtype == jnp.uint8:
            x = x.astype(jnp.float32) / 255.0
        x = x.astype(jnp.float32)
        for i, ch in enumerate(self.channels):
            stride = 2 if i > 0 or min(x.shape[:2]) >= LARGE_IMAGE_SIZE else 1
            x = act(Conv3x3(ch, stride)(x))
        window = tuple(math.ceil(d / POOLED_SIZE) for d in x.shape[:2])
        if window != (1, 1):
            x = nn.avg_pool(x[None], window, strides=window, padding="SAME")[0]
        return act(nn.Dense(self.features)(x.reshape(-1)))


class Embedding(nn.Module):
    """``int[...]`` in ``[0, num)`` -> ``f32[..., features]``, a learned lookup table.

    Out-of-range values give NaN features (``jnp.take``'s fill), so they cannot go unnoticed.
    (``flax.linen.Embed`` is not used: with one embedding it mis-shapes scalar inputs.)
    """

    num: int
    features: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        init = nn.initializers.variance_scaling(1.0, "fan_in", "normal", out_axis=0)
        table = self.param("embedding", init, (self.num, self.features))
        return jnp.take(table, x, axis=0, mode="fill", fill_value=jnp.nan)


class MultiEmbed(nn.Module):
    """``int[D]`` -> ``f32[D * embed_dim]``: one embedding table per dimension."""

    nvec: tuple[int, ...]
    embed_dim: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        embed = [Embedding(n, self.embed_dim, name=f"dim_{i}") for i, n in enumerate(self.nvec)]
        return jnp.concatenate([e(x[i]) for i, e in enumerate(embed)], axis=-1)


class SpaceEncoder(nn.Module):
    """One observation of ``space`` -> ``f32[output_dim(space, config)]`` (see the module doc).

    Sub-encoders are named after the keys (``Dict``) and positions (``item_<i>``, ``Tuple``)
    they encode, so the parameter tree mirrors the observation. ``path`` names the
    observation in error messages; with ``validate`` the whole observation is checked first.
    """

    space: Space
    config: EncoderConfig = EncoderConfig()
    path: str = "obs"
    validate: bool = True

    @nn.compact
    def __call__(self, obs: PyTree) -> Array:
        if self.validate:  # the root checks the whole tree once
            check_obs(self.space, obs, self.path)
        space, cfg = self.space, self.config
        if isinstance(space, (Dict, Tuple)):
            parts = [
                SpaceEncoder(s, cfg, f"{self.path}{suffix}", validate=False, name=name)(x)
                for name, suffix, s, x in _children(space, obs)
            ]
            if not parts:
                raise ValueError(f"{self.path}: {space!r} has nothing to encode")
            return jnp.concatenate(parts, axis=-1)
        return _leaf(space, cfg, obs)


def _children(space: Dict | Tuple, obs: PyTree) -> list[tuple[str, str, Space, PyTree]]:
    """``(module name, path suffix, sub-space, sub-observation)`` of each encoded part."""
    if isinstance(space, Dict):
        return [(k, f"[{k!r}]", s, obs[k]) for k, s in space.spaces if not is_mask_key(k)]
    return [(f"item_{i}", f"[{i}]", s, x) for i, (s, x) in enumerate(zip(space.spaces, obs))]


def _leaf(space: Space, cfg: EncoderConfig, x: Array) -> Array:
    """Features of one non-nested part (called inside ``SpaceEncoder``'s compact scope)."""
    act = ACTIVATIONS[cfg.activation]
    if isinstance(space, Box) and is_image(space):
        return ImageCNN(cfg.cnn_channels, cfg.features, cfg.activation)(jnp.asarray(x))
    if isinstance(space, (Box, MultiBinary)):
        flat = jnp.ravel(jnp.asarray(x)).astype(jnp.float32)
        return act(nn.Dense(cfg.features)(flat))
    if isinstance(space, Discrete):
        return Embedding(space.n, cfg.embed_dim)(jnp.asarray(x))
    if isinstance(space, MultiDiscrete):
        return MultiEmbed(tuple(space.nvec), cfg.embed_dim)(jnp.asarray(x))
    raise TypeError(f"unknown space {space!r}")


def make_encoder(space: Space, cfg: EncoderConfig = EncoderConfig()) -> Network:
    """The encoder of ``space`` as a ``Network``.

    * ``init(key) -> params``
    * ``apply(params, obs) -> f32[output_dim(space, cfg)]`` for ONE observation of ``space``;
      ``vmap`` it for batches.

    :raises ValueError: (from ``init``) when nothing in ``space`` is encoded, e.g. a ``Dict``
        of action masks only.
    """
    module = SpaceEncoder(space, cfg)

    def init(key: PRNGKey) -> Params:
        return module.init(key, spaces.zeros(space))

    def apply(params: Params, obs: PyTree) -> Array:
        out: Array = module.apply(params, obs)  # type: ignore[assignment]
        return out

    return Network(init, apply)


__all__ = [
    "Conv3x3",
    "Embedding",
    "EncoderConfig",
    "ImageCNN",
    "SpaceEncoder",
    "check_obs",
    "is_image",
    "is_image_shape",
    "is_mask_key",
    "make_encoder",
    "needs_encoder",
    "output_dim",
]
