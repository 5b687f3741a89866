"""Test-wide setup: CPU-only JAX, a persistent compilation cache, one thread per op.

These variables must be set before jax is first imported, which is why this file sets
them at import time and imports nothing from jax itself.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO_ROOT = Path(__file__).resolve().parent.parent

os.environ.setdefault("JAX_PLATFORMS", "cpu")
os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(_REPO_ROOT / ".jax_cache"))
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("OMP_NUM_THREADS", "1")
