"""The ``jmarl`` command: ``train``, ``evaluate``, ``envs``.

Flags of ``jmarl train`` are generated from :class:`~jmarl.run.config.RunConfig` and from the
config class of the algorithm chosen with ``--algo`` (or in ``--config``), e.g. ``num_envs`` ->
``--num-envs``; there is no second list of defaults. Precedence: the algorithm's run defaults <
``--config FILE`` < flags (with ``--resume``: the run's own ``config.json`` < ``--config`` <
flags, and a setting that differs from the run's is refused).

Every error ends in one line on stderr and exit code 2 (bad input: flags, files, folders) or
1 (a failure while running). Ctrl-C or SIGTERM stops ``train`` at the end of the current
chunk, saving the checkpoint and plot, and exits 128 + the signal's number, as a shell reports
a process the signal ended: 130 for Ctrl-C, 143 for SIGTERM. ``--debug`` shows the traceback
instead of the one line.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import json
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NoReturn

from jmarl.algos import ALGORITHMS
from jmarl.algos.base import Algorithm
from jmarl.config_check import SEED_MAX, ConfigError
from jmarl.run.config import (
    DEFAULT_ALGO,
    FILE_ONLY_FIELDS,
    PETTINGZOO_PREFIX,
    RESUME_FREE_FIELDS,
    RunConfig,
    from_dict,
    load_config_file,
    to_dict,
)

STOP_HELP = (
    "Ctrl-C or SIGTERM stops at the end of the current chunk of updates, saves the checkpoint "
    "and returns.png, prints one line and exits 130 (Ctrl-C) or 143 (SIGTERM); "
    "--resume --out DIR continues the run (JAX-native envs). A second one stops at once."
)


class _Parser(argparse.ArgumentParser):
    """Errors are one line on stderr and exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message}\n")


def _doc_params(cls: type) -> dict[str, str]:
    """``:param name: text`` entries of a class docstring (help text of the flags)."""
    out: dict[str, str] = {}
    current = None
    for line in (cls.__doc__ or "").splitlines():
        s = line.strip()
        if s.startswith(":param "):
            name, _, text = s[len(":param ") :].partition(":")
            current = name.strip()
            out[current] = text.strip()
        elif current and s and not s.startswith(":"):
            out[current] += " " + s
        else:
            current = None
    return out


