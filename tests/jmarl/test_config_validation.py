"""Strict, annotation-derived checks of every config (issue 12, item 2): config files and flags
go through the same checks; bad values and ignored settings end in exit 2, one line, nothing
written. None of these tests compiles a training program."""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from jmarl import cli
from jmarl.algos import ALGORITHMS, PPOConfig
from jmarl.cli import main
from jmarl.config_check import INT32_MAX, ConfigError, check_value
from jmarl.run.config import RunConfig, from_dict, to_dict
from jmarl.run.driver import build_env, chunk_length

PZ = "pettingzoo:mpe2.simple_spread_v3"


def _exit_code(argv: list[str]) -> int:
    try:
        return main(argv)
    except SystemExit as e:  # argparse's own errors
        return int(e.code or 0)


@pytest.fixture
def no_training(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad input that slipped through would train for minutes: fail at once instead."""

    def driver(env: str, what: str) -> Any:
        pytest.fail(f"the config was accepted and {what} started")

    monkeypatch.setattr(cli, "_driver", driver)


def _refused(argv: list[str], out: Path, capsys: pytest.CaptureFixture[str]) -> str:
    """Runs ``jmarl`` expecting exit 2 with one stderr line and nothing written to ``out``."""
    capsys.readouterr()
    assert _exit_code([*argv, "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert not out.exists(), "a refused run wrote its folder"
    return err[0]


# (config file contents, words the one-line error must hold: field, expected type, value);
# the inputs of issue 12's list are in test_bad_input_catalogue.py
BAD_FILES: list[tuple[dict[str, Any], list[str]]] = [
    ({"hidden_sizes": [64, "a"]}, ["hidden_sizes", "tuple[int, ...]"]),
    ({"ppo": {"num_envs": True}}, ["num_envs", "int", "True"]),
    ({"ppo": {"lr": "0.1"}}, ["lr", "float", "'0.1'"]),
    ({"ppo": {"clip_value": 1}}, ["clip_value", "bool", "1"]),
    ({"ppo": {"activation": 3}}, ["activation", "str", "3"]),
    ({"seed": 1.5}, ["seed", "int", "1.5"]),
    ({"sharing": ["shared"]}, ["sharing", "str"]),
    ({"log_every": "5"}, ["log_every", "int", "'5'"]),
    ({"algo": ["mappo"]}, ["algo", "str"]),
    ({"env_kwargs": [1, 2]}, ["env_kwargs", "dict"]),
    ({"agent_groups": {"g": "agent_0"}, "sharing": "grouped"}, ["agent_groups", "list[str]"]),
    ({"policy_mapping": {"agent_0": 0}, "sharing": "custom"}, ["policy_mapping", "dict[str, str]"]),
    ({"ppo": {"clip_eps": -0.1}}, ["clip_eps", ">= 0", "-0.1"]),
    ({"ppo": {"ent_coef": -1}}, ["ent_coef", ">= 0"]),
    ({"ppo": {"vf_coef": -0.5}}, ["vf_coef", ">= 0"]),
    ({"ppo": {"max_grad_norm": 0}}, ["max_grad_norm", "> 0"]),
    ({"ppo": {"gamma": 1.5}}, ["gamma", "<= 1.0"]),
    ({"ppo": {"hidden_sizes": []}}, ["hidden_sizes", "at least one"]),
    ({"ppo": {"hidden_sizes": [64, 0]}}, ["hidden_sizes", ">= 1"]),
    ({"ppo": {"num_envs": 2**40}}, ["num_envs", "int32"]),
    # settings that would be ignored
    ({"env_kwargs": {"local_ratio": "x"}}, ["local_ratio", "float", "'x'"]),
    ({"env_kwargs": {"num_agents": 4}}, ["env_kwargs['num_agents']", "--agents"]),
    ({"policy_mapping": {"agent_0": "p"}}, ["policy_mapping", "custom"]),
    ({"env": PZ, "agents": 5}, ["--agents", "PettingZoo", "env_kwargs"]),
    ({"env": PZ, "episode_length": 10}, ["--episode-length", "max_cycles"]),
    ({"env": PZ, "continuous_actions": True}, ["--continuous-actions", "env_kwargs"]),
]


@pytest.mark.usefixtures("no_training")
@pytest.mark.parametrize(("data", "words"), BAD_FILES, ids=lambda x: json.dumps(x)[:60])
def test_bad_config_files_exit_2_naming_field_type_and_value(
    data: dict[str, Any], words: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    conf = tmp_path / "conf.json"
    conf.write_text(json.dumps(data))
    err = _refused(["train", "--config", str(conf), "--quiet"], tmp_path / "run", capsys)
    for word in words:
        assert word in err, (word, err)


BAD_FLAGS: list[tuple[list[str], list[str]]] = [
    (["--lr=-1e-3"], ["lr", "> 0"]),
    (["--lr", "0"], ["lr", "> 0"]),
    (["--gae-lambda", "nan"], ["gae_lambda", "finite"]),
    (["--seed=-1"], ["--seed", ">= 0"]),
    (["--seeds", "0"], ["--seeds", ">= 1"]),
    (["--episode-length", "0"], ["--episode-length", ">= 1"]),
    (["--num-envs", str(2**40)], ["num_envs", "int32"]),
    (["--hidden-sizes", "0"], ["hidden_sizes", ">= 1"]),
    (["--gru-size", "8"], ["--gru-size", "ignored", "--recurrent"]),
]


@pytest.mark.usefixtures("no_training")
@pytest.mark.parametrize(("flags", "words"), BAD_FLAGS, ids=lambda x: " ".join(x)[:40])
def test_bad_flags_exit_2_through_the_same_checks(
    flags: list[str], words: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    err = _refused(["train", *flags, "--quiet"], tmp_path / "run", capsys)
    for word in words:
        assert word in err, (word, err)


# PettingZoo constructor arguments are checked by the bridge's driver, before any env is built
# or file written (tiny run settings bound the damage should a check break)
BAD_PZ_KWARGS = [
    ({"N": "3"}, ["['N']", "int", "'3'"]),
    ({"bogus_arg": 1}, ["'bogus_arg'", "max_cycles"]),
]


@pytest.mark.parametrize(("kwargs", "words"), BAD_PZ_KWARGS, ids=str)
def test_bad_pettingzoo_kwargs_exit_2_before_anything_is_built(
    kwargs: dict[str, Any], words: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    tiny = {"steps": 32, "ppo": {"num_envs": 2, "rollout_length": 16, "num_minibatches": 1}}
    conf = tmp_path / "conf.json"
    conf.write_text(json.dumps({"env": PZ, "env_kwargs": kwargs, **tiny}))
    err = _refused(["train", "--config", str(conf), "--quiet"], tmp_path / "run", capsys)
    for word in words:
        assert word in err, (word, err)


def test_chunk_length_of_a_huge_run_does_not_hang() -> None:
    t0 = time.perf_counter()
    assert chunk_length(INT32_MAX, 0) == 1  # 2**31-1 is prime: one update per chunk
    assert chunk_length(2**30, 0) == 2**24
    assert chunk_length(100, 0) == 2 and chunk_length(100, 7) == 5
    assert time.perf_counter() - t0 < 1.0


def test_flags_and_files_give_the_same_checked_config(tmp_path: Path) -> None:
    conf = tmp_path / "conf.json"
    conf.write_text(json.dumps({"ppo": {"lr": 1, "hidden_sizes": [8, 8]}, "seed": 7}))
    from_file = from_dict(json.loads(conf.read_text()))
    direct = RunConfig(seed=7, algo_config=ALGORITHMS["mappo"].configure(PPOConfig(gamma=0.9)))
    assert from_file.algo_config.lr == 1.0 and isinstance(from_file.algo_config.lr, float)
    assert from_file.algo_config.hidden_sizes == (8, 8)
    assert from_file.seed == direct.seed
    with pytest.raises(ConfigError, match=r"PPOConfig.hidden_sizes \(--hidden-sizes\)"):
        PPOConfig(hidden_sizes="64")  # type: ignore[arg-type]


def test_config_json_records_only_what_was_used() -> None:
    jax_env = to_dict(from_dict({"env": "memory"}))
    # unset env settings are the env factory's own defaults, recorded as used
    assert (jax_env["agents"], jax_env["episode_length"], jax_env["continuous_actions"]) == (
        2,
        3,
        False,
    )
    pz = to_dict(from_dict({"env": PZ, "env_kwargs": {"N": 2, "max_cycles": 10}}))
    assert pz["agents"] is None and pz["episode_length"] is None
    assert pz["continuous_actions"] is None and pz["env_kwargs"] == {"N": 2, "max_cycles": 10}
    # a saved config is a valid config
    assert to_dict(from_dict(pz)) == pz and to_dict(from_dict(jax_env)) == jax_env


def test_env_kwargs_of_a_jax_env_reach_its_factory() -> None:
    env = build_env(from_dict({"env": "memory", "env_kwargs": {"num_cues": 5}}))
    assert env.spec.action_space.n == 5
    with pytest.raises(ValueError, match="num_cues >= 2"):  # the factory's own value check
        build_env(from_dict({"env": "memory", "env_kwargs": {"num_cues": 1}}))


@pytest.mark.parametrize(
    ("tp", "value", "expected"),
    [
        (bool, True, True),
        (bool, np.bool_(False), False),
        (int, 3, 3),
        (float, 3, 3.0),
        (int, np.int64(4), 4),
        (float, np.float32(0.5), 0.5),
        (tuple[int, ...], [1, 2], (1, 2)),
        (int | None, None, None),
        (dict[str, list[str]], {"a": ["x"]}, {"a": ["x"]}),
    ],
)
def test_check_value_accepts_and_normalises(tp: Any, value: Any, expected: Any) -> None:
    out = check_value("x", tp, value)
    assert out == expected and type(out) is type(expected)


@pytest.mark.parametrize(
    ("tp", "value"),
    [(bool, 0), (bool, "true"), (int, True), (int, np.bool_(True)), (float, np.bool_(False)),
     (int, 2.0), (float, True), (float, math.nan),
     (float, math.inf), (tuple[int, ...], "12"), (tuple[int, ...], [1.5]), (str, None)],
)  # fmt: skip
def test_check_value_refuses(tp: Any, value: Any) -> None:
    with pytest.raises(ConfigError, match=r"^x: "):
        check_value("x", tp, value)
