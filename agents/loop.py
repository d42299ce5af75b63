"""What every learner shares: the training state, the trainer, the outer loop, and the one
place where a learner reads an environment's ``info``.

A learner supplies ``init(key) -> runner`` and ``update(runner, iteration) -> (runner,
metrics)`` for *one* seed; :func:`make_loop` turns them into the ``(init, run)`` pair of its
:class:`Trainer` (seeds side by side, chunks of updates, progress from inside the compiled
loop), over a :class:`TrainState` that the ``baselines`` commands checkpoint and resume.

The runner contract (``agents.sharding``, ``baselines.checkpoint``): a runner is a
``NamedTuple``; its class attribute ``per_env_fields`` names the fields whose leaves have the
environment batch as their first axis (axis 1 once batched over seeds), which
``agents.sharding`` splits over devices (everything else is replicated); typed PRNG key leaves
are stored by checkpoints as their raw data.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp


class TrainState(NamedTuple):
    """What training carries between chunks of updates."""

    runners: Any  # one runner per seed, batched along axis 0
    update: jax.Array  # int32: updates done so far


class Trainer(NamedTuple):
    """A learner, built from its config by ``agents.make_trainer``."""

    config: Any  # the validated agents.config.Config it was built from
    env: Any
    env_params: Any
    init: Callable  # key -> TrainState (update 0)
    run: Callable  # (state, length, end=None) -> (state, metrics [length, ...] seed-mean)
    evaluate: Callable  # (params of one seed, key, episodes) -> dict of greedy metrics
    collect: Callable  # the learner's pieces, exposed for tests: signatures in its module
    learn: Callable
    loss: Callable


class StepInfo(NamedTuple):
    """The ``info`` keys a learner relies on (``dcgenv.core`` documents them)."""

    final_observation: Any  # the last observation of an episode that ended (else ``obs``)
    success: jax.Array  # bool: on the step an episode ends, whether it succeeded
    bits: jax.Array  # float: bits this step's env-routed messages cost on the wire


def read_info(info: dict, done: jax.Array) -> StepInfo:
    """The documented keys of ``info`` (one env step, or a batch of them with ``done``'s
    shape); ``success`` is False and ``bits`` 0 where the env does not report them."""
    return StepInfo(info["final_observation"], info.get("success", jnp.zeros_like(done)),
                    info.get("bits", jnp.zeros(jnp.shape(done))))


def logged_success(info: dict) -> jax.Array:
    """``dcgenv.LogWrapper``'s ``returned_episode_success``, which it writes only for
    environments that define success; False elsewhere."""
    return info.get("returned_episode_success", jnp.zeros_like(info["returned_episode"]))


def global_norm(tree) -> jax.Array:
    """The L2 norm of all leaves of ``tree`` together (the learners' ``grad_norm`` metric)."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def params_finite(runners) -> jax.Array:
    """Whether every leaf of ``runners.params`` is finite (no NaN, no inf)."""
    return jnp.all(jnp.stack([jnp.isfinite(x).all() for x in jax.tree.leaves(runners.params)]))


def make_loop(init, update, num_seeds: int, log_every: int, progress=None):
    """``init(key) -> TrainState`` (runners batched over seeds, update 0) and
    ``run(state, length, end=None) -> (state, metrics [length, ...] seed-mean)``.

    ``run`` is ``length`` (static) loop iterations; iteration ``i`` updates only while
    ``i < end`` (default: all), so chunks of one compiled length can stop anywhere. Metric
    rows of skipped iterations are NaN; otherwise ``metrics["iteration"]`` is the update
    number and ``metrics["finite"]`` is 1.0 if every seed's parameters are finite after the
    update, else 0.0 (what ``baselines.train`` stops on). ``progress(update, metrics)`` is
    called from inside the compiled loop every ``log_every`` updates with the seed-mean
    metrics.
    """

    def init_seeds(key) -> TrainState:
        return TrainState(jax.vmap(init)(jax.random.split(key, num_seeds)),
                          jnp.zeros((), jnp.int32))

    def run(state: TrainState, length: int, end=None):
        end = state.update + length if end is None else end

        def one(runners, i):
            runners, metrics = jax.vmap(update, in_axes=(0, None))(runners, i)
            metrics = jax.tree.map(jnp.nanmean, metrics)
            metrics["iteration"] = (i + 1).astype(jnp.float32)  # NaN in skipped rows
            metrics["finite"] = params_finite(runners).astype(jnp.float32)
            if progress is not None:
                jax.lax.cond((i + 1) % log_every == 0,
                             lambda: jax.debug.callback(progress, i + 1, metrics), lambda: None)
            return runners, metrics

        def skip(runners, i):
            return runners, jax.tree.map(lambda spec: jnp.full(spec.shape, jnp.nan, spec.dtype),
                                         shapes)

        def body(state, _):
            runners, i = state
            runners, metrics = jax.lax.cond(i < end, one, skip, runners, i)
            return TrainState(runners, i + (i < end)), metrics

        shapes = jax.eval_shape(lambda runners: jax.vmap(update, in_axes=(0, None))(runners, 0)[1],
                                state.runners)
        shapes = jax.tree.map(lambda spec: jax.ShapeDtypeStruct(spec.shape[1:], spec.dtype),
                              shapes)
        shapes["iteration"] = shapes["finite"] = jax.ShapeDtypeStruct((), jnp.float32)
        return jax.lax.scan(body, state, None, length=length)

    return init_seeds, run
