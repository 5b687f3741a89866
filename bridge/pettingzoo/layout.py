"""The common per-agent layout that PettingZoo agents' own spaces are padded to.

:class:`PaddedLayout` is what :class:`~bridge.pettingzoo.env.EnhancedPettingZooEnv` (both
modes) encodes observations, masks and actions with; see that module for the rules.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
from gymnasium import spaces

__all__ = [
    "PaddedLayout",
    "blank_tree",
    "flat_width",
    "flatten_rows",
    "put_tree",
    "stacked_space",
]


def _inner_space(space: spaces.Space) -> tuple[spaces.Space, str | None]:
    """The observation part of an agent's space and where its action mask is.

    :returns: ``(space, None)`` without a mask; ``(space["observation"], "observation")`` for
        a classic game's ``Dict(observation, action_mask)``; ``(the Dict without the key,
        "rest")`` for any other ``Dict`` with an ``action_mask`` key.
    """
    if not isinstance(space, spaces.Dict) or "action_mask" not in space.spaces:
        return space, None
    if "observation" in space.spaces:
        return space["observation"], "observation"
    return spaces.Dict({k: v for k, v in space.spaces.items() if k != "action_mask"}), "rest"


def stacked_space(space: spaces.Space, n: int) -> spaces.Space | None:
    """``space`` with a leading agent axis of ``n`` on every leaf (zeros always inside), or
    None if some part can't be stacked into arrays (Tuple, Text, Graph, ...)."""
    if isinstance(space, spaces.Dict):
        parts = {k: stacked_space(v, n) for k, v in space.spaces.items()}
        if any(p is None for p in parts.values()):
            return None
        return spaces.Dict(parts)  # type: ignore[arg-type]
    if isinstance(space, spaces.Box):
        low, high = np.minimum(space.low, 0), np.maximum(space.high, 0)
        shape = (n, *space.shape)
        return spaces.Box(np.broadcast_to(low, shape), np.broadcast_to(high, shape), shape,
                          space.dtype)  # fmt: skip
    if isinstance(space, (spaces.Discrete, spaces.MultiDiscrete)):
        start, top = _int_range(space)
        shape = (n, *np.shape(start))
        low, high = np.minimum(start, 0), np.maximum(top, 0)
        return spaces.Box(np.broadcast_to(low, shape), np.broadcast_to(high, shape), shape,
                          _leaf_dtype(space))  # fmt: skip
    if isinstance(space, spaces.MultiBinary):
        return spaces.Box(0, 1, (n, *space.shape), _leaf_dtype(space))
    return None


def _int_range(space: spaces.Discrete | spaces.MultiDiscrete) -> tuple[np.ndarray, np.ndarray]:
    """The smallest and largest value of a (Multi)Discrete space (per dimension)."""
    start = np.asarray(space.start, np.int64)
    size = space.n if isinstance(space, spaces.Discrete) else space.nvec
    return start, start + np.asarray(size) - 1


def _leaf_dtype(space: spaces.Space) -> np.dtype:
    return np.dtype(space.dtype or np.int64)  # gymnasium's Discrete etc. carry a dtype


def _encode_tree(space: spaces.Dict, raw: Any, agent: Any, path: str = "") -> dict[str, Any]:
    """A Dict observation as a dict of arrays with its leaves' dtypes and shapes (checked)."""
    if not isinstance(raw, Mapping) or set(raw) != set(space.spaces):
        got = sorted(raw) if isinstance(raw, Mapping) else type(raw).__name__
        raise RuntimeError(
            f"agent {agent!r} returned observation{path} with keys {got}, but its observation "
            f"space has keys {sorted(space.spaces)}"
        )
    out: dict[str, Any] = {}
    for key, sub in space.spaces.items():
        where = f"{path}[{key!r}]"
        if isinstance(sub, spaces.Dict):
            out[key] = _encode_tree(sub, raw[key], agent, where)
            continue
        arr = np.asarray(raw[key], dtype=_leaf_dtype(sub))
        if arr.shape != sub.shape:
            raise RuntimeError(
                f"agent {agent!r} returned observation{where} of shape {arr.shape}, but its "
                f"observation space has shape {sub.shape}"
            )
        out[key] = arr
    return out


def blank_tree(space: spaces.Space, own: spaces.Space) -> Any:
    """Stacked arrays (``space``) filled with the value of ``own`` (one agent's space) nearest
    to zero: 0 where the space allows it, else its lower bound (``Discrete(n, start=1)``: 1)."""
    if isinstance(space, spaces.Dict):
        return {k: blank_tree(v, own[k]) for k, v in space.spaces.items()}
    if isinstance(own, spaces.Box):
        blank = np.clip(np.zeros(own.shape, own.dtype), own.low, own.high)
    elif isinstance(own, (spaces.Discrete, spaces.MultiDiscrete)):
        start, top = _int_range(own)
        blank = np.broadcast_to(np.clip(0, start, top), space.shape[1:])
    else:
        blank = np.zeros(space.shape[1:])
    return np.broadcast_to(blank.astype(space.dtype), space.shape).copy()


