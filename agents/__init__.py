"""Reference learners (flax.linen networks, PureJaxRL-style ``make_train``): MAPPO, CommNet, IQL.

Run from the repository root, not installed: see the README's "Layout" section for why.

- ``agents.config``: ``Config``, the learners' flat, validated configuration.
- ``agents.networks``: observation encoders (MLP, GRU), the CommNet actor (messages through any
  ``dcgenv.comms`` channel; mean, IC3Net gate or TarMAC attention), the (centralised) critic.
- ``agents.mappo``: ``make_trainer`` for MAPPO / IPPO (CommNet inside the actor).
- ``agents.iql``: ``make_trainer`` for IQL (recurrent Q-networks, PS or NPS, messages).
- ``agents.loop``: the outer loop (seeds side by side, chunks of updates) both share.

:func:`make_trainer` picks the learner from ``config.algorithm``; :func:`make_train` composes
its pieces into one ``train(key)`` that ``jax.jit`` compiles whole.
"""

from __future__ import annotations


def make_trainer(config, progress=None):
    """The trainer for ``config.algorithm`` (``iql`` -> ``agents.iql``, else ``agents.mappo``);
    both have ``config``, ``env``, ``env_params``, ``init``, ``run`` and ``evaluate``."""
    from agents import iql, mappo

    module = iql if config.algorithm == "iql" else mappo
    return module.make_trainer(config, progress)


def make_train(config, progress=None):
    """``train(key) -> (final state, per-update metrics)``: ``config.num_updates`` updates of
    ``config.num_seeds`` vmapped seeds in one function that ``jax.jit`` compiles whole."""
    trainer = make_trainer(config, progress)
    return lambda key: trainer.run(trainer.init(key), trainer.config.num_updates)
