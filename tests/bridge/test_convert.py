"""gymnasium <-> jmarl space conversion and pytree <-> numpy / JAX conversion."""

from __future__ import annotations

import gymnasium
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from bridge.pettingzoo.convert import (
    from_gymnasium_space,
    to_gymnasium_space,
    tree_to_jax,
    tree_to_numpy,
)
from jmarl.env import spaces

gs = gymnasium.spaces

JMARL_SPACES = {
    "box_scalar_bounds": spaces.Box(-1.0, 2.0, (3, 2)),
    "box_unbounded": spaces.Box(-np.inf, np.inf, (4,)),
    "box_per_element": spaces.Box((0.0, -1.0, -2.0), (1.0, 1.0, 5.0), (3,)),
    "box_uint8_image": spaces.Box(0.0, 255.0, (8, 8, 3), "uint8"),
    "box_scalar_shape": spaces.Box(0.0, 1.0, ()),
    "discrete": spaces.Discrete(5),
    "discrete_int8": spaces.Discrete(3, "int8"),
    "multi_discrete": spaces.MultiDiscrete((2, 3, 4)),
    "multi_binary_vector": spaces.MultiBinary((6,)),
    "multi_binary_grid": spaces.MultiBinary((2, 3)),
    "nested": spaces.Dict.from_mapping(
        {
            "pos": spaces.Box(-1.0, 1.0, (2,)),
            "inventory": spaces.Tuple((spaces.Discrete(4), spaces.MultiBinary((3,)))),
            "map": spaces.Dict.from_mapping(
                {"cells": spaces.MultiDiscrete((3, 3)), "seen": spaces.MultiBinary((2,))}
            ),
        }
    ),
    "tuple_of_dicts": spaces.Tuple(
        (spaces.Dict.from_mapping({"a": spaces.Discrete(2)}), spaces.Box(0.0, 1.0, (1,)))
    ),
}


@pytest.mark.parametrize("name", sorted(JMARL_SPACES))
def test_jmarl_to_gymnasium_and_back_is_exact(name: str) -> None:
    space = JMARL_SPACES[name]
    assert from_gymnasium_space(to_gymnasium_space(space)) == space


@pytest.mark.parametrize("name", sorted(JMARL_SPACES))
def test_samples_of_the_gymnasium_space_lie_in_the_jmarl_space(name: str) -> None:
    space = JMARL_SPACES[name]
    gym_space = to_gymnasium_space(space)
    gym_space.seed(0)
    for _ in range(5):
        x = gym_space.sample()
        assert spaces.contains(space, x)
    # ... and the other way round: jmarl samples, as numpy, are in the gymnasium space.
    x = tree_to_numpy(spaces.sample(jax.random.key(1), space), space)
    assert gym_space.contains(x)


GYM_SPACES = {
    "box": gs.Box(-1.0, 1.0, (2, 3), np.float32),
    "box_bounds": gs.Box(np.array([0.0, -1.0], np.float32), np.array([1.0, 3.0], np.float32)),
    "box_uint8": gs.Box(0, 255, (4, 4, 3), np.uint8),
    "box_int16": gs.Box(-3, 3, (2,), np.int16),
    "discrete": gs.Discrete(7, dtype=np.int32),
    "multi_discrete": gs.MultiDiscrete([3, 5], dtype=np.int32),
    "multi_binary": gs.MultiBinary(4),
    "multi_binary_2d": gs.MultiBinary([2, 2]),
    "dict": gs.Dict(
        {
            "z": gs.Discrete(2, dtype=np.int32),
            "a": gs.Tuple((gs.Box(0.0, 1.0, (1,), np.float32), gs.MultiBinary(2))),
        }
    ),
}


@pytest.mark.parametrize("name", sorted(GYM_SPACES))
def test_gymnasium_to_jmarl_and_back_is_exact_for_jax_dtypes(name: str) -> None:
    space = GYM_SPACES[name]
    assert to_gymnasium_space(from_gymnasium_space(space)) == space


def test_box_bounds_are_scalar_when_uniform_else_flat_tuples() -> None:
    uniform = from_gymnasium_space(gs.Box(-2.0, 2.0, (2, 2), np.float32))
    assert uniform == spaces.Box(-2.0, 2.0, (2, 2), "float32")
    low = np.array([[0.0, 1.0], [2.0, 3.0]], np.float32)
    varied = from_gymnasium_space(gs.Box(low, low + 1))
    assert varied.low == (0.0, 1.0, 2.0, 3.0) and varied.high == (1.0, 2.0, 3.0, 4.0)
    assert varied.shape == (2, 2)
    # Mixed finite / infinite bounds survive as a tuple.
    mixed = from_gymnasium_space(
        gs.Box(np.array([-np.inf, 0.0], np.float32), np.array([np.inf, 1.0], np.float32))
    )
    assert mixed.low == (-np.inf, 0.0) and mixed.high == (np.inf, 1.0)


def test_64_bit_dtypes_become_the_ones_jax_holds() -> None:
    # jax_enable_x64 is off: JAX arrays of these spaces are 32-bit, so the spaces say so.
    assert from_gymnasium_space(gs.Discrete(5)) == spaces.Discrete(5, "int32")
    assert from_gymnasium_space(gs.MultiDiscrete([2, 2])).dtype == "int32"
    assert from_gymnasium_space(gs.Box(0.0, 1.0, (2,), np.float64)).dtype == "float32"
    assert from_gymnasium_space(gs.Box(0, 9, (2,), np.uint8)).dtype == "uint8"
    assert from_gymnasium_space(gs.MultiBinary(3)).dtype == "int8"