def put_tree(stacked: Any, k: int, value: Any) -> None:
    """``stacked[...][k] = value`` on every leaf."""
    if isinstance(stacked, dict):
        for key, sub in stacked.items():
            put_tree(sub, k, value[key])
    else:
        stacked[k] = value


def flat_width(space: spaces.Space) -> int:
    """Length of :func:`flatten_rows`' vector for one value of ``space`` (Box, MultiBinary,
    MultiDiscrete: their number of entries; Discrete: 1, its integer value; Dict: the sum)."""
    if isinstance(space, spaces.Dict):
        return sum(flat_width(sub) for sub in space.spaces.values())
    if isinstance(space, spaces.Discrete):
        return 1
    if isinstance(space, (spaces.Box, spaces.MultiBinary, spaces.MultiDiscrete)):
        return int(np.prod(space.shape))
    raise NotImplementedError(f"cannot flatten values of {space} into a vector")


def _leaves(tree: Any) -> list[np.ndarray]:
    """The array leaves of nested dicts (or Tianshou ``Batch``es), in key order."""
    if isinstance(tree, Mapping):
        return [leaf for value in tree.values() for leaf in _leaves(value)]
    if hasattr(tree, "get_keys"):  # a tianshou.data.Batch (not imported on this side)
        return [leaf for key in tree.get_keys() for leaf in _leaves(tree[key])]
    return [np.asarray(tree)]


def flatten_rows(tree: Any, count: int, agents: int = 1) -> np.ndarray:
    """``float32[count, agents * d]``: per row, each agent's value (every leaf of the tree, of
    shape ``[count, agents, ...]``, or ``[count, ...]`` when ``agents`` is 1) flattened and its
    leaves concatenated, then the agents concatenated in order (agent-major)."""
    parts = [np.asarray(leaf, np.float32).reshape(count, agents, -1) for leaf in _leaves(tree)]
    return np.concatenate(parts, axis=2).reshape(count, -1)


def _is_integral(arr: np.ndarray) -> bool:
    if np.issubdtype(arr.dtype, np.integer):
        return True
    return np.issubdtype(arr.dtype, np.floating) and float(arr.reshape(())).is_integer()


def _pad_bounds(boxes: list[spaces.Box], width: int) -> tuple[np.ndarray, np.ndarray]:
    low = np.zeros((len(boxes), width), np.float32)
    high = np.zeros((len(boxes), width), np.float32)
    for k, box in enumerate(boxes):
        low[k, : box.shape[0]] = box.low
        high[k, : box.shape[0]] = box.high
    return low, high


