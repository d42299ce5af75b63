"""Information sharing in a Cournot oligopoly (Vives 1984; Gal-Or 1985, 1986; Shapiro 1986).

Rules: ``num_firms`` firms (a constructor argument, 2 by default) face the linear inverse demand
``P = a + theta_d - b Q``, ``Q = sum_j q_j``, and firm ``i`` has the constant marginal cost
``c_i = c + theta_c,i``. The constructor argument ``uncertainty`` picks what is random:

- ``"demand"`` (default): a common intercept shock ``theta_d = theta ~ N(0, sigma_theta^2)``;
  costs are ``c`` for all;
- ``"cost"``: private costs, ``theta_c,i = theta_i`` i.i.d. ``N(0, sigma_theta^2)``; the
  intercept is ``a``.

Firm ``i`` privately observes the signal ``s_i = theta_i + e_i`` (``theta_i = theta`` under
demand uncertainty), ``e_i`` i.i.d. ``N(0, sigma_e^2)``. Step 0 (disclosure, committed before
the signals are seen, as in the literature): each firm chooses a disclosure level ``d_i`` in
``[0, 1]``; its message is the garbled copy ``m_i = d_i s_i + (1 - d_i) sigma_s xi_i``
(``sigma_s^2 = sigma_theta^2 + sigma_e^2``, ``xi_i ~ N(0, 1)``), so ``d_i = 1`` shares the
signal exactly, ``d_i = 0`` sends pure noise, and ``m_i / d_i`` is ``s_i`` plus noise of std
``sigma_s (1 - d_i) / d_i`` in between; ``m`` is differentiable in ``d``. The messages go
through ``channel`` (a ``dcgenv.comms`` channel, ``Continuous()`` by default: exact) to every
firm. Step 1 (quantities): each firm sees its own signal, all messages and all disclosure
levels, and chooses ``q_i``; it earns ``(P - c_i) q_i`` and the episode terminates (both
rewards are 0 at step 0). All draws are made at reset, so an episode is a differentiable
function of the disclosures and quantities.

Equilibria of stage 2 (:func:`equilibrium`), for the polar disclosure profiles (nobody shares,
``d = 0``; everybody shares, ``d = 1``). With ``t = sigma_theta^2 / sigma_s^2`` (the weight of a
signal in ``E[theta_i | s_i] = t s_i``), ``A = (a - c) / (b (N + 1))`` and linear strategies
``q_i = alpha + beta s_i + gamma sum_{j != i} m_j``, the linear Bayesian-Nash equilibrium has
``alpha = A`` and (``s2 = sigma_theta^2``; the last item is ``E[profit] - b A^2``):

- demand, none: ``beta = t / (b (2 + (N-1) t))``, ``gamma = 0``, ``t s2 / (b (2 + (N-1) t)^2)``;
- demand, full: ``beta = gamma = t / (b (N+1) (1 + (N-1) t))``,
  ``N t s2 / (b (N+1)^2 (1 + (N-1) t))``;
- cost, none: ``beta = -t / (2 b)``, ``gamma = 0``, ``t s2 / (4 b)``;
- cost, full: ``beta = -N t / (b (N+1))``, ``gamma = t / (b (N+1))``,
  ``t s2 (N^2 + N - 1) / (b (N+1)^2)``.

Each follows from firm ``i``'s first-order condition
``q_i = E[P_-i - c_i | info_i] / (2 b)`` (``P_-i`` the price without its own quantity) and, at the
equilibrium, ``E[profit_i | info_i] = b q_i^2``, so ``E[profit] = b E[q^2]``. Sharing results:
under demand uncertainty every firm earns more when nobody shares than when everybody does
(strictly for ``sigma_e > 0``; Vives 1984, Gal-Or 1985); under cost uncertainty more when
everybody shares (``N^2 + N - 1 > (N+1)^2 / 4`` for ``N >= 2``; Shapiro 1986, Gal-Or 1986).
Only these two profiles are solved in closed form; partial and asymmetric disclosure is
playable but not solved here.

Parameters (``EnvParams``), with the ranges ``make`` and ``params.replace_checked`` enforce:
``a``, ``c`` finite, ``b`` > 0, ``sigma_theta`` > 0, ``sigma_e`` >= 0, ``quantity_limit`` > 0,
``max_steps_in_episode`` >= 1 (informational: every episode ends after step 1). Inside ``jit``,
where nothing is checked: negative ``sigma_theta``/``sigma_e`` mirror the draws, ``b <= 0`` is
used as given (demand not downward sloping) and non-finite params can give NaN.

Observation (per agent, a dict; agent-stacked): ``signal`` f32[1] (``s_i`` at step 1, 0 at step
0), ``messages`` f32[N] (what arrived of every firm's message, its own included; 0 at step 0),
``disclosure`` f32[N] (every firm's ``d``, public; 0 at step 0), ``stage`` int32 (0 disclosure,
1 quantity), ``firm`` int32 (its index). Actions: one float per firm (``Normal`` space): the
disclosure level at step 0, the quantity at step 1. Illegal actions, inside ``jit``: a
non-finite action is read as 0, disclosures are clipped to ``[0, 1]`` and quantities to
``[-quantity_limit, quantity_limit]`` (negative quantities are allowed: the linear equilibria
above take them). ``info``: ``price`` (0 at step 0), ``quantities`` f32[N] and ``costs`` f32[N]
(0 at step 0), ``intercept`` (``a + theta_d``), ``bits`` (the messages' cost on the wire at
step 0, 0 at step 1).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from dcgenv import checks, comms, spaces
from dcgenv.core import EnvParams as BaseParams
from dcgenv.core import EnvState as BaseState
from dcgenv.core import MultiAgentEnv, normal, param
from dcgenv.registry import register

NAME = "CournotInfoSharing"
UNCERTAINTY = ("demand", "cost")
CONTINUOUS = comms.Continuous()  # the default channel: exact, 32 bits a message
_bar = jax.lax.optimization_barrier  # keeps products out of FMAs that vmap and a loop round apart


@struct.dataclass
class EnvState(BaseState):
    z_theta: jax.Array  # standard normals of the shock: f[1] (demand, common) or f[N] (cost)
    z_e: jax.Array  # f[N] standard normals of the signal noise
    xi: jax.Array  # f[N] standard normals of the disclosure garbling
    disclosure: jax.Array  # f[N] d (0 until step 0)
    messages: jax.Array  # f[N] what arrived through the channel (0 until step 0)


@struct.dataclass
class EnvParams(BaseParams):
    a: float = param(3.0)  # inverse demand P = a + theta_d - b Q
    b: float = param(1.0, 0.0, low_open=True)
    c: float = param(0.0)  # marginal cost c_i = c + theta_c,i
    sigma_theta: float = param(1.0, 0.0, low_open=True)  # theta ~ N(0, sigma_theta^2)
    sigma_e: float = param(1.0, 0.0)  # s_i = theta_i + e_i, e_i ~ N(0, sigma_e^2)
    quantity_limit: float = param(1e6, 0.0, low_open=True)  # quantities clipped to +-this
    max_steps_in_episode: int = param(2, 1)  # informational: the game always ends after step 1


class CournotInfoSharing(MultiAgentEnv):
    def __init__(self, num_firms: int = 2, uncertainty: str = "demand",
                 channel: comms.Channel | str = CONTINUOUS, channel_train: bool = False):
        self.num_firms = checks.integer(NAME, "num_firms", num_firms, low=2)
        self.uncertainty = checks.choice(NAME, "uncertainty", uncertainty, UNCERTAINTY)
        channel = comms.as_channel(NAME, channel)
        self.channel = channel
        self.channel_train = checks.flag(NAME, "channel_train", channel_train)
        self.agents = tuple(f"firm_{i}" for i in range(self.num_firms))

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        k_theta, k_e, k_xi = jax.random.split(key, 3)
        n = self.num_firms
        zeros = jnp.zeros(n, jnp.result_type(float))
        return EnvState(time=jnp.zeros((), jnp.int32),
                        z_theta=normal(k_theta, (1 if self.uncertainty == "demand" else n,)),
                        z_e=normal(k_e, (n,)), xi=normal(k_xi, (n,)), disclosure=zeros,
                        messages=zeros)

    def shocks_and_signals(self, state: EnvState, params: EnvParams):
        """``(theta, s)``: every firm's shock ``theta_i`` (all equal under demand uncertainty)
        and signal ``s_i = theta_i + e_i``, f[N] each."""
        theta = jnp.broadcast_to(_bar(params.sigma_theta * state.z_theta), (self.num_firms,))
        return theta, theta + _bar(params.sigma_e * state.z_e)

    def step_env(self, key: jax.Array, state: EnvState, actions: jax.Array, params: EnvParams):
        theta, s = self.shocks_and_signals(state, params)
        act = jnp.asarray(actions, s.dtype)
        act = jnp.where(jnp.isfinite(act), act, 0.0)
        first = state.time == 0
        # step 0: disclosure and messages
        d = jnp.clip(act, 0.0, 1.0)
        sigma_s = jnp.sqrt(params.sigma_theta**2 + params.sigma_e**2)
        m = _bar(d * s) + _bar((1.0 - d) * _bar(sigma_s * state.xi))
        m_hat, stats = self.channel.send(key, m, train=self.channel_train)
        disclosure = jnp.where(first, d, state.disclosure)
        messages = jnp.where(first, m_hat.astype(s.dtype), state.messages)
        # step 1: quantities and profits
        q = jnp.where(first, 0.0, jnp.clip(act, -params.quantity_limit, params.quantity_limit))
        demand = self.uncertainty == "demand"
        intercept = params.a + (theta[0] if demand else 0.0)
        costs = params.c + (jnp.zeros_like(theta) if demand else theta)
        total = sum(q[i] for i in range(self.num_firms))  # a fixed order: jnp.sum's may vary
        price = intercept - _bar(params.b * total)
        reward = jnp.where(first, 0.0, _bar((price - costs) * q))
        info = {"price": jnp.where(first, 0.0, price), "quantities": q,
                "costs": jnp.where(first, 0.0, costs), "intercept": intercept,
                "bits": jnp.where(first, stats["bits"], 0.0)}
        return state.replace(disclosure=disclosure, messages=messages), reward, ~first, info

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.zeros((), bool)  # the rules end every episode at step 1 (terminated)

    def get_obs(self, state: EnvState, params: EnvParams) -> dict[str, jax.Array]:
        n = self.num_firms
        _, s = self.shocks_and_signals(state, params)
        stage = jnp.minimum(state.time, 1).astype(jnp.int32)
        return {"signal": jnp.where(stage == 1, s, 0.0)[:, None],
                "messages": jnp.broadcast_to(state.messages, (n, n)),
                "disclosure": jnp.broadcast_to(state.disclosure, (n, n)),
                "stage": jnp.full(n, stage), "firm": jnp.arange(n, dtype=jnp.int32)}

    def observation_space(self, params: EnvParams | None = None) -> spaces.Dict:
        n = self.num_firms
        return spaces.Dict({"signal": spaces.Normal((1,)), "messages": spaces.Normal((n,)),
                            "disclosure": spaces.Box(0.0, 1.0, (n,), jnp.float32),
                            "stage": spaces.Discrete(2), "firm": spaces.Discrete(n)})

    def action_space(self, params: EnvParams | None = None) -> spaces.Normal:
        return spaces.Normal(())


def equilibrium(env: CournotInfoSharing, params: EnvParams, *, share: bool) -> dict[str, jax.Array]:
    """The stage-2 linear Bayesian-Nash equilibrium of ``env`` when nobody (``share=False``,
    all ``d = 0``) or everybody (``share=True``, all ``d = 1``) discloses: ``q_i = alpha +
    beta s_i + gamma sum_{j != i} m_j``, and each firm's expected ``profit`` (the table in the
    module docstring)."""
    n = env.num_firms
    a, b, c = (jnp.asarray(x, jnp.result_type(float)) for x in (params.a, params.b, params.c))
    s2 = jnp.asarray(params.sigma_theta, a.dtype) ** 2
    t = s2 / (s2 + jnp.asarray(params.sigma_e, a.dtype) ** 2)
    alpha = (a - c) / (b * (n + 1))
    if env.uncertainty == "demand" and not share:
        beta, gamma = t / (b * (2 + (n - 1) * t)), jnp.zeros_like(t)
        var = t * s2 / (b * (2 + (n - 1) * t) ** 2)
    elif env.uncertainty == "demand":
        beta = gamma = t / (b * (n + 1) * (1 + (n - 1) * t))
        var = n * t * s2 / (b * (n + 1) ** 2 * (1 + (n - 1) * t))
    elif not share:
        beta, gamma = -t / (2 * b), jnp.zeros_like(t)
        var = t * s2 / (4 * b)
    else:
        beta, gamma = -n * t / (b * (n + 1)), t / (b * (n + 1))
        var = t * s2 * (n**2 + n - 1) / (b * (n + 1) ** 2)
    return {"alpha": alpha, "beta": beta, "gamma": gamma, "profit": b * alpha**2 + var}


register("CournotInfoSharing-v0", CournotInfoSharing)
