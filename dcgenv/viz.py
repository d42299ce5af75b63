"""Rendering: grid worlds to RGB frames (jittable), episodes and GIFs (host side).

An environment's ``render(state, params) -> uint8[H, W, 3]`` colours a *cell canvas* (one RGB
colour per grid cell, row-major, row 0 at the top), describes its objects as :class:`Layer`s
made by :func:`marks`, and calls :func:`to_pixels`, which scales each cell to ``cell_px`` square
pixels, draws a one-pixel grid line on the top and left edge of every cell, and draws each
layer on top of the last as squares that leave ``inset`` pixels free inside the cell's edges.
All of it is plain ``jax.numpy`` on static shapes, so ``render`` works under ``jit`` and ``vmap``::

    frames = jax.vmap(env.render, in_axes=(0, None))(states, params)   # [T, H, W, 3]

:func:`episode` plays one episode with a policy and returns every state, the final one
included; :func:`save_gif` writes frames (or states, rendered with ``env``) as an animated GIF.
"""

from __future__ import annotations

from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from dcgenv.core import MultiAgentEnv
from dcgenv.rollouts import Policy

COLORS = {  # uint8 RGB
    "ground": (245, 245, 240), "road": (150, 150, 150), "grid": (205, 205, 200),
    "goal": (60, 170, 75), "agent": (40, 90, 200), "prey": (190, 0, 0),
    "crash": (220, 30, 30), "frozen": (255, 255, 255),
}
# Distinct colours, one per agent slot (cycled); none of them is a red (crash, prey) or white.
AGENT_COLORS = np.array([(31, 119, 180), (255, 127, 14), (44, 160, 44), (148, 103, 189),
                         (140, 86, 75), (227, 119, 194), (23, 190, 207), (188, 189, 34),
                         (20, 60, 110), (30, 30, 30)], np.uint8)


class Layer(NamedTuple):
    colors: jax.Array  # uint8 [h, w, 3]
    present: jax.Array  # bool [h, w]
    inset: int  # pixels left free between the square and the cell's edge


def color(name: str) -> np.ndarray:
    if name not in COLORS:
        raise ValueError(f"unknown colour {name!r}; allowed: {sorted(COLORS)}")
    return np.array(COLORS[name], np.uint8)


def agent_colors(num_agents: int) -> np.ndarray:
    """uint8 ``[num_agents, 3]``: one colour per agent slot from ``AGENT_COLORS``, cycled."""
    return AGENT_COLORS[np.arange(num_agents) % len(AGENT_COLORS)]


def canvas(height: int, width: int, fill: str = "ground") -> np.ndarray:
    """A ``[height, width, 3]`` cell canvas of one colour."""
    return np.broadcast_to(color(fill), (height, width, 3)).copy()


def marks(shape: tuple[int, int], rows, cols, colors, where=None, inset: int = 0) -> Layer:
    """Objects at cells ``(rows[k], cols[k])`` with ``colors`` (``[3]`` or ``[K, 3]``).

    Objects with ``where[k]`` false or outside the grid are left out. Where several objects
    share a cell, the one with the highest index ``k`` is drawn (deterministically).
    """
    h, w = shape
    rows, cols = jnp.atleast_1d(rows), jnp.atleast_1d(cols)
    k = rows.shape[0]
    ok = (rows >= 0) & (rows < h) & (cols >= 0) & (cols < w)
    ok = ok if where is None else ok & jnp.atleast_1d(where)
    flat = jnp.where(ok, rows * w + cols, h * w)  # h * w: dropped
    winner = jnp.full(h * w, -1, jnp.int32).at[flat].max(jnp.arange(k, dtype=jnp.int32),
                                                          mode="drop")
    colors = jnp.broadcast_to(jnp.asarray(colors, jnp.uint8), (k, 3))
    grid = colors[jnp.maximum(winner, 0)].reshape(h, w, 3)
    return Layer(grid, (winner >= 0).reshape(h, w), inset)


def to_pixels(background, *layers: Layer, cell_px: int = 8) -> jax.Array:
    """uint8 ``[h * cell_px, w * cell_px, 3]`` image of a cell canvas and layers on top."""
    if not isinstance(cell_px, int) or cell_px < 3:
        raise ValueError(f"cell_px must be an integer >= 3, got {cell_px!r}")
    up = lambda x: jnp.repeat(jnp.repeat(x, cell_px, axis=0), cell_px, axis=1)
    h, w = background.shape[:2]
    offset = np.arange(cell_px)
    line = np.tile(offset == 0, h)[:, None] | np.tile(offset == 0, w)[None, :]
    image = jnp.where(line[..., None], color("grid"), up(jnp.asarray(background, jnp.uint8)))
    for layer in layers:
        inside = (offset > layer.inset) & (offset < cell_px - layer.inset)
        square = np.tile(inside, h)[:, None] & np.tile(inside, w)[None, :]
        image = jnp.where((up(layer.present) & square)[..., None], up(layer.colors), image)
    return image


