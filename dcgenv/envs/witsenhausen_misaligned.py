"""Witsenhausen's counterexample with a biased controller 2: a misaligned (strategic) version.

Rules: those of ``Witsenhausen-v0`` (``x0 ~ N(0, sigma^2)``; controller 1 sees ``x0`` and
applies ``u1``, ``x1 = x0 + u1``; controller 2 sees ``y = x1 + w``, ``w ~ N(0, noise_std^2)``,
and applies ``u2``), but the two controllers no longer share one cost. Controller 1 keeps the
team's, ``k^2 u1^2 + (x1 - u2)^2``; controller 2 wants ``u2`` near ``x1 + bias``: its cost is
``(x1 + bias - u2)^2``. Rewards are per agent (not a team reward). This is the quadratic,
Crawford-Sobel-style bias of the signalling-game literature (Crawford & Sobel 1982,
Econometrica 50(6); Saritas, Yuksel & Gezici 2017, IEEE TAC 62(2), arXiv 1503.04360, where
the bias sits on the encoder's side and the encoder also pays a power cost) moved onto the
decoder of Witsenhausen's problem; the closed forms below are derived here, not taken from a
paper.

Closed forms (tested in ``tests/test_witsenhausen_misaligned.py``):

- Controller 2's best response to any controller-1 policy is ``u2 = E[x1 | y] + bias``.
- Welfare loss, controller 1 leading (it commits to ``gamma1``, controller 2 best-responds):
  the team cost is ``J(gamma1) + bias^2`` for every ``gamma1``, since ``E[(x1 - E[x1|y] -
  b)^2] = mmse - 2b E[x1 - E[x1|y]] + b^2`` and the middle term is 0. The loss is the same for
  every ``gamma1``, so controller 1 need not re-optimise: the team's best policy (and, for
  affine policies, ``best_affine_lambdas``) stays best, at ``+bias^2`` (:func:`welfare_loss`).
- Affine Nash equilibria (each best-responds to the other's fixed policy; against an affine
  policy the best response over all policies is affine): ``x1 = lam x0 + d``
  and ``u2 = a y + (1 - a) d + bias`` with ``a = lam^2 sigma^2 / (lam^2 sigma^2 + n^2)``, ``lam``
  a stationary point of the team's affine cost (the slopes do not depend on the bias) and the
  offset ``d = (1 - a) bias / k^2``: controller 1 pushes ``x1`` up to offset the bias it
  expects, controller 2 discounts the push, and in equilibrium the push buys nothing (signal
  jamming). Team cost ``affine_cost(lam) + bias^2 + k^2 d^2`` (:func:`affine_nash`).

Parameters (``EnvParams``): those of ``Witsenhausen-v0`` (``k`` >= 0, ``sigma`` > 0,
``noise_std`` > 0, ``action_limit`` > 0, ``max_steps_in_episode`` >= 1; the same behaviour
inside ``jit``) and ``bias`` (any finite real, default 1.0; ``bias = 0`` is
``Witsenhausen-v0``, with controller 2 paid only on its own step).

Episode: step 0 is controller 1's move, step 1 controller 2's, then the episode terminates.
Rewards: controller 1 gets ``-k^2 u1^2`` at step 0 and ``-(x1 - u2)^2`` at step 1 (its return
is minus the team cost ``J``, exactly as in ``Witsenhausen-v0``); controller 2 gets 0 at step 0
and ``-(x1 + bias - u2)^2`` at step 1. ``info``: ``stage1_cost`` and ``stage2_cost`` (the team's
terms, as in ``Witsenhausen-v0``) and ``controller2_cost`` (``(x1 + bias - u2)^2`` at step 1,
0 at step 0). ``jax.grad`` of either controller's return reaches both controllers' actions,
pathwise through ``reset`` and ``step``. Observations and actions are those of
``Witsenhausen-v0`` (``signal`` f32[1], ``active`` bool, ``role`` int32; one float per agent),
and so is the handling of illegal actions inside ``jit`` (non-finite read as 0, clipped to
``+-action_limit``).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
from flax import struct

from dcgenv.core import param
from dcgenv.envs import witsenhausen
from dcgenv.envs.witsenhausen_reference import affine_cost
from dcgenv.registry import register


@struct.dataclass
class EnvParams(witsenhausen.EnvParams):
    bias: float = param(1.0)  # controller 2's cost is (x1 + bias - u2)^2


class WitsenhausenMisaligned(witsenhausen.Witsenhausen):
    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def step_env(self, key: jax.Array, state, actions: jax.Array, params: EnvParams):
        first = state.time == 0
        state, reward, terminated, info = super().step_env(key, state, actions, params)
        # controller 2's action as the parent reads it (non-finite -> 0, clipped)
        u2 = jnp.asarray(actions, state.x0.dtype)[1]
        u2 = jnp.clip(jnp.where(jnp.isfinite(u2), u2, 0.0), -params.action_limit,
                      params.action_limit)
        own = (state.x1 + params.bias - u2) ** 2
        reward = jnp.stack([reward[0], jnp.where(first, 0.0, -own)])  # +0.0 at step 0
        return state, reward, terminated, {**info, "controller2_cost": jnp.where(first, 0.0, own)}


# ---- closed forms ----------------------------------------------------------------------------
def biased(gamma2, bias: float):
    """Controller 2's best response when ``gamma2`` is the team's (``E[x1 | y]``, e.g.
    ``witsenhausen_reference.optimal_gamma2``): ``y -> gamma2(y) + bias``."""
    return lambda y: gamma2(y) + bias


def welfare_loss(bias: float) -> float:
    """``bias^2``: the team's extra cost when controller 2 best-responds with its bias to any
    committed controller-1 policy (the module docstring has the two-line proof)."""
    return float(bias) ** 2


def affine_nash(lam: float, bias: float, k: float = 0.2, sigma: float = 5.0,
                noise_std: float = 1.0) -> dict[str, float]:
    """The affine Nash equilibrium on slope ``lam`` (a stationary point of the team's affine
    cost, e.g. from ``best_affine_lambdas``): controller 1 plays ``x1 = lam x0 + offset``,
    controller 2 ``u2 = slope y + intercept``. Returns those four numbers, ``team_cost``
    (``affine_cost(lam) + bias^2 + k^2 offset^2``), ``welfare_loss`` (its excess over
    ``affine_cost(lam)``) and ``controller2_cost`` (its mmse). ``ValueError`` for ``k <= 0``,
    where controller 1's best response does not exist for ``bias != 0``."""
    for name, value in (("k", k), ("sigma", sigma), ("noise_std", noise_std)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"affine_nash: {name} must be a finite number > 0, got {value!r}")
    s2, n2 = lam**2 * sigma**2, noise_std**2
    a = s2 / (s2 + n2)
    offset = (1 - a) * bias / k**2
    base = affine_cost(lam, k, sigma, noise_std)
    loss = bias**2 + k**2 * offset**2
    return {"lam": lam, "offset": offset, "slope": a, "intercept": (1 - a) * offset + bias,
            "team_cost": base + loss, "welfare_loss": loss, "controller2_cost": s2 * n2 / (s2 + n2)}


register("Witsenhausen-misaligned-v0", WitsenhausenMisaligned)