class PaddedLayout:
    """The agents' own spaces and the common per-agent layout they are padded to."""

    def __init__(self, env: Any, agents: list[Any], keep_dicts: bool) -> None:
        self.agents = agents
        self.obs_spaces = {a: env.observation_space(a) for a in agents}
        self.act_spaces = {a: env.action_space(a) for a in agents}
        inner = [_inner_space(self.obs_spaces[a]) for a in agents]
        self.inner_obs = [space for space, _ in inner]
        self.mask_at = [where for _, where in inner]  # where each agent's action mask is
        self._init_observations(keep_dicts)
        self._init_actions()

    def _init_observations(self, keep_dicts: bool) -> None:
        first = self.inner_obs[0]
        same = all(s == first for s in self.inner_obs)
        self.obs_raw = isinstance(first, spaces.Box) and same
        tree = keep_dicts and same and isinstance(first, spaces.Dict)
        stacked = stacked_space(first, len(self.agents)) if tree else None
        self.obs_tree = stacked is not None  # a Dict of leaves that stack into arrays
        if self.obs_tree:
            self.obs_space = first
            self.stacked_space = stacked
            return
        if self.obs_raw:
            keep = np.issubdtype(first.dtype, np.integer) or first.dtype == np.bool_
            dtype = first.dtype if keep else np.dtype(np.float32)
            low, high = first.low.astype(dtype), first.high.astype(dtype)
            self.obs_space = spaces.Box(low, high, first.shape, dtype)
            self.stacked_space = stacked_space(self.obs_space, len(self.agents))
            return
        flat = [spaces.flatten_space(s) for s in self.inner_obs]
        self.obs_dims = [box.shape[0] for box in flat]
        width = max(self.obs_dims)
        low, high = _pad_bounds(flat, width)
        self.obs_space = spaces.Box(low.min(0), high.max(0), (width,), np.float32)
        self.stacked_space = spaces.Box(np.minimum(low, 0), np.maximum(high, 0), low.shape,
                                        np.float32)  # fmt: skip

    def _init_actions(self) -> None:
        acts = [self.act_spaces[a] for a in self.agents]
        if all(isinstance(s, spaces.Discrete) for s in acts):
            self.discrete = True
            self.action_n = np.array([int(s.n) for s in acts])
            self.action_start = [int(s.start) for s in acts]
            self.act_space: spaces.Space = spaces.Discrete(int(self.action_n.max()))
            self.permissive = np.arange(int(self.action_n.max()))[None] < self.action_n[:, None]
        elif all(isinstance(s, spaces.Box) for s in acts):
            self.discrete = False
            self.act_raw = all(s == acts[0] for s in acts)
            if self.act_raw:
                self.act_space = acts[0]
                self.act_low = np.broadcast_to(acts[0].low, (len(acts), *acts[0].shape))
                self.act_high = np.broadcast_to(acts[0].high, self.act_low.shape)
            else:
                flat = [spaces.flatten_space(s) for s in acts]
                self.act_dims = [box.shape[0] for box in flat]
                self.act_low, self.act_high = _pad_bounds(flat, max(self.act_dims))
                self.act_space = spaces.Box(
                    self.act_low.min(0), self.act_high.max(0), (max(self.act_dims),), np.float32
                )
        else:
            found = {str(a): s for a, s in self.act_spaces.items()}
            raise NotImplementedError(
                f"EnhancedPettingZooEnv supports all-Discrete or all-Box action spaces, got {found}"
            )

    # --- per-agent encoding -------------------------------------------------------------

    def encode(self, k: int, raw: Any) -> Any:
        """Agent ``k``'s observation in the padded layout (a dict of arrays if ``obs_tree``)."""
        if self.mask_at[k] == "observation":
            raw = raw["observation"]
        elif self.mask_at[k] == "rest" and isinstance(raw, Mapping):
            raw = {key: value for key, value in raw.items() if key != "action_mask"}
        if self.obs_tree:
            return _encode_tree(self.obs_space, raw, self.agents[k])
        if self.obs_raw:
            obs = np.array(raw, dtype=self.obs_space.dtype)
            if obs.shape != self.obs_space.shape:
                raise RuntimeError(
                    f"agent {self.agents[k]!r} returned an observation of shape {obs.shape}, "
                    f"but its observation space has shape {self.obs_space.shape}"
                )
            return obs
        flat = spaces.flatten(self.inner_obs[k], raw)
        if np.shape(flat) != (self.obs_dims[k],):
            raise RuntimeError(
                f"agent {self.agents[k]!r} returned an observation that flattens to "
                f"{np.shape(flat)}, but its observation space flattens to ({self.obs_dims[k]},)"
            )
        out = np.zeros(self.obs_space.shape, np.float32)
        out[: self.obs_dims[k]] = flat
        return out

    def mask(self, k: int, raw: Any) -> np.ndarray:
        """Agent ``k``'s legal actions, bool[A]; a bool[1] True placeholder for Box actions."""
        if not self.discrete:
            return np.ones(1, bool)
        if self.mask_at[k] is None:
            return self.permissive[k].copy()
        legal = np.asarray(raw["action_mask"]).astype(bool)
        if legal.shape != (self.action_n[k],):
            raise RuntimeError(
                f"agent {self.agents[k]!r} returned an action mask of shape {legal.shape} for "
                f"its action space Discrete({self.action_n[k]})"
            )
        out = np.zeros(self.permissive.shape[1], bool)
        out[: legal.shape[0]] = legal
        return out

    def decode(self, k: int, action: Any) -> Any:
        """Agent ``k``'s action in the padded layout, as its env expects it."""
        agent = self.agents[k]
        arr = np.asarray(action)
        if self.discrete:
            if arr.shape not in ((), (1,)) or not _is_integral(arr):
                raise ValueError(
                    f"agent {agent!r} needs one integer action, got {action!r} (shape {arr.shape})"
                )
            value = int(arr.reshape(()))
            if not 0 <= value < self.action_n[k]:
                raise ValueError(
                    f"action {value} for agent {agent!r} is outside its action space "
                    f"Discrete({self.action_n[k]})"
                )
            return self.action_start[k] + value
        space = self.act_spaces[agent]
        if arr.shape == self.act_space.shape and not self.act_raw:
            arr = arr[: self.act_dims[k]]
        if arr.shape != space.shape and arr.shape != (int(np.prod(space.shape)),):
            raise ValueError(
                f"agent {agent!r} needs an action of shape {space.shape} "
                f"(or {self.act_space.shape} padded), got shape {arr.shape}"
            )
        return arr.reshape(space.shape).astype(space.dtype)

    def check_spaces(self, env: Any, agent: Any) -> None:
        """Raises RuntimeError if ``agent``'s spaces differ from the ones seen at construction."""
        for kind, now, before in (
            ("observation", env.observation_space(agent), self.obs_spaces[agent]),
            ("action", env.action_space(agent), self.act_spaces[agent]),
        ):
            if now is not before and now != before:
                raise RuntimeError(
                    f"agent {agent!r} changed its {kind} space during the episode: "
                    f"{before} -> {now}"
                )
