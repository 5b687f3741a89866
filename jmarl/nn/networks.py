"""Single-agent networks (Flax Linen behind the :class:`~jmarl.agents.sharing.Network` pair).

Each factory returns a ``Network`` for ONE agent; :func:`jmarl.agents.sharing.share` lifts it
to all agents. Inputs are one agent's observation pytree: by default its leaves are flattened
and concatenated into the MLP; given an ``input_space``, a space-driven encoder
(:mod:`jmarl.nn.encoders`: CNN for images, embeddings for discrete parts, ...) computes the
MLP's input instead.

Given a ``gru_size`` the network is recurrent: ``Dense(hidden[0])`` -> ``GRUCell(gru_size)``
-> the remaining layers, and ``apply(params, h [H], x, reset []) -> (h' [H], out)`` starts
from zeros instead of ``h`` where ``reset`` (the first step of an episode).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jmarl.env.spaces import Space
from jmarl.nn.activations import ACTIVATIONS
from jmarl.nn.encoders import EncoderConfig, SpaceEncoder
from jmarl.nn.initializers import orthogonal
from jmarl.nn.network import Network
from jmarl.types import Array, Params, PRNGKey, PyTree


def flatten_obs(obs: PyTree) -> Array:
    """One agent's observation pytree -> ``f32[D]`` (leaves flattened, sorted-key order)."""
    leaves = jax.tree.leaves(obs)
    return jnp.concatenate([jnp.ravel(x).astype(jnp.float32) for x in leaves], axis=-1)


def flatten_rows(obs: PyTree) -> Array:
    """:func:`flatten_obs` of every row: a pytree with leaves ``[R, ...]`` -> ``f32[R, D]``."""
    leaves = jax.tree.leaves(obs)
    rows = leaves[0].shape[0]
    return jnp.concatenate([x.reshape(rows, -1).astype(jnp.float32) for x in leaves], axis=-1)


def mlp_rows(params: Params, x: Array, activation: str) -> Array:
    """An :class:`MLP` with parameters ``params`` on every row of ``x`` ``f32[R, D]`` ->
    ``f32[R, out]``: ``vmap(mlp.apply)``'s values, computed with the hidden activations
    feature-major ``[H, R]``.

    Each layer is one ``dot_general`` whose operands XLA:CPU multiplies without transposing
    them, forward and backward (measured with the other speed changes of 2026-12-07 in
    ``benchmarks/results/train_throughput_2core/``). Values agree with ``vmap(mlp.apply)`` to
    float32 rounding (the sums run in another order).
    """
    layers = params["params"]
    names = sorted(layers, key=lambda name: int(name.rsplit("_", 1)[1]))  # Dense_0, Dense_1, ...
    act = ACTIVATIONS[activation]
    h, feature_major = x, False
    for name in names[:-1]:
        kernel, bias = layers[name]["kernel"], layers[name]["bias"]
        contract = 0 if feature_major else 1  # h: [H, R] or [R, D]
        h = act(jax.lax.dot_general(kernel, h, (((0,), (contract,)), ((), ()))) + bias[:, None])
        feature_major = True
    kernel, bias = layers[names[-1]]["kernel"], layers[names[-1]]["bias"]
    contract = 0 if feature_major else 1
    out: Array = jax.lax.dot_general(h, kernel, (((contract,), (0,)), ((), ()))) + bias
    return out


class MLP(nn.Module):
    """Dense layers with orthogonal init; last layer linear with ``out_scale`` init."""

    hidden: Sequence[int]
    out_dim: int
    activation: str = "tanh"
    out_scale: float = 0.01

    @nn.compact
    def __call__(self, x: Array) -> Array:
        act = ACTIVATIONS[self.activation]
        for h in self.hidden:
            x = act(nn.Dense(h, kernel_init=orthogonal(np.sqrt(2.0)))(x))
        return nn.Dense(self.out_dim, kernel_init=orthogonal(self.out_scale))(x)


