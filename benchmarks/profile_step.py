"""Where the time of one jitted PPO training step goes: XLA cost analysis plus a trace.

Compiles ``jax.jit(trainer.step)`` (one rollout of ``--rollout-length`` steps in
``--num-envs`` envs, GAE, the epochs of minibatch updates) for IPPO on ``simple_spread`` at
``--agents`` agents, prints XLA's static costs (flops, transcendentals, bytes accessed, HLO
instructions by opcode) of the step and of the whole loop with one update, times the step,
then records ``--trace-steps`` steps with ``jax.profiler.trace`` and ranks the compiled
program's HLO ops by their exclusive time in the trace (an op's time minus that of the ops
nested inside it, e.g. a ``while`` loop's body), each with the JAX operation and source line
that made it; the same times are also summed per source line.

    JAX_PLATFORMS=cpu .venv/bin/python benchmarks/profile_step.py > profile_step.json

With ``--jaxmarl-src`` (run by JaxMARL's interpreter, see benchmarks/README.md) it profiles
JaxMARL's ``baselines/IPPO/ippo_ff_mpe.py`` instead: its whole loop with one update (its
update step is not a function of its own), with the same sizes and jmarl's default
hyper-parameters.
"""

from __future__ import annotations

import argparse
import collections
import re
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's jmarl first

import jax
from _common import compile_jit, emit, log, machine_info, time_compiled

_METADATA = re.compile(r"^\s*(?:ROOT )?%?([\w.\-]+) = .*?metadata=\{([^}]*)\}", re.M)
_FIELD = re.compile(r'(\w+)="?([^" ]*)"?')
_OPCODE = re.compile(r"=\s*\S+\s+([\w-]+)\(")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=3)
    parser.add_argument("--num-envs", type=int, default=64)
    parser.add_argument("--rollout-length", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=10, help="timed steps")
    parser.add_argument("--trace-steps", type=int, default=5)
    parser.add_argument("--top", type=int, default=25)
    parser.add_argument("--jaxmarl-src", help="profile JaxMARL's IPPO from this checkout")
    return parser.parse_args()


def static_cost(compiled: Any) -> dict[str, Any]:
    """XLA's cost and memory analysis and HLO opcode counts of a compiled program."""
    analysis = compiled.cost_analysis()
    analysis = analysis[0] if isinstance(analysis, list) else analysis
    opcodes = collections.Counter(_OPCODE.findall(compiled.as_text()))
    return {
        "flops": int(analysis.get("flops", -1)),
        "transcendentals": int(analysis.get("transcendentals", -1)),
        "bytes_accessed": int(analysis.get("bytes accessed", -1)),
        "hlo_instructions": sum(opcodes.values()),
        "hlo_opcodes_top": dict(opcodes.most_common(15)),
        "temp_bytes": compiled.memory_analysis().temp_size_in_bytes,
    }


def _table(hlo_text: str, title: str) -> dict[str, str]:
    """One of the id tables (``FileNames``, ``FileLocations``, ...) at the top of HLO text."""
    block = re.search(rf"^{title}\n((?:\d+ .*\n)+)", hlo_text, re.M)
    rows = block.group(1).splitlines() if block else []
    return dict(row.split(" ", 1) for row in rows)


def _frame_sources(hlo_text: str) -> dict[str, str]:
    """Stack-frame id -> ``file:line function`` of its innermost frame outside installed
    libraries (jmarl's or the baseline's own code; the innermost frame if there is none)."""
    files = {k: v.strip('"') for k, v in _table(hlo_text, "FileNames").items()}
    funcs = {k: v.strip('"') for k, v in _table(hlo_text, "FunctionNames").items()}
    locations = {}
    for k, v in _table(hlo_text, "FileLocations").items():
        f = dict(_FIELD.findall(v))
        path = files.get(f.get("file_name_id", ""), "?")
        func = funcs.get(f.get("function_name_id", ""), "?")
        locations[k] = (path, f"{path.split('/')[-1]}:{f.get('line', '?')} {func}")
    frames = {k: dict(_FIELD.findall(v)) for k, v in _table(hlo_text, "StackFrames").items()}
    out = {}
    for frame_id in frames:
        chain, current = [], frame_id
        while current in frames and len(chain) < 64:
            chain.append(locations.get(frames[current].get("file_location_id", ""), ("?", "?")))
            parent = frames[current].get("parent_frame_id", current)
            current = None if parent == current else parent
        own = [where for path, where in chain if "site-packages" not in path]
        out[frame_id] = (own or [where for _, where in chain] or ["?"])[0]
    return out


def op_sources(hlo_text: str) -> dict[str, dict[str, str]]:
    """HLO instruction name -> its JAX ``op_name`` and the ``source`` line that made it."""
    frames = _frame_sources(hlo_text)
    out = {}
    for name, meta in _METADATA.findall(hlo_text):
        fields = dict(_FIELD.findall(meta))
        source = frames.get(fields.get("stack_frame_id", ""), "?")
        out[name] = {"op_name": fields.get("op_name", "?"), "source": source}
    return out


