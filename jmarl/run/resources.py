"""Resource guard: refuse programs that cannot fit in memory before they run.

A program that does not fit dies deep inside XLA with ``RESOURCE_EXHAUSTED`` after minutes
of compiling (``--agents 1000`` with the defaults asks for about 346 GB). The driver instead
checks, before anything is allocated or written:

1. the training state, from its shapes alone (``jax.eval_shape``: no compile), and
2. the compiled program, from XLA's own memory analysis (arguments, outputs and temporaries;
   the program is compiled once, as it would be anyway),

against the memory available to the device (``memory_stats`` of an accelerator; on CPU the
host's ``MemAvailable`` and the cgroup limit), and names the flags that shrink the program.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jmarl.config_check import ConfigError

# Leave this share of the available memory to everything else (XLA's own arenas, the host).
HEADROOM = 0.9
TRAIN_FLAGS = ("--num-envs", "--rollout-length", "--agents", "--seeds", "--num-minibatches")


class ResourceError(ConfigError):
    """The run cannot fit in the available memory (exit code 2: lower the named flags)."""


def _read_int(path: str) -> int | None:
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _meminfo_available() -> int | None:
    try:
        lines = Path("/proc/meminfo").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def _cgroup_available() -> int | None:
    for limit_path, usage_path in (
        ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),  # cgroup v2
        (
            "/sys/fs/cgroup/memory/memory.limit_in_bytes",  # cgroup v1
            "/sys/fs/cgroup/memory/memory.usage_in_bytes",
        ),
    ):
        limit, usage = _read_int(limit_path), _read_int(usage_path)
        if limit is not None and limit < 2**60:  # "max" / a huge number: no limit
            return max(0, limit - (usage or 0))
    return None


def available_memory(device: Any = None) -> int | None:
    """Bytes free for a program on ``device`` (default: the first device); None if unknown."""
    device = device if device is not None else jax.devices()[0]
    stats = device.memory_stats() if hasattr(device, "memory_stats") else None
    if stats and "bytes_limit" in stats:
        return int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
    known = [b for b in (_meminfo_available(), _cgroup_available()) if b is not None]
    return min(known) if known else None


def tree_bytes(tree: Any) -> int:
    """Bytes of the arrays (or ``ShapeDtypeStruct``s) of ``tree``."""
    total = 0
    for leaf in jax.tree.leaves(tree):
        dtype = leaf.dtype
        if jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
            itemsize = jax.random.key_data(jax.random.key(0)).nbytes
        else:
            itemsize = np.dtype(dtype).itemsize
        total += math.prod(leaf.shape) * itemsize
    return total


def program_bytes(compiled: Any) -> int | None:
    """Peak bytes of a compiled program by XLA's memory analysis (arguments + outputs +
    temporaries, less donated buffers reused as outputs); None where XLA gives none."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # some backends do not implement it
        return None
    if m is None:
        return None
    return int(
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        - m.alias_size_in_bytes
        + m.temp_size_in_bytes
        + m.generated_code_size_in_bytes
    )


def _gb(n: int) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e8 else f"{n / 1e6:.1f} MB"


def check_fits(
    needed: int | None,
    what: str,
    flags: Sequence[str] = TRAIN_FLAGS,
    available: int | None = None,
) -> None:
    """Raises :class:`ResourceError` if ``needed`` bytes exceed the available memory.

    :param what: the program, for the message (e.g. ``training``).
    :param flags: the settings that shrink it, named in the message.
    :param available: bytes available (default: :func:`available_memory`).
    """
    if needed is None:
        return
    free = available if available is not None else available_memory()
    if free is None or needed <= HEADROOM * free:
        return
    raise ResourceError(
        f"{what} needs about {_gb(needed)} of memory but {_gb(free)} is available: "
        f"lower {', '.join(flags)}"
    )
