"""Witsenhausen's counterexample (1968) as a two-agent, two-step, differentiable game.

Rules: ``x0 ~ N(0, sigma^2)``. Controller 1 sees ``x0`` and applies ``u1``; ``x1 = x0 + u1``.
Controller 2 sees ``y = x1 + w`` with ``w ~ N(0, noise_std^2)`` and applies ``u2``. The cost of
one sample is ``k^2 u1^2 + (x1 - u2)^2``; the benchmark point is ``k = 0.2, sigma = 5``.
Reference costs there (table and sources in ``docs/envs/witsenhausen.md``): best affine policy
0.96 and Witsenhausen's two-point policy 0.4042532 (Witsenhausen 1968, SIAM J. Control 6(1));
0.1670790 for Lee, Lau & Ho's step policies (2001, IEEE TAC 46(3)); the lowest published are
about 0.16692 (Karlsson, Gattami, Oechtering & Skoglund 2011: 0.16692462; Mehmetoglu, Akyol &
Rose 2014, arXiv 1402.0525: 0.16692291); this repository's person-by-person solver reaches
0.1669223121 (``docs/witsenhausen.md``, with the lower bounds and the variants).

Parameters (``EnvParams``), with the ranges ``make`` and ``params.replace_checked`` enforce:
``k`` >= 0 (the control-cost weight; it enters as ``k^2``, and ``k = 0`` is the degenerate free-
control game), ``sigma`` > 0 and ``noise_std`` > 0 (standard deviations; 0 would make ``x0`` or
``y`` deterministic and the problem trivial), ``action_limit`` > 0, ``max_steps_in_episode``
>= 1 (informational). Inside ``jit``, where params may be traced and nothing is checked, a
negative ``k`` acts as ``|k|``; a negative ``sigma`` or ``noise_std`` mirrors the draws (the
same distributions as their absolute values); ``action_limit`` <= 0 sets both actions to
``action_limit``. Rewards are <= 0; they are finite while the squares fit the float dtype
(in float32, ``sigma``, ``noise_std``, ``action_limit`` and ``k * action_limit`` well below
1e18) and reach -inf beyond; non-finite params can give NaN.

Episode: step 0 is controller 1's move (reward ``-k^2 u1^2``), step 1 controller 2's
(reward ``-(x1 - u2)^2``), then the episode terminates. Both agents receive the same (team)
reward, so each agent's episode return is ``-J`` for that sample; ``info`` reports the two
cost terms, ``stage1_cost`` and ``stage2_cost``. ``x0`` and ``w`` are drawn at reset from the
reset key, so an episode is a differentiable function of the policies: ``jax.grad`` of the mean
episode cost with respect to both policies' parameters passes through ``reset``/``step``.

Observation (per agent, a dict; agent-stacked in ``obs``):

========= ======= =============================================================
``signal`` f32[1]  ``x0`` for controller 1 at step 0, ``y`` for controller 2 at step 1, else 0
``active`` bool    whether it is this agent's turn (its action is used)
``role``   int32   0 = controller 1, 1 = controller 2
========= ======= =============================================================

Floats are JAX's default dtype: float32, or float64 in x64 mode (``jax.enable_x64``), which
the exact-cost checks use. Actions: one float per agent (``actions`` is f32[2]); the
inactive agent's action is ignored. Illegal actions, inside ``jit``: a non-finite action is
read as 0 and actions are clipped to ``[-action_limit, action_limit]`` (1e6 by default, far
outside any useful policy), so costs stay finite.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from dcgenv import spaces
from dcgenv.core import EnvParams as BaseParams
from dcgenv.core import EnvState as BaseState
from dcgenv.core import MultiAgentEnv, normal, param
from dcgenv.envs.witsenhausen_reference import (  # noqa: F401  (the benchmark's reference API)
    affine,
    affine_cost,
    best_affine_lambdas,
    env_policy,
    expected_cost,
    expected_cost_terms,
    optimal_gamma2,
    posterior_mean,
    staircase,
    two_point,
)
from dcgenv.registry import register


@struct.dataclass
class EnvState(BaseState):
    x0: jax.Array  # initial state
    w: jax.Array  # controller 2's observation noise
    x1: jax.Array  # state after controller 1 (equals x0 until it acts)


@struct.dataclass
class EnvParams(BaseParams):
    k: float = param(0.2, 0.0)  # control-cost weight, k^2 u1^2
    sigma: float = param(5.0, 0.0, low_open=True)  # x0 ~ N(0, sigma^2)
    noise_std: float = param(1.0, 0.0, low_open=True)  # w ~ N(0, noise_std^2)
    action_limit: float = param(1e6, 0.0, low_open=True)  # actions clipped to +-this
    max_steps_in_episode: int = param(2, 1)  # informational: the game always ends after step 1


def _square(v: jax.Array) -> jax.Array:
    return v**2


def step_controllers(state, actions: jax.Array, params: EnvParams, square=_square):
    """One step of the two-controller game, shared with ``Witsenhausen-vector-v0``.

    Non-finite actions are read as 0 and actions clipped to ``+-action_limit``; at ``time ==
    0`` controller 1's action moves the state (``x1 = x0 + u1``, cost ``k^2 square(u1)``), at
    ``time == 1`` controller 2's is scored (cost ``square(x1 - u2)``), which ends the episode.
    ``square`` maps the state's shape to a scalar: ``v**2`` here, the mean of squares over the
    ``m`` coordinates in the vector game. ``state`` needs ``time``, ``x0`` and ``x1``.
    Returns ``step_env``'s ``(state, reward, terminated, info)``.
    """
    actions = jnp.asarray(actions, state.x0.dtype)
    actions = jnp.clip(jnp.where(jnp.isfinite(actions), actions, 0.0),
                       -params.action_limit, params.action_limit)
    first = state.time == 0
    u1 = jnp.where(first, actions[0], 0.0)
    u2 = jnp.where(first, 0.0, actions[1])
    x1 = state.x1 + u1
    stage1 = params.k**2 * square(u1)
    stage2 = jnp.where(first, 0.0, square(x1 - u2))
    reward = -(stage1 + stage2) * jnp.ones(2)
    info = {"stage1_cost": stage1, "stage2_cost": stage2}
    return state.replace(x1=x1), reward, ~first, info


class Witsenhausen(MultiAgentEnv):
    agents = ("controller_1", "controller_2")

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        k0, kw = jax.random.split(key)
        x0 = params.sigma * normal(k0)
        w = params.noise_std * normal(kw)
        return EnvState(time=jnp.zeros((), jnp.int32), x0=x0, w=w, x1=x0)

    def step_env(self, key: jax.Array, state: EnvState, actions: jax.Array, params: EnvParams):
        return step_controllers(state, actions, params, _square)

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.zeros((), bool)  # the rules end every episode at step 1 (terminated)

    def get_obs(self, state: EnvState, params: EnvParams) -> dict[str, jax.Array]:
        active = jnp.stack([state.time == 0, state.time == 1])
        # where, not * active: an inactive signal is +0.0 however XLA fuses it, never -0.0
        signal = jnp.where(active, jnp.stack([state.x0, state.x1 + state.w]), 0.0)
        return {"signal": signal[:, None], "active": active,
                "role": jnp.arange(2, dtype=jnp.int32)}

    def observation_space(self, params: EnvParams | None = None) -> spaces.Dict:
        return spaces.Dict({"signal": spaces.Normal((1,)), "active": spaces.Binary(),
                            "role": spaces.Discrete(2)})

    def action_space(self, params: EnvParams | None = None) -> spaces.Normal:
        return spaces.Normal(())


register("Witsenhausen-v0", Witsenhausen)
