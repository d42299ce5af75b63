"""Spaces: gymnax's, plus only what gymnax 1.0 lacks.

Use ``Discrete``, ``Box`` and ``Tuple`` from gymnax as they are. Added here:

- ``Normal``: an unbounded real space. gymnax's ``Box(-inf, inf).sample`` returns NaN;
  this one samples a standard normal (scaled by ``scale``) so random rollouts are defined.
- ``Binary``: boolean flags (masks, "active" bits) with a ``bool`` dtype.
- ``Dict``: gymnax's ``Dict`` reads children with ``getattr`` (so plain dicts fail
  ``contains``) and samples an ``OrderedDict`` (a different pytree from ``dict``). This one
  takes and returns plain ``dict``s, the structure every dcgenv observation uses.

``check(space, x)`` verifies a concrete value's shape, dtype and bounds and raises a
``ValueError`` that says which leaf is wrong; ``sample_agents`` samples one leaf per agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from dcgenv._gymnax import Box, Discrete, Space, Tuple
from dcgenv._gymnax import Dict as _GymnaxDict

__all__ = ["Space", "Discrete", "Box", "Tuple", "Dict", "Normal", "Binary", "check",
           "sample_agents"]


class Normal(Box):
    """Unbounded real space; ``sample`` draws ``scale * N(0, 1)``."""

    def __init__(self, shape: tuple[int, ...] = (), scale: float = 1.0,
                 dtype: Any = jnp.float32):
        super().__init__(-jnp.inf, jnp.inf, tuple(shape), dtype)
        self.scale = scale

    def __repr__(self) -> str:
        return f"Normal(shape={self.shape}, scale={self.scale}, dtype={np.dtype(self.dtype).name})"

    def sample(self, key: jax.Array) -> jax.Array:
        draw = jax.lax.optimization_barrier(jax.random.normal(key, self.shape))  # see core.normal
        return (self.scale * draw).astype(self.dtype)

    def contains(self, x: jax.Array) -> jax.Array:
        return jnp.all(jnp.isfinite(x))


class Binary(Space):
    """Boolean array space of a given shape."""

    def __init__(self, shape: tuple[int, ...] = ()):
        self.shape = tuple(shape)
        self.dtype = jnp.bool_

    def __repr__(self) -> str:
        return f"Binary(shape={self.shape})"

    def sample(self, key: jax.Array) -> jax.Array:
        return jax.random.bernoulli(key, 0.5, self.shape)

    def contains(self, x: jax.Array) -> jax.Array:
        return jnp.asarray(True)


class Dict(_GymnaxDict):
    """Dictionary of spaces over plain ``dict`` values (see module docstring)."""

    def __init__(self, spaces: Mapping[str, Space]):
        super().__init__(dict(spaces))

    def sample(self, key: jax.Array) -> dict[str, Any]:
        keys = jax.random.split(key, self.num_spaces)
        return {k: s.sample(kk) for kk, (k, s) in zip(keys, self.spaces.items(), strict=True)}

    def contains(self, x: Mapping[str, Any]) -> jax.Array:
        ok = [jnp.asarray(s.contains(x[k]), bool) for k, s in self.spaces.items()]
        return jnp.all(jnp.stack(ok))


def sample_agents(space: Space, key: jax.Array, num_agents: int) -> Any:
    """Sample one value per agent, stacked on a leading axis of size ``num_agents``."""
    return jax.vmap(space.sample)(jax.random.split(key, num_agents))


def check(space: Space, x: Any, *, batch_dims: int = 0, where: str = "value") -> None:
    """Raise ``ValueError`` unless concrete ``x`` fits ``space`` in shape, dtype and bounds.

    ``batch_dims`` leading axes (agents, envs, time) are allowed in front of the space's
    shape. Host-side helper for tests and debugging; not for use under ``jit``.
    """
    if isinstance(space, Dict):
        if not isinstance(x, Mapping) or set(x) != set(space.spaces):
            got = sorted(x) if isinstance(x, Mapping) else type(x).__name__
            raise ValueError(f"{where}: expected keys {sorted(space.spaces)}, got {got}")
        for k, s in space.spaces.items():
            check(s, x[k], batch_dims=batch_dims, where=f"{where}[{k!r}]")
        return
    if isinstance(space, Tuple):
        if len(x) != len(space.spaces):
            raise ValueError(f"{where}: expected {len(space.spaces)} entries, got {len(x)}")
        for i, s in enumerate(space.spaces):
            check(s, x[i], batch_dims=batch_dims, where=f"{where}[{i}]")
        return
    x = np.asarray(x)
    shape = tuple(space.shape)
    if x.ndim != batch_dims + len(shape) or tuple(x.shape[batch_dims:]) != shape:
        raise ValueError(f"{where}: shape {x.shape} does not end in the space's {shape} "
                         f"after {batch_dims} batch axes ({space!r})")
    if np.dtype(x.dtype) != np.dtype(space.dtype):
        raise ValueError(f"{where}: dtype {x.dtype}, space {space!r} wants "
                         f"{np.dtype(space.dtype).name}")
    if not np.all(np.isfinite(x)) if np.issubdtype(x.dtype, np.floating) else False:
        raise ValueError(f"{where}: contains NaN or inf")
    inside = jax.vmap(space.contains)(x.reshape((-1, *shape))) if x.size else np.ones(0, bool)
    if not np.all(np.asarray(inside)):
        raise ValueError(f"{where}: values outside {space!r}")
