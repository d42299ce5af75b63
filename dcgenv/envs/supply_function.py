"""Supply-function competition (Klemperer & Meyer 1989): each firm's action is a whole function.

Rules: ``num_firms`` firms (a constructor argument, 2 by default) each submit a supply
schedule, ``grid_size`` quantities ``q_i[k]`` on the fixed price grid
``p[k] = linspace(price_min, price_max, grid_size)``, read as the piecewise-linear function
``S_i(p)`` through the points ``(p[k], q_i[k])``; beyond the grid it continues linearly with
its end segment's slope (so a schedule ``q = b p`` on a grid from 0 is ``S(p) = b p`` for every
price). Schedules are made non-decreasing by the running maximum ``q_i[k] <- max_{j<=k}
q_i[j]`` (the lowest non-decreasing schedule at or above the one submitted; an entry below an
earlier one gets no gradient). The demand shock is ``eps = eps_mean + eps_std z`` with ``z ~
N(0, 1)`` drawn at reset (kept in the state, so episodes vmapped over ``eps_mean``/``eps_std``
share their draws) and not observed: firms commit before demand is known. Demand is
``D(p) = eps - gamma p``. The market clears at the uniform price ``p*`` with ``sum_i S_i(p*) =
D(p*)``; firm ``i`` sells ``q_i = S_i(p*)`` at ``p*`` and earns ``p* q_i - cost q_i^2 / 2``.
Episodes are one step.

Clearing is exact and differentiable: excess supply ``sum_i S_i(p) - D(p)`` is piecewise linear
on the grid and strictly increasing (slope >= ``gamma`` > 0), so its values at the grid points
locate the one segment (or end-segment extension) holding the root, which is solved linearly
there. No iteration; the denominator is at least ``gamma`` times the grid step (a segment that
float rounding collapsed to a point gives that point), so the price is finite, and ``jax.grad``
of profits passes through the price to every schedule entry (piecewise: the segment choice
itself has no gradient, but the clearing price is continuous in the schedules).

Equilibrium (Klemperer & Meyer 1989, Econometrica 57(6); :func:`sfe_slope`): with demand
shocks of unbounded support, the supply-function equilibrium is unique and linear, symmetric
``S(p) = beta p`` with ``beta = 1 / (cost + 1 / (gamma + (N - 1) beta))``, the positive root of
``cost (N-1) beta^2 + (cost gamma + 2 - N) beta - gamma = 0``; for ``N = 2``, ``gamma = cost =
1``, ``beta = (sqrt 5 - 1) / 2``. It is an ex-post best response: against the others' ``beta
p``, the point where firm ``i``'s schedule crosses its residual demand is its profit-maximising
point for every ``eps``, so the gradient of profit with respect to its own schedule is zero
sample by sample. Expected profit at the equilibrium: :func:`sfe_profit`.

Parameters (``EnvParams``), with the ranges ``make`` and ``params.replace_checked`` enforce:
``gamma`` > 0 (demand slope), ``cost`` >= 0 (``cost = 0`` with N >= 2 has no finite linear SFE),
``eps_mean`` finite, ``eps_std`` >= 0, ``price_min`` < ``price_max`` (the grid),
``quantity_limit`` > 0, ``max_steps_in_episode`` >= 1 (informational). Inside ``jit``, where
nothing is checked: a negative ``eps_std`` mirrors the draws, a negative ``cost`` is used as
given (a subsidy), ``gamma`` is read as at least 1e-6 (so clearing stays finite), a grid with
``price_max <= price_min`` is read as the grid ``[price_min, price_min + 1]``, and non-finite
params can give NaN. Rewards stay finite while ``cost q^2`` fits the float dtype.

Observation (per agent, a dict; agent-stacked): ``prices`` f32[grid_size] (the price grid the
schedule is read on) and ``firm`` int32 (the firm's index). Actions: f32[grid_size] per firm,
the quantities at the grid prices. Illegal actions, inside ``jit``: non-finite entries are
read as 0 and entries are clipped to ``[-quantity_limit, quantity_limit]``. ``info``:
``price`` (``p*``), ``quantities`` f32[num_firms], ``demand_shock`` (``eps``).
Deviations from Klemperer & Meyer: schedules are piecewise linear on a finite grid (their
strategies are any smooth functions), and negative quantities (a firm buying) are allowed.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dcgenv import checks, spaces
from dcgenv.core import EnvParams as BaseParams
from dcgenv.core import EnvState as BaseState
from dcgenv.core import MultiAgentEnv, normal, param
from dcgenv.registry import register


@struct.dataclass
class EnvState(BaseState):
    z: jax.Array  # the demand shock's standard normal draw (eps = eps_mean + eps_std z), unobserved


@struct.dataclass
class EnvParams(BaseParams):
    gamma: float = param(1.0, 0.0, low_open=True)  # demand D(p) = eps - gamma p
    cost: float = param(1.0, 0.0)  # quadratic cost cost * q^2 / 2
    eps_mean: float = param(10.0)  # eps ~ N(eps_mean, eps_std^2)
    eps_std: float = param(2.0, 0.0)
    price_min: float = param(0.0)  # the price grid, linspace(price_min, price_max, grid_size)
    price_max: float = param(10.0)
    quantity_limit: float = param(1e6, 0.0, low_open=True)  # schedule entries clipped to +-this
    max_steps_in_episode: int = param(1, 1)  # informational: every episode is one step

    def validate(self, owner: str | None = None) -> EnvParams:
        super().validate(owner)
        lo, hi = self.price_min, self.price_max
        if not any(isinstance(v, jax.core.Tracer) for v in (lo, hi)):
            if not np.all(np.asarray(lo) < np.asarray(hi)):
                raise ValueError(f"{owner or 'SupplyFunction'}: params need price_min < "
                                 f"price_max (the price grid), got price_min={lo}, "
                                 f"price_max={hi}")
        return self


def price_grid(params: EnvParams, grid_size: int) -> jax.Array:
    """The grid the schedules are read on (an empty grid inside ``jit`` is widened to 1)."""
    hi = jnp.where(params.price_max > params.price_min, params.price_max, params.price_min + 1)
    return jnp.linspace(params.price_min, hi, grid_size)


def clear(schedules: jax.Array, prices: jax.Array, eps: jax.Array, gamma: jax.Array):
    """Exact clearing: ``(p*, q)`` with ``sum(q) = eps - gamma p*``, ``q[i] = S_i(p*)``, for
    non-decreasing ``schedules`` f[N, K] on the uniform grid ``prices`` f[K] (extended
    linearly beyond it) and ``gamma > 0``."""
    excess = schedules.sum(0) - (eps - gamma * prices)  # strictly increasing in k
    seg = jnp.clip(jnp.sum(excess < 0) - 1, 0, len(prices) - 2)  # segment holding the root
    q0, q1 = schedules[:, seg], schedules[:, seg + 1]
    h = prices[seg + 1] - prices[seg]
    # the segment's rise, summed from differences (excess[seg + 1] - excess[seg] would cancel
    # catastrophically when the schedules are large: float32's ulp at 1e6 is 0.06); >= gamma h
    # > 0, unless float32 rounding merged grid points (h = 0)
    rise = jnp.sum(q1 - q0) + gamma * h
    t = jnp.where(rise > 0, -excess[seg] / jnp.where(rise > 0, rise, 1.0), 0.0)  # <0, >1: beyond
    return prices[seg] + t * h, q0 + t * (q1 - q0)


class SupplyFunction(MultiAgentEnv):
    def __init__(self, num_firms: int = 2, grid_size: int = 11):
        self.num_firms = checks.integer("SupplyFunction", "num_firms", num_firms, low=1)
        self.grid_size = checks.integer("SupplyFunction", "grid_size", grid_size, low=2)
        self.agents = tuple(f"firm_{i}" for i in range(self.num_firms))

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        return EnvState(time=jnp.zeros((), jnp.int32), z=normal(key))

    def step_env(self, key: jax.Array, state: EnvState, actions: jax.Array, params: EnvParams):
        # the barrier keeps the product out of an FMA that vmap and a loop could round apart
        eps = params.eps_mean + jax.lax.optimization_barrier(params.eps_std * state.z)
        q = jnp.asarray(actions, eps.dtype)
        q = jnp.clip(jnp.where(jnp.isfinite(q), q, 0.0), -params.quantity_limit,
                     params.quantity_limit)
        schedules = jax.lax.cummax(q, axis=1)  # non-decreasing by construction
        gamma = jnp.maximum(params.gamma, 1e-6)
        price, sold = clear(schedules, price_grid(params, self.grid_size), eps, gamma)
        reward = price * sold - params.cost * sold**2 / 2
        info = {"price": price, "quantities": sold, "demand_shock": eps}
        return state, reward, jnp.ones((), bool), info

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.zeros((), bool)  # every episode terminates after its one step

    def get_obs(self, state: EnvState, params: EnvParams) -> dict[str, jax.Array]:
        prices = price_grid(params, self.grid_size).astype(state.z.dtype)
        return {"prices": jnp.broadcast_to(prices, (self.num_firms, self.grid_size)),
                "firm": jnp.arange(self.num_firms, dtype=jnp.int32)}

    def observation_space(self, params: EnvParams | None = None) -> spaces.Dict:
        return spaces.Dict({"prices": spaces.Normal((self.grid_size,)),
                            "firm": spaces.Discrete(self.num_firms)})

    def action_space(self, params: EnvParams | None = None) -> spaces.Normal:
        return spaces.Normal((self.grid_size,))


def sfe_slope(num_firms, gamma, cost):
    """Klemperer & Meyer's symmetric linear SFE slope: the positive root of
    ``cost (N-1) b^2 + (cost gamma + 2 - N) b - gamma = 0``, written ``2 gamma / (B + sqrt(B^2 +
    4 cost (N-1) gamma))`` with ``B = cost gamma + 2 - N`` (stable, and ``gamma / (cost gamma +
    1)`` for one firm); ``inf`` where no finite SFE exists (``cost = 0``, N >= 2)."""
    n, g, c = (jnp.asarray(a, jnp.result_type(float)) for a in (num_firms, gamma, cost))
    b = c * g + 2 - n
    return 2 * g / (b + jnp.sqrt(b**2 + 4 * c * (n - 1) * g))


def sfe_profit(num_firms, gamma, cost, eps_mean, eps_std, slope=None, others=None):
    """Expected profit of a firm with linear schedule ``slope p`` (default: the SFE slope)
    while the others play ``others p`` (default: the SFE slope): ``p* = eps / (gamma + slope +
    (N-1) others)``, so the profit ``slope (1 - cost slope / 2) p*^2`` has expectation
    ``slope (1 - cost slope / 2) (eps_mean^2 + eps_std^2) / (gamma + slope + (N-1) others)^2``."""
    beta = sfe_slope(num_firms, gamma, cost)
    b = beta if slope is None else slope
    o = beta if others is None else others
    return (b * (1 - cost * b / 2) * (eps_mean**2 + eps_std**2)
            / (gamma + b + (num_firms - 1) * o) ** 2)


register("SupplyFunction-v0", SupplyFunction)
