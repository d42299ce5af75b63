"""Kyle's (1985) insider-trading model: one auction, or ``auctions`` sequential ones.

Rules (one auction, the default): the asset's value is ``v ~ N(p0, sigma0^2)`` (``sigma0`` is a
*standard deviation*: Kyle's prior variance is ``Sigma0 = sigma0^2``). Step 0: the insider sees
``v`` and submits an order ``x``. Noise traders submit ``u ~ N(0, sigma_u^2)``. Step 1: the
market maker sees only the order flow ``y = x + u`` and quotes the price ``p`` at which the
whole flow is executed; the episode terminates. Rewards come at step 1 (both are 0 at step 0):

- insider: its trading profit ``(v - p) x``;
- market maker: ``-(p - v)^2``. Kyle's market maker is competitive: free entry drives its
  expected profit to zero, ``p = E[v | y]``. A reward whose optimum is that price is the
  squared pricing error (the posterior mean minimises it), so the competitive market maker is
  modelled as minimising its pricing error (as in the learning literature on Kyle's model);
  its trading profit ``(p - v) y`` (it takes the other side of the flow) is in ``info`` as
  ``mm_profit``, zero in expectation at the equilibrium.

Sequential auctions (``auctions = N``, a constructor argument; ``Kyle-sequential-v0`` has N = 4):
Kyle's Section 3 model with equally spaced auctions over one trading day (``dt = 1 / N``). The
episode has ``2N`` steps; auction ``n`` (``n = 0 .. N-1``) is steps ``2n`` (the insider orders
``x_n``) and ``2n + 1`` (the market maker sees ``y_n = x_n + u_n`` and quotes ``p_n``, the
price at which that auction's flow executes). The noise orders ``u_n ~ N(0, sigma_u^2 dt)`` are
independent (a Brownian motion of variance ``sigma_u^2`` per day, sampled at the auctions), so
the total noise is that of the one-auction game. Rewards at step ``2n + 1``: the insider
``(v - p_n) x_n``, the market maker ``-(p_n - v)^2`` (one competitive market maker per
auction: a learner should differentiate auction ``n``'s pricing error in its auction-``n``
price only). Every agent sees the last price ``p_{n-1}`` (``p0`` before the first auction).

Equilibrium. One auction (Kyle 1985, Econometrica 53(6), Theorem 1; :func:`equilibrium`): the
unique linear one is ``x = beta (v - p0)``, ``p = p0 + lambda y`` with ``beta = sigma_u /
sigma0`` and ``lambda = sigma0 / (2 sigma_u)``. The insider's expected profit is ``sigma_u
sigma0 / 2``, the market maker's expected pricing error ``Var(v | y) = sigma0^2 / 2`` (half
the private information is revealed) and its expected trading profit 0. Sequential auctions
(Kyle's Theorem 2; :func:`sequential_equilibrium`): ``x_n = b_n (v - p_{n-1})``, ``p_n =
p_{n-1} + lambda_n y_n``, with ``b_n`` (Kyle's ``beta_n dt``), ``lambda_n`` and the posterior
variances ``Sigma_n = Var(v | y_0 .. y_n)`` from his difference equations, solved backwards
from the last auction and matched to ``Sigma0`` by bisection. The insider's expected profit
rises with N towards ``sigma_u sigma0`` (the continuous-auction limit, his Theorem 3). The
timing (the market maker prices after seeing ``y``, with every ``u`` drawn at reset) makes an
episode a differentiable function of both strategies: ``jax.grad`` of either reward passes
through ``reset``/``step`` to both actions.

Parameters (``EnvParams``), with the ranges ``make`` and ``params.replace_checked`` enforce:
``p0`` any finite number (the prior mean), ``sigma0`` > 0 and ``sigma_u`` > 0 (standard
deviations; 0 makes the game degenerate: no private information or no noise to hide in),
``action_limit`` > 0, ``max_steps_in_episode`` >= 1 (informational: the rules end every
episode after ``2N`` steps). Inside ``jit``, where nothing is checked, a negative ``sigma0``
or ``sigma_u`` mirrors the draws (the distribution of its absolute value); ``action_limit`` <=
0 sets both actions to ``action_limit``.

Observation (per agent, a dict; agent-stacked in ``obs``):

========== ======= ==========================================================================
``signal``  f32[1]  ``v`` for the insider at its turn, ``y_n`` for the market maker at its
                    turn, else 0
``p0``      f32     the prior mean (common knowledge), so a linear policy needs no params
``price``   f32     the last quoted price ``p_{n-1}`` (``p0`` before the first auction)
``auction`` int32   the current auction ``n`` (0 .. N-1)
``active``  bool    whether it is this agent's turn (its action is used)
``role``    int32   0 = insider, 1 = market maker
========== ======= ==========================================================================

Actions: one float per agent (``actions`` is f32[2]: the insider's order, the market maker's
price); the inactive agent's is ignored. Illegal actions, inside ``jit``: a non-finite action
is read as 0 and actions are clipped to ``[-action_limit, action_limit]`` (1e6 by default).
``info``: ``order_flow`` (``y_n``, 0 at the insider's steps), ``price`` (``p_n``, 0 at the
insider's steps), ``mm_profit`` (``(p_n - v) y_n``). Deviation from Kyle: the market maker is
an agent with the pricing-error reward above rather than a zero-profit pricing rule (at the
equilibrium the two coincide).
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
    v: jax.Array  # the asset's value, seen by the insider
    u: jax.Array  # the noise traders' orders: f[N] (a scalar for one auction)
    x: jax.Array  # the insider's order in the current auction (0 until it acts)
    price: jax.Array  # the last quoted price (p0 before the first auction)


@struct.dataclass
class EnvParams(BaseParams):
    p0: float = param(0.0)  # prior mean of v
    sigma0: float = param(1.0, 0.0, low_open=True)  # v ~ N(p0, sigma0^2): a std, Sigma0 = sigma0^2
    sigma_u: float = param(1.0, 0.0, low_open=True)  # noise per day: u_n ~ N(0, sigma_u^2 / N)
    action_limit: float = param(1e6, 0.0, low_open=True)  # actions clipped to +-this
    max_steps_in_episode: int = param(2, 1)  # informational: the game always ends after 2N steps


class Kyle(MultiAgentEnv):
    agents = ("insider", "market_maker")
    turn_based = True  # obs["active"] is whose turn it is

    def __init__(self, auctions: int = 1):
        self.auctions = checks.integer("Kyle", "auctions", auctions, low=1)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=2 * self.auctions)

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        kv, ku = jax.random.split(key)
        # the barrier keeps the product out of an FMA that vmap and a loop would round apart
        v = params.p0 + jax.lax.optimization_barrier(params.sigma0 * normal(kv))
        shape = () if self.auctions == 1 else (self.auctions,)
        u = params.sigma_u * normal(ku, shape)
        if self.auctions > 1:  # variance sigma_u^2 dt per auction, dt = 1 / N
            u = u * np.sqrt(1.0 / self.auctions)
        return EnvState(time=jnp.zeros((), jnp.int32), v=v, u=u, x=jnp.zeros_like(v),
                        price=jnp.full_like(v, params.p0))

    def step_env(self, key: jax.Array, state: EnvState, actions: jax.Array, params: EnvParams):
        actions = jnp.asarray(actions, state.v.dtype)
        actions = jnp.clip(jnp.where(jnp.isfinite(actions), actions, 0.0),
                           -params.action_limit, params.action_limit)
        ordering = state.time % 2 == 0  # the insider's step of the current auction
        x = jnp.where(ordering, actions[0], state.x)
        y = jnp.where(ordering, 0.0, x + self._noise(state))
        p = jnp.where(ordering, 0.0, actions[1])
        insider = jnp.where(ordering, 0.0, (state.v - p) * x)
        pricing_error = jnp.where(ordering, 0.0, (p - state.v) ** 2)
        reward = jnp.stack([insider, -pricing_error])
        mm_profit = jnp.where(ordering, 0.0, (p - state.v) * y)
        info = {"order_flow": y, "price": p, "mm_profit": mm_profit}
        state = state.replace(x=jnp.where(ordering, x, 0.0),
                              price=jnp.where(ordering, state.price, p))
        return state, reward, state.time == 2 * self.auctions - 1, info

    def _noise(self, state: EnvState) -> jax.Array:
        """The current auction's noise order."""
        if self.auctions == 1:
            return state.u
        return state.u[jnp.minimum(state.time // 2, self.auctions - 1)]

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.zeros((), bool)  # the rules end every episode after 2N steps (terminated)

    def get_obs(self, state: EnvState, params: EnvParams) -> dict[str, jax.Array]:
        ordering, live = state.time % 2 == 0, state.time < 2 * self.auctions
        active = jnp.stack([ordering, ~ordering]) & live  # nobody's turn once the game is over
        signal = jnp.where(active, jnp.stack([state.v, state.x + self._noise(state)]), 0.0)
        both = lambda value: jnp.full(2, value, state.v.dtype)
        auction = jnp.minimum(state.time // 2, self.auctions - 1)
        return {"signal": signal[:, None], "p0": both(params.p0), "price": both(state.price),
                "auction": jnp.full(2, auction, jnp.int32), "active": active,
                "role": jnp.arange(2, dtype=jnp.int32)}

    def observation_space(self, params: EnvParams | None = None) -> spaces.Dict:
        return spaces.Dict({"signal": spaces.Normal((1,)), "p0": spaces.Normal(()),
                            "price": spaces.Normal(()),
                            "auction": spaces.Discrete(self.auctions),
                            "active": spaces.Binary(), "role": spaces.Discrete(2)})

    def action_space(self, params: EnvParams | None = None) -> spaces.Normal:
        return spaces.Normal(())


def equilibrium(params: EnvParams) -> dict[str, jax.Array]:
    """Kyle's one-auction linear equilibrium for ``params``: ``beta``, ``lambda`` (``x = beta (v
    - p0)``, ``p = p0 + lambda y``), the expected ``insider_profit`` (``sigma_u sigma0 / 2``),
    the market maker's expected reward ``mm_reward`` (``-sigma0^2 / 2``) and ``mm_profit`` (0)."""
    s0, su = jnp.asarray(params.sigma0), jnp.asarray(params.sigma_u)
    return {"beta": su / s0, "lambda": s0 / (2 * su), "insider_profit": su * s0 / 2,
            "mm_reward": -(s0**2) / 2, "mm_profit": jnp.zeros_like(s0)}


def _backward(sigma_last: float, auctions: int, var_u: float) -> dict[str, np.ndarray]:
    """Kyle's difference equations (Theorem 2) from the last auction back, given ``Sigma_N``.

    For ``n = N .. 1`` (his indexing), with ``alpha_N = delta_N = 0`` and ``v_n = sigma_u^2
    dt``: ``lambda_n`` is the root in ``(0, 1 / (2 alpha_n))`` (unique, his second-order
    condition) of ``lambda^2 = Sigma_n (1 - 2
    alpha_n lambda) / (2 v_n (1 - alpha_n lambda))`` (his ``lambda_n = beta_n Sigma_n /
    sigma_u^2`` with ``beta_n dt = (1 - 2 alpha_n lambda_n) / (2 lambda_n (1 - alpha_n
    lambda_n))``); then ``Sigma_{n-1} = Sigma_n / (1 - beta_n dt lambda_n)``, ``alpha_{n-1} = 1
    / (4 lambda_n (1 - alpha_n lambda_n))``, ``delta_{n-1} = delta_n + alpha_n lambda_n^2
    v_n``."""
    dt = 1.0 / auctions
    vn = var_u * dt
    alpha, delta, sigma = 0.0, 0.0, sigma_last
    lam, b, sig = np.zeros(auctions), np.zeros(auctions), np.zeros(auctions)
    for n in range(auctions - 1, -1, -1):
        # the cubic -2 v a x^3 + 2 v x^2 + 2 s a x - s: negative at 0, positive at 1 / (2a)
        roots = np.roots([-2 * vn * alpha, 2 * vn, 2 * sigma * alpha, -sigma])
        top = 0.5 / alpha if alpha > 0 else np.inf
        real = roots.real[(np.abs(roots.imag) <= 1e-12 * np.abs(roots)) & (roots.real > 0)
                          & (roots.real < top)]
        lam[n] = real.min()
        b[n] = (1 - 2 * alpha * lam[n]) / (2 * lam[n] * (1 - alpha * lam[n]))
        sig[n] = sigma
        delta = delta + alpha * lam[n] ** 2 * vn
        alpha = 1 / (4 * lam[n] * (1 - alpha * lam[n]))
        sigma = sigma / (1 - b[n] * lam[n])
    return {"order_coef": b, "lambda": lam, "sigma2": sig, "alpha0": alpha, "delta0": delta,
            "prior_variance": sigma}


def sequential_equilibrium(params: EnvParams, auctions: int) -> dict[str, np.ndarray]:
    """Kyle's (1985, Theorem 2) linear equilibrium with ``auctions`` equally spaced auctions.

    Returns float64 arrays over the auctions ``n = 0 .. N-1``: ``order_coef`` (``b_n``:
    ``x_n = b_n (v - p_{n-1})``), ``lambda`` (``p_n = p_{n-1} + lambda_n y_n``), ``sigma2``
    (``Sigma_n = Var(v | y_0 .. y_n)``), and scalars ``insider_profit`` (its expected total
    profit ``alpha_0 Sigma0 + delta_0``) and ``mm_reward`` (the market maker's expected return,
    ``-sum_n Sigma_n``). ``Sigma_N`` is found by bisection so that the backward recursion
    (:func:`_backward`) ends at the prior variance ``sigma0^2``. With one auction it equals
    :func:`equilibrium`. Host-side (numpy), for concrete params."""
    auctions = checks.integer("sequential_equilibrium", "auctions", auctions, low=1)
    s0 = checks.real("sequential_equilibrium", "sigma0", float(params.sigma0), 0, low_open=True)
    su = checks.real("sequential_equilibrium", "sigma_u", float(params.sigma_u), 0, low_open=True)
    prior, var_u = s0**2, su**2
    lo, hi = 0.0, prior  # Sigma_N in (0, Sigma0); the implied prior increases with it
    for _ in range(80):  # bisection: 2^-80 of Sigma0 is below float64 resolution
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if _backward(mid, auctions, var_u)["prior_variance"] < prior else (
            lo, mid)
    eq = _backward((lo + hi) / 2, auctions, var_u)
    return {"order_coef": eq["order_coef"], "lambda": eq["lambda"], "sigma2": eq["sigma2"],
            "insider_profit": eq["alpha0"] * prior + eq["delta0"],
            "mm_reward": -float(np.sum(eq["sigma2"]))}


register("Kyle-v0", Kyle)
register("Kyle-sequential-v0", Kyle, auctions=4)