class GaussianHead(nn.Module):
    """MLP mean plus a state-independent learned ``log_std``; returns ``concat(mean, log_std)``."""

    hidden: Sequence[int]
    action_dim: int
    activation: str = "tanh"
    init_log_std: float = -0.5

    @nn.compact
    def __call__(self, x: Array) -> Array:
        mean = MLP(self.hidden, self.action_dim, self.activation)(x)
        log_std = self.param(
            "log_std", nn.initializers.constant(self.init_log_std), (self.action_dim,)
        )
        return jnp.concatenate([mean, jnp.broadcast_to(log_std, mean.shape)], axis=-1)


class EncodedHead(nn.Module):
    """``encoder`` (observation pytree -> features) followed by ``head`` (features -> out)."""

    encoder: nn.Module
    head: nn.Module

    def __call__(self, x: PyTree) -> Array:
        out: Array = self.head(self.encoder(x))
        return out


class RecurrentHead(nn.Module):
    """``[encoder] -> Dense(width) -> GRUCell(gru_size) -> head``; ``(h, x, reset) -> (h', out)``.

    The GRU starts from zeros where ``reset`` (a new episode), so no state crosses episodes.
    """

    width: int
    gru_size: int
    head: nn.Module
    activation: str = "tanh"
    encoder: nn.Module | None = None

    @nn.compact
    def __call__(self, h: Array, x: PyTree, reset: Array) -> tuple[Array, Array]:
        if self.encoder is not None:
            x = self.encoder(x)
        act = ACTIVATIONS[self.activation]
        x = act(nn.Dense(self.width, kernel_init=orthogonal(np.sqrt(2.0)))(x))
        h = jnp.where(reset, jnp.zeros_like(h), h)
        h, y = nn.GRUCell(self.gru_size)(h, x)
        out: Array = self.head(y)
        return h, out


def _recurrent_network(
    head: nn.Module,
    example: PyTree,
    hidden: Sequence[int],
    activation: str,
    gru_size: int,
    input_space: Space | None,
    encoder: EncoderConfig | None,
) -> Network:
    """``RecurrentHead`` over ``head`` (the layers after the GRU), encoded like :func:`_network`."""
    enc = None if input_space is None else SpaceEncoder(input_space, encoder or EncoderConfig())
    prepare: Callable[[PyTree], PyTree] = flatten_obs if enc is None else (lambda x: x)
    module = RecurrentHead(hidden[0], gru_size, head, activation, enc)
    h0 = jnp.zeros((gru_size,), jnp.float32)

    def init(key: PRNGKey) -> Params:
        return module.init(key, h0, prepare(example), jnp.zeros((), bool))

    def apply(params: Params, h: Array, x: PyTree, reset: Array) -> tuple[Array, Array]:
        out: tuple[Array, Array] = module.apply(params, h, prepare(x), reset)  # type: ignore[assignment]
        return out

    return Network(init, apply)


def _network(
    head: nn.Module, example: PyTree, input_space: Space | None, encoder: EncoderConfig | None
) -> Network:
    """``head`` on flattened inputs, or behind a ``SpaceEncoder`` of ``input_space``."""
    prepare: Callable[[PyTree], PyTree]
    if input_space is None:
        module, prepare = head, flatten_obs
    else:
        enc = SpaceEncoder(input_space, encoder or EncoderConfig())
        module, prepare = EncodedHead(enc, head), lambda x: x

    def init(key: PRNGKey) -> Params:
        return module.init(key, prepare(example))

    def apply(params: Params, x: PyTree) -> Array:
        out: Array = module.apply(params, prepare(x))  # type: ignore[assignment]
        return out

    if input_space is None and type(head) is MLP:
        activation = head.activation
        rows = lambda params, x: mlp_rows(params, flatten_rows(x), activation)
        return Network(init, apply, rows)
    return Network(init, apply)


class Torso(nn.Module):
    """One ``Dense(width)`` layer with its activation."""

    width: int
    activation: str = "tanh"

    @nn.compact
    def __call__(self, x: Array) -> Array:
        dense = nn.Dense(self.width, kernel_init=orthogonal(np.sqrt(2.0)))
        out: Array = ACTIVATIONS[self.activation](dense(x))
        return out


