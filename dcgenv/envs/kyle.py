"""Kyle's (1985) single-auction insider-trading model as a two-agent, two-step game.

Rules: the asset's value is ``v ~ N(p0, sigma0^2)`` (``sigma0`` is a *standard deviation*:
Kyle's prior variance is ``Sigma0 = sigma0^2``). Step 0: the insider sees ``v`` and submits an
order ``x``. Noise traders submit ``u ~ N(0, sigma_u^2)``. Step 1: the market maker sees only
the order flow ``y = x + u`` and quotes the price ``p`` at which the whole flow is executed;
the episode terminates. Rewards come at step 1 (both are 0 at step 0):

- insider: its trading profit ``(v - p) x``;
- market maker: ``-(p - v)^2``. Kyle's market maker is competitive: free entry drives its
  expected profit to zero, ``p = E[v | y]``. A reward whose optimum is that price is the
  squared pricing error (the posterior mean minimises it), so the competitive market maker is
  modelled as minimising its pricing error (as in the learning literature on Kyle's model);
  its trading profit ``(p - v) y`` (it takes the other side of the flow) is in ``info`` as
  ``mm_profit``, zero in expectation at the equilibrium.

Equilibrium (Kyle 1985, Econometrica 53(6), Theorem 1; :func:`equilibrium`): the unique
linear one is ``x = beta (v - p0)``, ``p = p0 + lambda y`` with ``beta = sigma_u / sigma0``
and ``lambda = sigma0 / (2 sigma_u)``. The insider's expected profit is
``sigma_u sigma0 / 2``, the market maker's expected pricing error ``Var(v | y) = sigma0^2 / 2``
(half the private information is revealed) and its expected trading profit 0. The timing
(the market maker prices after seeing ``y``, with ``u`` drawn at reset) makes an episode a
differentiable function of both strategies: ``jax.grad`` of either reward passes through
``reset``/``step`` to both actions.

Parameters (``EnvParams``), with the ranges ``make`` and ``params.replace_checked`` enforce:
``p0`` any finite number (the prior mean), ``sigma0`` > 0 and ``sigma_u`` > 0 (standard
deviations; 0 makes the game degenerate: no private information or no noise to hide in),
``action_limit`` > 0, ``max_steps_in_episode`` >= 1 (informational: the rules end every
episode after step 1). Inside ``jit``, where nothing is checked, a negative ``sigma0`` or
``sigma_u`` mirrors the draws (the distribution of its absolute value); ``action_limit`` <= 0
sets both actions to ``action_limit``.

Observation (per agent, a dict; agent-stacked in ``obs``):

========== ======= ==========================================================================
``signal``  f32[1]  ``v`` for the insider at step 0, ``y`` for the market maker at step 1,
                    else 0
``p0``      f32     the prior mean (common knowledge), so a linear policy needs no params
``active``  bool    whether it is this agent's turn (its action is used)
``role``    int32   0 = insider, 1 = market maker
========== ======= ==========================================================================

Actions: one float per agent (``actions`` is f32[2]: the insider's order, the market maker's
price); the inactive agent's is ignored. Illegal actions, inside ``jit``: a non-finite action
is read as 0 and actions are clipped to ``[-action_limit, action_limit]`` (1e6 by default).
``info``: ``order_flow`` (``y``, 0 at step 0), ``price`` (0 at step 0), ``mm_profit``.
Deviations from Kyle: one auction only (his sequential N-auction model is not built), and the
market maker is an agent with the pricing-error reward above rather than a zero-profit rule.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from dcgenv import spaces
from dcgenv.core import EnvParams as BaseParams
from dcgenv.core import EnvState as BaseState
from dcgenv.core import MultiAgentEnv, normal, param
from dcgenv.registry import register


@struct.dataclass
class EnvState(BaseState):
    v: jax.Array  # the asset's value, seen by the insider
    u: jax.Array  # the noise traders' order
    x: jax.Array  # the insider's order (0 until it acts)


@struct.dataclass
class EnvParams(BaseParams):
    p0: float = param(0.0)  # prior mean of v
    sigma0: float = param(1.0, 0.0, low_open=True)  # v ~ N(p0, sigma0^2): a std, Sigma0 = sigma0^2
    sigma_u: float = param(1.0, 0.0, low_open=True)  # u ~ N(0, sigma_u^2)
    action_limit: float = param(1e6, 0.0, low_open=True)  # actions clipped to +-this
    max_steps_in_episode: int = param(2, 1)  # informational: the game always ends after step 1


class Kyle(MultiAgentEnv):
    agents = ("insider", "market_maker")

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        kv, ku = jax.random.split(key)
        # the barrier keeps the product out of an FMA that vmap and a loop would round apart
        v = params.p0 + jax.lax.optimization_barrier(params.sigma0 * normal(kv))
        u = params.sigma_u * normal(ku)
        return EnvState(time=jnp.zeros((), jnp.int32), v=v, u=u, x=jnp.zeros_like(v))

    def step_env(self, key: jax.Array, state: EnvState, actions: jax.Array, params: EnvParams):
        actions = jnp.asarray(actions, state.v.dtype)
        actions = jnp.clip(jnp.where(jnp.isfinite(actions), actions, 0.0),
                           -params.action_limit, params.action_limit)
        first = state.time == 0
        x = jnp.where(first, actions[0], state.x)
        y = jnp.where(first, 0.0, x + state.u)
        p = jnp.where(first, 0.0, actions[1])
        insider = jnp.where(first, 0.0, (state.v - p) * x)
        pricing_error = jnp.where(first, 0.0, (p - state.v) ** 2)
        reward = jnp.stack([insider, -pricing_error])
        info = {"order_flow": y, "price": p, "mm_profit": jnp.where(first, 0.0, (p - state.v) * y)}
        return state.replace(x=x), reward, ~first, info

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.zeros((), bool)  # the rules end every episode at step 1 (terminated)

    def get_obs(self, state: EnvState, params: EnvParams) -> dict[str, jax.Array]:
        active = jnp.stack([state.time == 0, state.time == 1])
        signal = jnp.where(active, jnp.stack([state.v, state.x + state.u]), 0.0)
        p0 = jnp.full(2, params.p0, state.v.dtype)
        return {"signal": signal[:, None], "p0": p0, "active": active,
                "role": jnp.arange(2, dtype=jnp.int32)}

    def observation_space(self, params: EnvParams | None = None) -> spaces.Dict:
        return spaces.Dict({"signal": spaces.Normal((1,)), "p0": spaces.Normal(()),
                            "active": spaces.Binary(), "role": spaces.Discrete(2)})

    def action_space(self, params: EnvParams | None = None) -> spaces.Normal:
        return spaces.Normal(())


def equilibrium(params: EnvParams) -> dict[str, jax.Array]:
    """Kyle's linear equilibrium for ``params``: ``beta``, ``lambda`` (``x = beta (v - p0)``,
    ``p = p0 + lambda y``), the expected ``insider_profit`` (``sigma_u sigma0 / 2``), the
    market maker's expected reward ``mm_reward`` (``-sigma0^2 / 2``) and ``mm_profit`` (0)."""
    s0, su = jnp.asarray(params.sigma0), jnp.asarray(params.sigma_u)
    return {"beta": su / s0, "lambda": s0 / (2 * su), "insider_profit": su * s0 / 2,
            "mm_reward": -(s0**2) / 2, "mm_profit": jnp.zeros_like(s0)}


register("Kyle-v0", Kyle)
