"""Shared type aliases used across jmarl."""

from __future__ import annotations

from typing import Any

import jax

PRNGKey = jax.Array
Array = jax.Array
PyTree = Any
Params = Any