def test_dict_keys_come_out_sorted() -> None:
    space = gs.Dict({"b": gs.Discrete(2), "a": gs.Discrete(3)})
    assert from_gymnasium_space(space).keys() == ("a", "b")


def test_text_raises_not_implemented_naming_the_path() -> None:
    with pytest.raises(NotImplementedError, match=r"at obs\['name'\], Text\("):
        from_gymnasium_space(gs.Dict({"name": gs.Text(5), "x": gs.Discrete(2)}), "obs")
    with pytest.raises(NotImplementedError, match=r"at <root>, Text\("):
        from_gymnasium_space(gs.Text(5))


def test_nested_graph_raises_not_implemented_naming_the_path() -> None:
    graph = gs.Graph(node_space=gs.Box(0.0, 1.0, (2,)), edge_space=gs.Discrete(3))
    space = gs.Dict({"image": gs.Tuple((gs.Discrete(2), graph)), "other": gs.Discrete(2)})
    with pytest.raises(NotImplementedError, match=r"at obs\['image'\]\[1\], Graph\("):
        from_gymnasium_space(space, "obs")


@pytest.mark.parametrize(
    "space",
    [
        gs.Sequence(gs.Discrete(2)),
        gs.OneOf((gs.Discrete(2), gs.Discrete(3))),
        gs.Discrete(4, start=1),
        gs.MultiDiscrete(np.array([[2, 3], [4, 5]])),
        gs.MultiDiscrete([2, 3], start=[1, 0]),
    ],
    ids=["sequence", "oneof", "discrete_start", "multi_discrete_2d", "multi_discrete_start"],
)
def test_other_spaces_and_options_raise_not_implemented(space: gymnasium.spaces.Space) -> None:
    with pytest.raises(NotImplementedError, match=r"at act\[0\]"):
        from_gymnasium_space(gs.Tuple((space,)), "act")


def test_to_gymnasium_rejects_what_it_cannot_express() -> None:
    with pytest.raises(NotImplementedError, match="int8"):
        to_gymnasium_space(spaces.MultiBinary((2,), "int32"))
    with pytest.raises(TypeError, match="not a jmarl space"):
        to_gymnasium_space(gs.Discrete(2))  # type: ignore[arg-type]


def test_tree_to_numpy_keeps_dtypes_without_a_space() -> None:
    tree = {"i": jnp.arange(3, dtype=jnp.int32), "f": jnp.ones(2), "b": (jnp.array(True), 7)}
    out = tree_to_numpy(tree)
    assert out["i"].dtype == np.int32 and out["f"].dtype == np.float32
    assert out["b"][0].dtype == np.bool_ and out["b"][1].dtype == np.int64
    assert all(isinstance(x, np.ndarray) for x in jax.tree.leaves(out))


def test_tree_to_numpy_casts_explicitly_to_the_space() -> None:
    space = spaces.Dict.from_mapping(
        {
            "act": spaces.Discrete(5),
            "cont": spaces.Box(0.0, 1.0, (2,)),
            "bits": spaces.MultiBinary((2,)),
        }
    )
    out = tree_to_numpy({"act": np.int64(3), "cont": [0.5, 1], "bits": [True, False]}, space)
    assert out["act"].dtype == np.int32 and out["act"] == 3
    assert out["cont"].dtype == np.float32 and out["bits"].dtype == np.int8
    # Batched leaves are fine: no shape check.
    batch = tree_to_numpy(np.arange(4), spaces.Discrete(5))
    assert batch.dtype == np.int32 and batch.shape == (4,)


def test_tree_conversions_refuse_lossy_casts() -> None:
    with pytest.raises(TypeError, match="float64 to int32"):
        tree_to_numpy(2.0, spaces.Discrete(5))
    with pytest.raises(TypeError, match=r"\['a'\]: will not cast float32 to int32"):
        tree_to_jax({"a": np.float32(1.0)}, spaces.Dict.from_mapping({"a": spaces.Discrete(2)}))
    with pytest.raises(OverflowError, match="do not fit"):
        tree_to_jax(np.int64(2**40))
    with pytest.raises(ValueError, match=r"missing keys \['b'\]"):
        tree_to_numpy(
            {"a": 0}, spaces.Dict.from_mapping({"a": spaces.Discrete(2), "b": spaces.Discrete(2)})
        )
    with pytest.raises(ValueError, match=r"\[1\]: expected a tuple of 2"):
        tree_to_numpy(
            (0, (1,)), spaces.Tuple((spaces.Discrete(2), spaces.Tuple((spaces.Discrete(2),) * 2)))
        )


def test_tree_to_jax_gives_strong_explicit_dtypes() -> None:
    out = tree_to_jax({"i": 3, "f": 0.5, "np64": np.arange(2), "u8": np.zeros(2, np.uint8)})
    assert out["i"].dtype == jnp.int32 and not out["i"].weak_type
    assert out["f"].dtype == jnp.float32 and not out["f"].weak_type
    assert out["np64"].dtype == jnp.int32 and out["u8"].dtype == jnp.uint8
    # Ints stay ints unless the space asks for floats.
    assert tree_to_jax(np.arange(2), spaces.Box(0.0, 5.0, (2,))).dtype == jnp.float32
    assert tree_to_jax(np.arange(2), spaces.MultiDiscrete((3, 3))).dtype == jnp.int32