def exclusive_times(trace_dir: str) -> tuple[collections.Counter, collections.Counter]:
    """Exclusive nanoseconds and counts per HLO op over all XLA threads of a trace."""
    files = sorted(Path(trace_dir).rglob("*.xplane.pb"))
    data = jax.profiler.ProfileData.from_file(str(files[-1]))
    times: collections.Counter = collections.Counter()
    counts: collections.Counter = collections.Counter()
    for plane in data.planes:
        for line in plane.lines:
            events = []
            for e in line.events:
                op = dict(e.stats).get("hlo_op")
                if op is not None:
                    events.append((e.start_ns, e.start_ns + e.duration_ns, str(op)))
            events.sort(key=lambda ev: (ev[0], -ev[1]))
            stack: list[tuple[float, float, str]] = []
            for start, end, op in events:
                while stack and stack[-1][1] <= start:
                    stack.pop()
                if stack:  # nested: its time is not its parent's own
                    times[stack[-1][2]] -= end - start
                times[op] += end - start
                counts[op] += 1
                stack.append((start, end, op))
    return times, counts


def trace_ranking(
    run: Callable[[], Any], steps: int, hlo_text: str, top: int
) -> dict[str, list[dict[str, Any]]]:
    """Runs ``run()`` ``steps`` times under the profiler; top ops and source lines per step."""
    with tempfile.TemporaryDirectory() as trace_dir:
        with jax.profiler.trace(trace_dir):
            for _ in range(steps):
                jax.block_until_ready(run())
        times, counts = exclusive_times(trace_dir)
    sources = op_sources(hlo_text)
    total = sum(times.values()) or 1
    ops, lines = [], collections.Counter()
    for op, ns in times.most_common():
        src = sources.get(op, {"op_name": "?", "source": "?"})
        lines[src["source"]] += ns
        if len(ops) < top:
            share = ns / total
            ops.append(
                {
                    "hlo_op": op,
                    "ms_per_step": ns / 1e6 / steps,
                    "share": share,
                    "calls_per_step": counts[op] / steps,
                    **src,
                }
            )
    by_line = [
        {"source": s, "ms_per_step": ns / 1e6 / steps, "share": ns / total}
        for s, ns in lines.most_common(top)
    ]
    return {"total_ms_per_step": total / 1e6 / steps, "top_ops": ops, "top_source_lines": by_line}


def ppo_config(args: argparse.Namespace) -> Any:
    """jmarl's default IPPO config with the run's env count and rollout length."""
    import jmarl

    base = jmarl.PPOConfig(num_envs=args.num_envs, rollout_length=args.rollout_length)
    return jmarl.ppo_config_for("ippo", base)


def profile_jmarl(args: argparse.Namespace) -> dict[str, Any]:
    """Static costs, step time and trace ranking of jmarl's ``trainer.step``."""
    import jmarl

    cfg = ppo_config(args)
    env = jmarl.make("simple_spread", num_agents=args.agents)
    trainer = jmarl.make_ppo(env, cfg, cfg.steps_per_update)  # one update
    key = jax.random.key(0)
    state = jax.jit(trainer.init)(key)
    log("[profile_step] jmarl: compiling the step and the one-update loop")
    step, compile_s = compile_jit(trainer.step, state)
    loop, _ = compile_jit(trainer.train, key)
    timing = time_compiled(step, (state,), args.repeats)
    log(f"[profile_step] jmarl: {timing.median_s * 1e3:.1f} ms per step; tracing")
    return {
        "program": "jax.jit(jmarl.make_ppo(...).step)",
        "jmarl_path": str(Path(jmarl.__file__).parent),
        "compile_s": compile_s,
        "step_s": timing.as_dict(),
        "step_cost": static_cost(step),
        "loop_1_update_cost": static_cost(loop),
        "trace": trace_ranking(lambda: step(state), args.trace_steps, step.as_text(), args.top),
    }


def profile_jaxmarl(args: argparse.Namespace) -> dict[str, Any]:
    """Static costs, time and trace ranking of JaxMARL's IPPO loop with one update."""
    from _jaxmarl_ippo import import_baseline
    from train_throughput import jaxmarl_config

    cfg = ppo_config(args)
    baseline = import_baseline(str(Path(args.jaxmarl_src).resolve()))
    config = jaxmarl_config(cfg, cfg.steps_per_update)  # one update
    key = jax.random.PRNGKey(0)
    log("[profile_step] JaxMARL: compiling the one-update loop")
    loop, compile_s = compile_jit(baseline.make_train(config), key)
    timing = time_compiled(loop, (key,), args.repeats)
    log(f"[profile_step] JaxMARL: {timing.median_s * 1e3:.1f} ms per loop; tracing")
    return {
        "program": "jax.jit(ippo_ff_mpe.make_train(config)) with NUM_UPDATES=1 (init + 1 update)",
        "compile_s": compile_s,
        "loop_1_update_s": timing.as_dict(),
        "loop_1_update_cost": static_cost(loop),
        "trace": trace_ranking(lambda: loop(key), args.trace_steps, loop.as_text(), args.top),
    }


def main() -> None:
    args = parse_args()
    info = machine_info()
    side = "jaxmarl" if args.jaxmarl_src else "jmarl"
    result = profile_jaxmarl(args) if args.jaxmarl_src else profile_jmarl(args)
    emit(
        {
            "benchmark": "profile_step",
            **info,
            "profiled": side,
            "settings": {k: v for k, v in vars(args).items() if k != "jaxmarl_src"},
            "algo": "ippo, shared parameters, simple_spread",
            "shares": "of the summed exclusive op time in the trace",
            **result,
        }
    )


if __name__ == "__main__":
    main()
