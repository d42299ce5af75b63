"""Training across devices with JAX's own SPMD: one ``"data"`` mesh axis over the env batch.

    mesh = make_mesh(8, num_envs=cfg.num_envs)        # first 8 devices (0: all of them)
    state = shard(trainer.init(key), mesh)            # env batch split, the rest replicated
    run = jit_run(trainer.run, mesh, state)           # the update loop, one compiled function

The training state is an ``agents.loop.TrainState(runners, update)`` with the runners batched
over seeds on axis 0. The leaves of a runner's per-environment fields (those its class names in
``per_env_fields``, the runner contract of ``agents.loop``: for MAPPO environment state,
observations, recurrent carry, reset flags) have the env axis at axis 1 and are split along it
over ``"data"``: each device steps ``num_envs / num_devices`` environments of every seed. All
else (network parameters, optimiser state, PRNG keys, the update index, any other field such
as a replay buffer) is replicated. Because environments are generated on device from keys,
nothing is fed from the host: under multi-host JAX the same code gives each process its own
shard of the env batch. XLA inserts the collectives (gradient and metric reductions, the
minibatch gather across shards); results equal single-device training up to float reduction
order. ``jax.sharding`` handles typed PRNG key arrays directly.
"""

from __future__ import annotations

import functools
from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from agents.loop import TrainState
from dcgenv import checks

AXIS = "data"
ENV_AXIS = 1  # axis 0 is the seed axis


def make_mesh(num_devices: int = 0, num_envs: int | None = None) -> Mesh:
    """A 1-D mesh named ``"data"`` over the first ``num_devices`` devices (0: all, global
    devices under multi-host JAX). ``ValueError`` if more are asked for than exist, or if
    ``num_envs`` (when given) does not split evenly over them."""
    devices = jax.devices()
    count = checks.integer("make_mesh", "num_devices (0: all)", num_devices, low=0) or len(
        devices)
    if count > len(devices):
        raise ValueError(f"num_devices={count} requested but only {len(devices)} "
                         f"{devices[0].platform} device(s) are available (num_devices=0 uses "
                         "all of them)")
    if num_envs is not None and num_envs % count:
        raise ValueError(f"num_envs={num_envs} is not divisible by the device count {count}: "
                         "each device must hold the same number of environments")
    return Mesh(np.asarray(devices[:count]), (AXIS,))


def mesh_for(num_devices: int, num_envs: int | None = None) -> Mesh | None:
    """``None`` for ``num_devices == 1`` (plain single-device jit, today's behaviour), else
    :func:`make_mesh`."""
    return None if num_devices == 1 else make_mesh(num_devices, num_envs)


def state_shardings(state: TrainState, mesh: Mesh, env_axis: int = ENV_AXIS) -> TrainState:
    """The ``NamedSharding`` pytree for ``state`` (arrays or ``jax.ShapeDtypeStruct``s): the
    leaves of the runners' ``per_env_fields`` split along ``env_axis`` over ``"data"``, every
    other leaf replicated. A runner with no per-env fields (a learner whose environments live
    only inside its update) is replicated whole: correct, but nothing is split."""
    replicated = NamedSharding(mesh, PartitionSpec())
    split = NamedSharding(mesh, PartitionSpec(*(None,) * env_axis, AXIS))
    size = mesh.shape[AXIS]
    runners = state.runners
    per_env = getattr(type(runners), "per_env_fields", ())

    def env_leaf(name, path, leaf):
        shape = np.shape(leaf)
        if len(shape) <= env_axis or shape[env_axis] % size:
            raise ValueError(f"per-env leaf {name}{jax.tree_util.keystr(path)} of shape {shape} "
                             f"has no env axis {env_axis} divisible by {size} devices")
        return split

    return TrainState(type(runners)(**{
        name: (jax.tree_util.tree_map_with_path(functools.partial(env_leaf, name), value)
               if name in per_env else jax.tree.map(lambda _: replicated, value))
        for name, value in runners._asdict().items()}), replicated)


def shard(state, mesh: Mesh | None):
    """``state`` placed with :func:`state_shardings` (unchanged when ``mesh`` is None)."""
    return state if mesh is None else jax.device_put(state, state_shardings(state, mesh))


def jit_init(init, mesh: Mesh | None):
    """``jax.jit(init)`` whose output state is born sharded (each device computes its own
    environments; needed under multi-host, where no process holds the whole batch)."""
    if mesh is None:
        return jax.jit(init)

    def call(key):
        like = jax.eval_shape(init, key)
        return jax.jit(init, out_shardings=state_shardings(like, mesh))(key)
    return call


def jit_run(run, mesh: Mesh | None, like: Any):
    """``jax.jit(run, static_argnums=1)`` for ``run(state, length, end)``; with a mesh, the
    state keeps :func:`state_shardings` in and out and the metrics come back replicated, so the
    whole update loop stays one compiled SPMD function."""
    if mesh is None:
        return jax.jit(run, static_argnums=1)
    shardings, replicated = state_shardings(like, mesh), NamedSharding(mesh, PartitionSpec())
    return jax.jit(run, static_argnums=1, in_shardings=(shardings, replicated),
                   out_shardings=(shardings, replicated))
