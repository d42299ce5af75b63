"""Gradient taps: d(loss)/d(message) for every message, without threading it by hand.

Mark a message anywhere inside a loss (environment step, agent network, ...)::

    z = comms.tap("speaker", z)              # identity outside value_and_grad_with_taps

and transform the loss::

    fn = comms.value_and_grad_with_taps(loss_fn)          # argnums / has_aux as jax.grad
    loss, grads, message_grads = fn(params, batch)        # message_grads["speaker"] ~ z

How it works: the transform first traces ``loss_fn`` abstractly (``jax.eval_shape``) to find
every tap's name and shape, then differentiates with respect to a zero perturbation added at
each tap. So a tap's cotangent is exactly d(loss)/d(message). Mind where the tap sits: a tap
inside a ``vmap``/``scan`` body sees one element/step, and its cotangent is the *sum* over the
batch/steps; tap the stacked array outside the loop for per-sample cotangents. A name may be
tapped only once per call.

``stop_incoming(messages)`` gives the fully independent learners of arXiv 2401.15059: each
agent's own message stays in the graph, the messages it receives are detached.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

_TAPS: contextvars.ContextVar[dict | None] = contextvars.ContextVar("dcgenv_taps", default=None)
_RECORD = object()


def tap(name: str, message: jax.Array) -> jax.Array:
    """Mark ``message`` so ``value_and_grad_with_taps`` reports d(loss)/d(message) as ``name``."""
    active = _TAPS.get()
    if active is None:
        return message
    if _RECORD in active:
        if name in active:
            raise ValueError(f"tap name {name!r} used twice in one call; names must be unique")
        active[name] = jax.ShapeDtypeStruct(jnp.shape(message), jnp.result_type(message))
        return message
    return message + active[name]


@contextlib.contextmanager
def _active(taps: dict):
    token = _TAPS.set(taps)
    try:
        yield
    finally:
        _TAPS.reset(token)


def value_and_grad_with_taps(fun: Callable, argnums: int | Sequence[int] = 0,
                             has_aux: bool = False) -> Callable:
    """Like ``jax.value_and_grad(fun, argnums, has_aux)``, returning also the tap cotangents.

    The returned function gives ``(value, grads, message_grads)`` where ``value`` is what
    ``jax.value_and_grad`` returns as value (``(loss, aux)`` with ``has_aux``) and
    ``message_grads`` maps each tap name to d(loss)/d(message), shaped like the message.
    """
    nums = (argnums,) if isinstance(argnums, int) else tuple(argnums)

    def wrapped(*args, **kwargs):
        def call(diff_args):  # only the differentiated arguments are traced, as in jax.grad
            full = list(args)
            for i, a in zip(nums, diff_args, strict=True):
                full[i] = a
            return fun(*full, **kwargs)

        diff_args = tuple(args[i] for i in nums)
        shapes = {_RECORD: None}
        with _active(shapes):
            jax.eval_shape(call, diff_args)
        del shapes[_RECORD]
        zeros = {name: jnp.zeros(s.shape, s.dtype) for name, s in shapes.items()}

        def perturbed(diff_args, perturbations):
            with _active(perturbations):
                return call(diff_args)

        value, (grads, message_grads) = jax.value_and_grad(
            perturbed, argnums=(0, 1), has_aux=has_aux)(diff_args, zeros)
        return value, (grads[0] if isinstance(argnums, int) else grads), message_grads

    return wrapped


def stop_incoming(messages: jax.Array) -> jax.Array:
    """Per-receiver view ``[N, N, ...]``: ``out[i, j] = messages[j]``, detached unless ``j == i``.

    Feed ``out[i]`` to agent ``i``'s policy: its gradient reaches only its own message.
    """
    n = messages.shape[0]
    own = jnp.eye(n, dtype=bool).reshape((n, n) + (1,) * (messages.ndim - 1))
    return jnp.where(own, messages[None], jax.lax.stop_gradient(messages)[None])
