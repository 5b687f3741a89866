"""Neural-network building blocks: policy/value networks and action distributions.

Action distributions live in :mod:`jmarl.nn.distributions`; encoders of structured
observations (Dict / Tuple / image / discrete spaces) in :mod:`jmarl.nn.encoders`.
"""
