"""Neural-network building blocks: policy/value networks and action distributions.

Action distributions live in :mod:`jmarl.nn.distributions`.
"""
