"""Reference learners (flax.linen networks, PureJaxRL-style ``make_train``): MAPPO, CommNet, IQL.

Run from the repository root, not installed: see the README's "Layout" section for why.

- ``agents.config``: ``Config.from_dict`` -> a validated ``PPOConfig`` or ``IQLConfig``.
- ``agents.networks``: observation encoders (MLP, GRU), the CommNet actor (messages through any
  ``dcgenv.comms`` channel; mean, IC3Net gate or TarMAC attention), the (centralised) critic.
- ``agents.mappo``: ``make_trainer`` for MAPPO / IPPO (CommNet inside the actor).
- ``agents.iql``: ``make_trainer`` for IQL (recurrent Q-networks, PS or NPS, messages).
- ``agents.loop``: what both share: ``TrainState``, ``Trainer``, the outer loop (seeds side by
  side, chunks of updates) and the one reader of an env's ``info``.
- ``agents.sharding``: the env batch split over devices.

:func:`make_trainer` picks the learner from the config's class; :func:`make_train` composes
its pieces into one ``train(key)`` that ``jax.jit`` compiles whole.
"""

from __future__ import annotations


def make_trainer(config, progress=None):
    """The :class:`agents.loop.Trainer` for ``config`` (an ``IQLConfig`` -> ``agents.iql``, a
    ``PPOConfig`` -> ``agents.mappo``)."""
    from agents import iql, mappo
    from agents.config import IQLConfig

    module = iql if isinstance(config, IQLConfig) else mappo
    return module.make_trainer(config, progress)


def make_train(config, progress=None):
    """``train(key) -> (final TrainState, per-update metrics)``: ``config.num_updates`` updates
    of ``config.num_seeds`` vmapped seeds in one function that ``jax.jit`` compiles whole."""
    trainer = make_trainer(config, progress)
    return lambda key: trainer.run(trainer.init(key), trainer.config.num_updates)
