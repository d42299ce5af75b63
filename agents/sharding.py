"""Training across devices with JAX's own SPMD: one ``"data"`` mesh axis over the env batch.

    mesh = make_mesh(8, num_envs=cfg.num_envs)        # first 8 devices (0: all of them)
    state = shard(trainer.init(key), mesh)            # env batch split, the rest replicated
    run = jit_run(trainer.run, mesh, state)           # the update loop, one compiled function

A training state is ``(runners, update index)`` with the runners batched over seeds on axis 0.
The leaves of a runner's per-environment fields (:data:`PER_ENV_FIELDS`: environment state,
observations, recurrent carry, reset flags) have the env axis at axis 1 and are split along it
over ``"data"``: each device steps ``num_envs / num_devices`` environments of every seed. All
else (network parameters, optimiser state, PRNG keys, the update index, any extra field such as
a replay buffer) is replicated. Because environments are generated on device from keys, nothing
is fed from the host: under multi-host JAX the same code gives each process its own shard of
the env batch. XLA inserts the collectives (gradient and metric reductions, the minibatch
gather across shards); results equal single-device training up to float reduction order.
Any ``NamedTuple`` runner works (fields are found by name); ``jax.sharding`` handles typed
PRNG key arrays directly.
"""

from __future__ import annotations

from typing import Any

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

AXIS = "data"
ENV_AXIS = 1  # axis 0 is the seed axis
PER_ENV_FIELDS = ("env_state", "obs", "carry", "reset")


def make_mesh(num_devices: int = 0, num_envs: int | None = None) -> Mesh:
    """A 1-D mesh named ``"data"`` over the first ``num_devices`` devices (0: all, global
    devices under multi-host JAX). ``ValueError`` if more are asked for than exist, or if
    ``num_envs`` (when given) does not split evenly over them."""
    devices = jax.devices()
    if not isinstance(num_devices, int) or isinstance(num_devices, bool) or num_devices < 0:
        raise ValueError(f"num_devices must be an integer >= 0 (0: all), got {num_devices!r}")
    n = num_devices or len(devices)
    if n > len(devices):
        raise ValueError(f"num_devices={n} requested but only {len(devices)} "
                         f"{devices[0].platform} device(s) are available (num_devices=0 uses "
                         "all of them)")
    if num_envs is not None and num_envs % n:
        raise ValueError(f"num_envs={num_envs} is not divisible by the device count {n}: each "
                         "device must hold the same number of environments")
    return Mesh(np.asarray(devices[:n]), (AXIS,))


def mesh_for(num_devices: int, num_envs: int | None = None) -> Mesh | None:
    """``None`` for ``num_devices == 1`` (plain single-device jit, today's behaviour), else
    :func:`make_mesh`."""
    return None if num_devices == 1 else make_mesh(num_devices, num_envs)


def state_shardings(state, mesh: Mesh, env_axis: int = ENV_AXIS):
    """The ``NamedSharding`` pytree for ``state`` (arrays or ``jax.ShapeDtypeStruct``s):
    the leaves of a runner's :data:`PER_ENV_FIELDS` (a runner: a ``NamedTuple`` with any of
    them, found through tuples, lists and dicts) split along ``env_axis`` over ``"data"``,
    every other leaf replicated. A runner with none of them (a learner whose environments live
    only inside its update) is replicated whole: correct, but nothing is split."""
    replicated = NamedSharding(mesh, PartitionSpec())
    split = NamedSharding(mesh, PartitionSpec(*(None,) * env_axis, AXIS))
    size = mesh.shape[AXIS]

    def env_leaf(path, leaf):
        shape = np.shape(leaf)
        if len(shape) <= env_axis or shape[env_axis] % size:
            raise ValueError(f"per-env leaf {jax.tree_util.keystr(path)} of shape {shape} has "
                             f"no env axis {env_axis} divisible by {size} devices")
        return split

    def walk(node):
        if isinstance(node, tuple) and set(getattr(node, "_fields", ())) & set(PER_ENV_FIELDS):
            return type(node)(**{  # a runner: only its own per-env fields split (not, e.g.,
                name: (jax.tree_util.tree_map_with_path(env_leaf, value)  # a buffer's "obs")
                       if name in PER_ENV_FIELDS else jax.tree.map(lambda _: replicated, value))
                for name, value in node._asdict().items()})
        if isinstance(node, tuple) and hasattr(node, "_fields"):
            return type(node)(*map(walk, node))
        if isinstance(node, (tuple, list)):
            return type(node)(walk(v) for v in node)
        if isinstance(node, dict):
            return {k: walk(v) for k, v in node.items()}
        return jax.tree.map(lambda _: replicated, node)

    return walk(state)


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