def episode(env, params, key: jax.Array, policy: Policy | None = None, carry: Any = None,
            num_steps: int | None = None):
    """One episode from ``reset``: ``(states, length)``.

    ``states`` stacks ``num_steps + 1`` states (default ``params.max_steps_in_episode``): the
    reset state, then the state after each step, the final state of the episode included (no
    auto-reset); after the episode ends the last state repeats, and ``length`` counts the
    valid ones. ``policy(key, obs) -> actions`` (agent-stacked; ``None``: uniformly random);
    with ``carry`` given it is a recurrent policy ``policy(key, obs, carry) -> (actions,
    carry)`` starting from ``carry``.
    """
    params = env.default_params if params is None else params
    num_steps = int(params.max_steps_in_episode) if num_steps is None else num_steps
    if not isinstance(num_steps, int) or num_steps < 1:
        raise ValueError(f"num_steps must be an integer >= 1, got {num_steps!r}")
    return _episode(env, params, key, policy, carry, num_steps)


@partial(jax.jit, static_argnames=("env", "policy", "num_steps"))
def _episode(env, params, key, policy, carry, num_steps):
    key_reset, key_run = jax.random.split(key)
    obs, state = env.reset(key_reset, params)

    def one_step(loop, key):
        obs, state, carry, done = loop
        key_act, key_env = jax.random.split(key)
        if policy is None:
            actions = env.sample_actions(key_act, params)
        elif carry is None:
            actions = policy(key_act, obs)
        else:
            actions, carry = policy(key_act, obs, carry)
        _, nxt, _, terminated, truncated, _ = env.transition(key_env, state, actions, params)
        nxt = jax.tree.map(lambda x, y: jnp.where(done, x, y), state, nxt)
        return (env.get_obs(nxt, params), nxt, carry, done | terminated | truncated), (nxt, ~done)

    done = jnp.zeros((), bool)
    _, (states, valid) = jax.lax.scan(one_step, (obs, state, carry, done),
                                      jax.random.split(key_run, num_steps))
    states = jax.tree.map(lambda s, xs: jnp.concatenate([s[None], xs]), state, states)
    return states, 1 + valid.sum()


def can_render(env) -> bool:
    """Whether ``env`` (or the env a wrapper wraps) defines its own ``render``."""
    env = getattr(env, "_env", env)
    return getattr(type(env), "render", None) is not getattr(MultiAgentEnv, "render", None)


def render_states(env, states, params=None, **render_kwargs) -> np.ndarray:
    """uint8 ``[T, H, W, 3]`` frames of stacked ``states`` (leading time axis)."""
    if not can_render(env):
        raise ValueError(f"{env!r} has no render(state, params) method; grid environments "
                         "have one (TrafficJunction, PredatorPrey, GridWorldGoal)")
    render = jax.jit(jax.vmap(lambda s: env.render(s, params, **render_kwargs)))
    return np.asarray(render(states))


def save_gif(states, path: str | Path, env=None, params=None, *, fps: float = 4.0,
             **render_kwargs) -> Path:
    """Write an animated GIF (looping) and return its path.

    ``states`` is either uint8 frames ``[T, H, W, 3]`` (then ``env`` is ``None``) or a pytree of
    stacked states with a leading time axis, rendered with ``env.render(state, params)``.
    """
    from PIL import Image  # Pillow comes with matplotlib

    if env is not None:
        states = render_states(env, states, params, **render_kwargs)
    frames = np.asarray(states)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
        raise ValueError("save_gif needs uint8 frames [T, H, W, 3] with T >= 1, or states and "
                         f"the env that renders them; got {frames.dtype} {frames.shape}")
    if not fps > 0:
        raise ValueError(f"fps must be > 0, got {fps!r}")
    path = Path(path)
    images = [Image.fromarray(f) for f in frames]
    images[0].save(path, save_all=True, append_images=images[1:], loop=0,
                   duration=int(round(1000 / fps)), optimize=False)
    return path