def _parse_int_tuple(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(x) for x in text.split(",") if x.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated ints, got {text!r}") from None


def _add_field(group: Any, f: dataclasses.Field, hints: dict[str, Any], doc: str) -> None:
    flag = "--" + f.name.replace("_", "-")
    tp = hints[f.name]
    args = typing.get_args(tp)
    if isinstance(tp, types.UnionType) or typing.get_origin(tp) is typing.Union:
        tp = next(a for a in args if a is not type(None))
        args = typing.get_args(tp)
    kwargs: dict[str, Any] = {"dest": f.name, "default": argparse.SUPPRESS, "help": doc}
    if tp is bool:
        group.add_argument(flag, action=argparse.BooleanOptionalAction, **kwargs)
    elif typing.get_origin(tp) is tuple and args[:1] == (str,):  # repeatable: --logger A --logger B
        group.add_argument(flag, action="append", metavar=f.name.upper(), **kwargs)
    elif typing.get_origin(tp) is tuple:
        group.add_argument(flag, type=_parse_int_tuple, metavar="N,N", **kwargs)
    else:
        group.add_argument(flag, type=tp, metavar=f.name.upper(), **kwargs)


def _add_dataclass_flags(
    parser: argparse.ArgumentParser, defaults: Any, skip: Sequence[str], title: str = ""
) -> None:
    """One flag per field of the dataclass instance ``defaults`` (help shows its value)."""
    cls = type(defaults)
    hints = typing.get_type_hints(cls)
    docs = _doc_params(cls)
    group = parser.add_argument_group(title or cls.__name__)
    for f in dataclasses.fields(cls):
        if f.name not in skip:
            value = getattr(defaults, f.name)
            shown = ",".join(map(str, value)) if isinstance(value, tuple) else value
            _add_field(group, f, hints, f"{docs.get(f.name, '')} (default: {shown})")


def _chosen_algorithm(argv: Sequence[str]) -> Algorithm:
    """The algorithm ``--algo`` (or ``--config``'s ``algo``) names, before full parsing."""
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--algo")
    pre.add_argument("--config")
    pre.add_argument("--out")
    pre.add_argument("--resume", action="store_true")
    ns, _ = pre.parse_known_args(argv)
    name = ns.algo
    files = [ns.config] if ns.config else []
    if ns.resume and ns.out:
        files.insert(0, str(Path(ns.out) / "config.json"))  # the resumed run's algorithm
    for file in files:
        if name is None:
            try:
                name = load_config_file(file).get("algo")
            except ValueError:
                name = None  # reported by the full parse
    known = isinstance(name, str) and name in ALGORITHMS
    return ALGORITHMS[name] if known else ALGORITHMS[DEFAULT_ALGO]


def build_parser(algorithm: Algorithm | None = None) -> argparse.ArgumentParser:
    """The argument parser of the ``jmarl`` command; ``train`` takes ``algorithm``'s flags."""
    algorithm = algorithm if algorithm is not None else ALGORITHMS[DEFAULT_ALGO]
    parser = _Parser(
        prog="jmarl",
        description="Functional JAX multi-agent RL.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", required=True, parser_class=_Parser)
    names = ", ".join(f"{a.name} ({a.summary})" for a in ALGORITHMS.values())
    train = sub.add_parser(
        "train",
        help="train agents (default: MAPPO, shared, simple_spread)",
        description=f"Algorithms: {names}. `jmarl train --algo NAME --help` lists NAME's flags.",
        epilog=STOP_HELP,
    )
    train.add_argument("--config", help="JSON or TOML file of settings (flags override it)")
    train.add_argument("--quiet", action="store_true", help="no progress bar")
    train.add_argument(
        "--resume",
        action="store_true",
        help="continue the run in --out from its last checkpoint, with its settings",
    )
    train.add_argument("--overwrite", action="store_true", help="replace the run that --out holds")
    debug: dict[str, Any] = {"action": "store_true", "help": "show the traceback of an error"}
    train.add_argument("--debug", **debug)
    defaults = RunConfig()
    _add_dataclass_flags(train, defaults, FILE_ONLY_FIELDS)
    fixed = tuple(name for name, _ in algorithm.fixed)
    _add_dataclass_flags(train, algorithm.defaults, fixed, f"{algorithm.name} settings")
    ev = sub.add_parser("evaluate", help="evaluate the checkpoint of a run folder")
    ev.add_argument("dir", help="a folder written by `jmarl train`")
    ev.add_argument("--episodes", type=int, default=100, help="episodes per seed")
    ev.add_argument("--seed", type=int, default=0, help="evaluation seed")
    ev.add_argument("--deterministic", action="store_true", help="greedy (mode) actions")
    ev.add_argument("--debug", **debug)
    envs = sub.add_parser("envs", help="list the built-in environments")
    envs.add_argument("--debug", **debug)
    return parser


def _settings(ns: argparse.Namespace, algorithm: Algorithm, base: dict[str, Any]) -> dict[str, Any]:
    """``base`` < ``--config`` file < flags, as one config dict."""
    data = dict(base)
    if ns.config:
        file = load_config_file(ns.config)
        saved_out = file.get("out")
        home = Path(ns.config).resolve().parent
        if not ns.resume and saved_out and Path(saved_out).resolve() == home:
            del file["out"]  # a run's own config.json: train into a new folder, not that run's
        section = data.pop(algorithm.section, None) or {}
        from_file = file.pop(algorithm.section, None) or {}
        both = isinstance(section, dict) and isinstance(from_file, dict)
        section = {**section, **from_file} if both else from_file  # else: from_dict names it
        data.update(file)
        data[algorithm.section] = section
    algo_names = {f.name for f in dataclasses.fields(algorithm.config)}
    run_names = {f.name for f in dataclasses.fields(RunConfig)}
    flags = {k: v for k, v in vars(ns).items() if k in algo_names | run_names}
    section = data.pop(algorithm.section, None) or {}
    algo_flags = {k: v for k, v in flags.items() if k in algo_names and k not in run_names}
    if isinstance(section, dict):  # anything else is refused by from_dict, naming it
        section = {**section, **algo_flags}
    data.update({k: v for k, v in flags.items() if k in run_names})
    data[algorithm.section] = section
    return data


def _run_config(ns: argparse.Namespace, algorithm: Algorithm) -> RunConfig:
    if not ns.resume:  # flags and file values pass the same checks (jmarl.config_check)
        return from_dict(_settings(ns, algorithm, {}))
    if ns.overwrite:
        raise ValueError("--resume and --overwrite exclude each other")
    out = getattr(ns, "out", None)
    if not out:
        raise ValueError("--resume needs --out DIR, the folder of the run to continue")
    saved_path = Path(out) / "config.json"
    if not saved_path.is_file():
        raise ValueError(f"--resume: {out} holds no run to continue (no config.json)")
    saved = load_config_file(saved_path)
    old, new = from_dict(saved), from_dict(_settings(ns, algorithm, saved))
    for name, was, now in _differences(to_dict(old), to_dict(new), old.algorithm.section):
        raise ValueError(
            f"--resume: {name} = {now!r} differs from the run's {was!r} in {saved_path}; "
            "a resumed run keeps its settings (start a new run with another --out)"
        )
    return new


def _differences(old: dict, new: dict, section: str) -> Iterator[tuple[str, Any, Any]]:
    """``(name, old value, new value)`` of each setting that differs, the algorithm's
    ``section`` field by field; :data:`RESUME_FREE_FIELDS` may differ."""
    for key, now in new.items():
        was = old.get(key)
        if key in RESUME_FREE_FIELDS:
            continue
        if key == section and isinstance(now, dict) and isinstance(was, dict):
            yield from ((k, was.get(k), v) for k, v in now.items() if was.get(k) != v)
        elif was != now:
            yield key, was, now


def _default_out(cfg: RunConfig) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path("runs") / f"{cfg.env}-{cfg.algo}-{cfg.sharing}-{stamp}"
    out, i = base, 1
    while out.exists():
        out, i = Path(f"{base}-{i}"), i + 1
    return out


def _cmd_train(ns: argparse.Namespace) -> int:
    from tqdm import tqdm

    from jmarl.run.folder import run_folder
    from jmarl.run.recorder import stop_on_signals

    cfg = _run_config(ns, ns.algorithm)
    if ns.resume and cfg.env.startswith(PETTINGZOO_PREFIX):
        raise ValueError(
            "--resume is not supported for PettingZoo envs (their state lives in Python "
            "objects on the host); start a new run"
        )
    train_run = _driver(cfg.env, "train")
    out = Path(cfg.out) if cfg.out else _default_out(cfg)
    resume = {"resume": True} if ns.resume else {}  # PettingZoo drivers take no resume
    bars: list[Any] = []

    def progress(steps: int, row: dict[str, Any]) -> None:
        if not bars:
            bars.append(
                tqdm(
                    total=cfg.steps,
                    unit="step",
                    disable=ns.quiet,
                    dynamic_ncols=True,
                    desc=f"{cfg.algo} {cfg.env}",
                    file=sys.stderr,
                )
            )
            bars[0].set_postfix_str("compiling")
        bar = bars[0]
        bar.update(steps - bar.n)
        if row.get("episode_return") is not None:
            bar.set_postfix(ret=f"{row['episode_return']:.2f}")

    try:
        with run_folder(out, ns.resume, ns.overwrite), stop_on_signals():
            summary = train_run(cfg, out, progress, **resume)
    finally:
        for bar in bars:
            bar.close()
    print(json.dumps(summary))
    return 0


def _driver(env: str, what: str) -> Any:
    """``train_run`` / ``evaluate_run`` for ``env`` (prefixed envs: their registered driver)."""
    from jmarl.run.drivers import driver_for

    return getattr(driver_for(env), f"{what}_run")


def _cmd_evaluate(ns: argparse.Namespace) -> int:
    if ns.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {ns.episodes}")
    if not 0 <= ns.seed <= SEED_MAX:
        raise ConfigError(f"--seed must be >= 0 and <= {SEED_MAX}, got {ns.seed}")
    if not Path(ns.dir).is_dir():
        raise ValueError(f"no such run folder: {ns.dir}")
    config = Path(ns.dir) / "config.json"
    env = str(load_config_file(config).get("env", "")) if config.is_file() else ""
    evaluate_run = _driver(env, "evaluate")
    print(json.dumps(evaluate_run(Path(ns.dir), ns.episodes, ns.seed, ns.deterministic)))
    return 0


def _cmd_envs(ns: argparse.Namespace) -> int:
    from jmarl.env.registry import describe, list_envs
    from jmarl.run.drivers import list_drivers

    for name in list_envs():
        print(f"{name}\t{describe(name)}")
    for prefix, description in list_drivers():
        print(f"{prefix}<module>\t{description}")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jmarl`` console script; returns the exit code."""
    argv = list(sys.argv[1:] if argv is None else argv)
    command = next((a for a in argv if a in _HANDLERS), "")
    try:
        algorithm = _chosen_algorithm(argv)
        parser = build_parser(algorithm)
        ns = parser.parse_args(argv)  # argparse exits 2 itself, with one line
        ns.algorithm = algorithm
        return _HANDLERS[ns.command](ns)
    except (Exception, KeyboardInterrupt) as e:
        if "--debug" in argv:
            raise
        code, message = _error(e)
        print(f"{' '.join(('jmarl', command)).strip()}: {message}", file=sys.stderr)
        return code


_HANDLERS = {"train": _cmd_train, "evaluate": _cmd_evaluate, "envs": _cmd_envs}


def _one_line(text: str, limit: int = 500) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 3] + "..."


def _error(e: BaseException) -> tuple[int, str]:
    """The exit code and one-line message of an exception that ends a command.

    Bad input (``ValueError`` and its kin: flags, config files, run folders, checkpoints that
    do not fit) is 2; failures while running (a non-finite loss, OS errors such as a full
    disk, XLA errors) are 1; a run stopped by Ctrl-C is 130, by SIGTERM 143.
    """
    from jmarl.run.recorder import RunInterrupted, TrainingError

    if isinstance(e, RunInterrupted):
        return e.exit_code, _one_line(str(e))
    if isinstance(e, KeyboardInterrupt):
        return 130, "interrupted"
    if isinstance(e, TrainingError):
        return 1, f"error: {_one_line(str(e))}"
    if isinstance(e, (ValueError, FileNotFoundError, NotADirectoryError, IsADirectoryError)):
        return 2, f"error: {_one_line(str(e))}"
    if isinstance(e, OSError):
        return 1, f"error: {_one_line(str(e))}"
    return 1, (
        f"error: {type(e).__name__}: {_one_line(str(e), 300)} "
        "(rerun with --debug for the traceback)"
    )


if __name__ == "__main__":
    sys.exit(main())
