"""Reference learners (flax.linen networks, PureJaxRL-style ``make_train``): MAPPO, CommNet, IQL.

Run from the repository root, not installed: see the README's "Layout" section for why.

- ``agents.config``: ``Config``, the learners' flat, validated configuration.
- ``agents.networks``: observation encoders (MLP, GRU), the CommNet actor (messages through any
  ``dcgenv.comms`` channel; mean, IC3Net gate or TarMAC attention), the (centralised) critic.
- ``agents.mappo``: ``make_train(config) -> train(key)`` (MAPPO / IPPO, CommNet inside the
  actor), and ``make_trainer`` for the pieces the ``baselines`` commands drive.
"""
