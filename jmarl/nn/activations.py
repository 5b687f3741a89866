"""The activation functions networks and encoders may use, by the name configs give."""

from __future__ import annotations

import flax.linen as nn

ACTIVATIONS = {"tanh": nn.tanh, "relu": nn.relu, "gelu": nn.gelu, "silu": nn.silu}