def make_torso(
    example_input: PyTree,
    width: int,
    activation: str = "tanh",
    input_space: Space | None = None,
    encoder: EncoderConfig | None = None,
) -> Network:
    """One agent's input -> features ``f32[width]`` (the first layer of a cross-agent network,
    :mod:`jmarl.nn.cross_agent`); ``input_space``/``encoder`` as in :func:`make_actor`."""
    return _network(Torso(width, activation), example_input, input_space, encoder)


def make_head(
    in_features: int, hidden: Sequence[int], out_dim: int, activation: str, out_scale: float
) -> Network:
    """Features ``f32[in_features]`` -> ``f32[out_dim]`` through ``hidden`` layers."""
    mlp = MLP(tuple(hidden), out_dim, activation, out_scale)
    return Network(lambda k: mlp.init(k, jnp.zeros((in_features,))), mlp.apply)


def make_q_network(
    example_input: PyTree,
    num_actions: int,
    hidden: Sequence[int] = (64, 64),
    activation: str = "relu",
    input_space: Space | None = None,
    encoder: EncoderConfig | None = None,
    gru_size: int | None = None,
) -> Network:
    """One agent's input -> action values ``f32[num_actions]``; ``input_space``, ``encoder``
    and ``gru_size`` as in :func:`make_actor` (recurrent: ``apply(params, h, x, reset) ->
    (h', q)``)."""
    if gru_size is not None:
        mlp = MLP(tuple(hidden[1:]), num_actions, activation, out_scale=1.0)
        return _recurrent_network(
            mlp, example_input, hidden, activation, gru_size, input_space, encoder
        )
    mlp = MLP(tuple(hidden), num_actions, activation, out_scale=1.0)
    return _network(mlp, example_input, input_space, encoder)


def make_actor(
    example_obs: PyTree,
    param_size: int,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    gaussian: bool = False,
    input_space: Space | None = None,
    encoder: EncoderConfig | None = None,
    gru_size: int | None = None,
) -> Network:
    """Actor for one agent: observation -> action-distribution parameters ``[param_size]``.

    :param example_obs: one agent's observation (shapes only) used to size the first layer.
    :param gaussian: if True the last half of the output is a learned state-independent log_std.
    :param input_space: the space of ``example_obs``; when given, the MLP sees the features of
        :class:`~jmarl.nn.encoders.SpaceEncoder` instead of the flattened leaves.
    :param encoder: the encoder's widths (default :class:`~jmarl.nn.encoders.EncoderConfig`).
    :param gru_size: make it recurrent (see the module doc): ``hidden[0]`` feeds a GRU of this
        width, ``hidden[1:]`` follow it.
    """
    layers = tuple(hidden) if gru_size is None else tuple(hidden[1:])
    if gaussian:
        module: nn.Module = GaussianHead(layers, param_size // 2, activation)
    else:
        module = MLP(layers, param_size, activation, out_scale=0.01)
    if gru_size is not None:
        return _recurrent_network(
            module, example_obs, hidden, activation, gru_size, input_space, encoder
        )
    return _network(module, example_obs, input_space, encoder)


def make_critic(
    example_input: PyTree,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    input_space: Space | None = None,
    encoder: EncoderConfig | None = None,
    gru_size: int | None = None,
) -> Network:
    """Critic for one agent: input pytree -> scalar value ``[]``.

    ``input_space``, ``encoder`` and ``gru_size`` as in :func:`make_actor` (recurrent:
    ``apply(params, h, x, reset) -> (h', value)``).
    """
    if gru_size is not None:
        mlp = MLP(tuple(hidden[1:]), 1, activation, out_scale=1.0)
        net = _recurrent_network(
            mlp, example_input, hidden, activation, gru_size, input_space, encoder
        )

        def apply(p: Params, h: Array, x: PyTree, reset: Array) -> tuple[Array, Array]:
            h, out = net.apply(p, h, x, reset)
            return h, out[..., 0]

        return Network(net.init, apply)
    mlp = MLP(tuple(hidden), 1, activation, out_scale=1.0)
    net = _network(mlp, example_input, input_space, encoder)
    rows = net.apply_rows
    return Network(
        net.init,
        lambda p, x: net.apply(p, x)[..., 0],
        None if rows is None else (lambda p, x: rows(p, x)[..., 0]),
    )
