"""The outer training loop every learner shares: seeds side by side, chunks of updates.

A learner supplies ``init(key) -> runner`` and ``update(runner, i) -> (runner, metrics)`` for
*one* seed; :func:`make_loop` turns them into the ``(init, run)`` pair the ``baselines``
commands drive (checkpointing between chunks, progress from inside the compiled loop).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp


def make_loop(init, update, num_seeds: int, log_every: int, progress=None):
    """``init(key) -> (runners batched over seeds, update index 0)`` and
    ``run(state, length, end=None) -> (state, metrics [length, ...] seed-mean)``.

    ``run`` is ``length`` (static) loop iterations; iteration ``i`` updates only while
    ``i < end`` (default: all), so chunks of one compiled length can stop anywhere. Metric
    rows of skipped iterations are NaN; otherwise ``metrics["iteration"]`` is the update
    number. ``progress(update, metrics)`` is called from inside the compiled loop every
    ``log_every`` updates with the seed-mean metrics.
    """

    def init_seeds(key):
        return jax.vmap(init)(jax.random.split(key, num_seeds)), jnp.zeros((), jnp.int32)

    def run(state, length: int, end=None):
        end = state[1] + length if end is None else end

        def one(runners, i):
            runners, metrics = jax.vmap(update, in_axes=(0, None))(runners, i)
            metrics = jax.tree.map(jnp.nanmean, metrics)
            metrics["iteration"] = (i + 1).astype(jnp.float32)  # NaN in skipped rows
            if progress is not None:
                jax.lax.cond((i + 1) % log_every == 0,
                             lambda: jax.debug.callback(progress, i + 1, metrics), lambda: None)
            return runners, metrics

        def skip(runners, i):
            return runners, jax.tree.map(lambda s: jnp.full(s.shape, jnp.nan, s.dtype), shapes)

        def body(state, _):
            runners, i = state
            runners, metrics = jax.lax.cond(i < end, one, skip, runners, i)
            return (runners, i + (i < end)), metrics

        shapes = jax.eval_shape(lambda r: jax.vmap(update, in_axes=(0, None))(r, 0)[1],
                                state[0])
        shapes = jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape[1:], s.dtype), shapes)
        shapes["iteration"] = jax.ShapeDtypeStruct((), jnp.float32)
        return jax.lax.scan(body, state, None, length=length)

    return init_seeds, run
