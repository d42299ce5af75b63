"""Witsenhausen's counterexample with a bandwidth-limited side channel and a price per bit.

Rules: ``Witsenhausen-v0`` (``x0 ~ N(0, sigma^2)``; controller 1 sees ``x0`` and applies
``u1``, ``x1 = x0 + u1``; controller 2 sees ``y = x1 + w``, ``w ~ N(0, noise_std^2)``, and
applies ``u2``; cost ``k^2 u1^2 + (x1 - u2)^2``), except that at step 0 controller 1 also
sends a message ``z`` (``message_dim`` floats; logits ``[vocab_size]`` for
``comms.GumbelSoftmax``) through ``channel``, a ``dcgenv.comms`` channel (a constructor
argument), and controller 2 sees at step 1 what arrived, ``z_hat``, beside ``y``. The team
pays ``bit_cost`` per unit of the message's price, so the cost of one sample is
``k^2 u1^2 + bit_cost * price + (x1 - u2)^2``. ``price`` is the channel's ``stats["bits"]``
(the real coded length on the wire; the default, ``charge="bits"``) or its differentiable
surrogate ``stats["cost"]`` (``charge="cost"``; equal to the bits for fixed-rate channels).
The channel runs in evaluation mode (what is really sent) unless ``channel_train=True``.
The side channel is the "external channel" whose absence Doyle questioned; Grover et al.
("Is Witsenhausen's counterexample a relevant toy?", arXiv 1009.2528, 2010) argue that the
problem's core difficulty remains with one. Here the channel has a finite, priced rate.

Registered: ``Witsenhausen-channel-v0`` with ``channel=comms.DDCL(delta=1.0)`` (dithered
quantisation, Elias-gamma coded: the bits grow with the message's magnitude, so the sender
chooses its precision) and ``bit_cost = 0.01``.

References (tested in ``tests/test_witsenhausen_channel.py``):

- ``comms.Silent()``: exactly ``Witsenhausen-v0`` (same rewards and signals on the same keys
  and controls); every Witsenhausen-v0 reference cost holds (``witsenhausen_reference``).
  With any channel, controller 2 may ignore the message, so those costs plus
  ``bit_cost * price`` of the message sent are achievable.
- ``comms.Continuous()`` and ``bit_cost = 0``: ``u1 = 0``, ``z = x0``, ``u2 = z_hat`` costs
  exactly 0, the minimum.
- Quantise and forward (``u1 = 0``, ``z = x0``, ``u2 = z_hat``): the cost is the quantiser's
  mean squared error plus ``bit_cost`` times the bits. ``comms.FakeQuant(bits, low, high)``:
  :func:`fakequant_mse`, the exact MSE of that uniform quantiser of ``N(0, sigma^2)`` (a
  closed form in the Gaussian CDF and density, cell by cell); ``bits * message_dim`` bits.
  ``comms.DDCL(delta)``: the error of subtractive dithered quantisation is uniform on
  ``[-delta/2, delta/2]`` whatever the message (Schuchman 1964, IEEE Trans. Commun. Technol.
  12(4); Gray & Stockham 1993, IEEE Trans. Inf. Theory 39(3)), so the MSE is ``delta^2/12``;
  the expected bits are :func:`ddcl_expected_bits`.

Parameters (``EnvParams``): those of ``Witsenhausen-v0`` (``k`` >= 0, ``sigma`` > 0,
``noise_std`` > 0, ``action_limit`` > 0, ``max_steps_in_episode`` >= 1; the same behaviour
inside ``jit``) and ``bit_cost`` >= 0 (default 0.01). Inside ``jit``, where nothing is checked,
a negative ``bit_cost`` pays the team for every bit. Constructor arguments: ``channel``
(default ``comms.Continuous()``; the registered id sets DDCL), ``message_dim`` >= 1 (default
1), ``channel_train`` (bool, default False), ``charge`` (``"bits"`` or ``"cost"``).

Episode: step 0 is controller 1's (reward ``-(k^2 u1^2 + bit_cost * price)``), step 1
controller 2's (reward ``-(x1 - u2)^2``), then the episode terminates; both agents get the
team reward. ``info``: ``stage1_cost`` (``k^2 u1^2``), ``stage2_cost``, ``message_cost``
(``bit_cost * price``), ``bits`` (the channel's bits) and ``channel_cost`` (its ``cost``), all
0 on the step where they do not apply. ``x0``, ``w`` are drawn at reset as in
``Witsenhausen-v0``; the channel's noise comes from the step key. ``jax.grad`` of the episode
cost reaches ``u1``, ``u2`` and, through a continuous channel (``Continuous``, DDCL's
training map or straight-through), the message.

Observation (per agent, a dict; agent-stacked in ``obs``):

=========== ========== =============================================================
``signal``  f32[1]     ``x0`` for controller 1 at step 0, ``y`` for controller 2 at step 1, else 0
``message`` f32[*r]    ``z_hat`` for controller 2 at step 1, else 0
                       (``r = channel.received_shape(1, message_dim)[1:]``)
``active``  bool       whether it is this agent's turn
``role``    int32      0 = controller 1, 1 = controller 2
=========== ========== =============================================================

Actions (a dict, agent-stacked; the inactive agent's entries and controller 2's message are
ignored): ``control`` f32 (``u1`` or ``u2``) and ``message`` f32[*m]
(``m = channel.message_shape(1, message_dim)[1:]``). Illegal actions, inside ``jit``: controls
as in ``Witsenhausen-v0`` (non-finite read as 0, clipped to ``+-action_limit``); non-finite
message entries are read as 0 and messages are clipped to ``+-1e6``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dcgenv import checks, comms, spaces
from dcgenv.core import param
from dcgenv.envs import witsenhausen
from dcgenv.registry import register

NAME = "Witsenhausen-channel"
MESSAGE_LIMIT = 1e6  # messages are clipped to +-this
CHARGES = ("bits", "cost")
CONTINUOUS = comms.Continuous()  # the constructor's default channel: exact, 32 bits a float


@struct.dataclass
class EnvState(witsenhausen.EnvState):
    message: jax.Array  # f[*r] what arrived through the channel (0 until step 0)


@struct.dataclass
class EnvParams(witsenhausen.EnvParams):
    bit_cost: float = param(0.01, 0.0)  # the team pays bit_cost * price of the message


class WitsenhausenChannel(witsenhausen.Witsenhausen):
    def __init__(self, channel: comms.Channel | str = CONTINUOUS, message_dim: int = 1,
                 channel_train: bool = False, charge: str = "bits"):
        channel = comms.as_channel(NAME, channel)
        self.channel = channel
        message_dim = checks.integer(NAME, "message_dim", message_dim, low=1)
        self.channel_train = checks.flag(NAME, "channel_train", channel_train)
        self.charge = checks.choice(NAME, "charge", charge, CHARGES)
        self.message_shape = tuple(channel.message_shape(1, message_dim)[1:])
        self.received_shape = tuple(channel.received_shape(1, message_dim)[1:])

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        s = super().reset_env(key, params)  # the same x0, w as Witsenhausen-v0
        return EnvState(time=s.time, x0=s.x0, w=s.w, x1=s.x1,
                        message=jnp.zeros(self.received_shape, s.x0.dtype))

    def step_env(self, key: jax.Array, state: EnvState, actions: dict, params: EnvParams):
        first = state.time == 0
        state, reward, terminated, info = super().step_env(key, state, actions["control"], params)
        z = jnp.asarray(actions["message"][0], state.x0.dtype)
        z = jnp.clip(jnp.where(jnp.isfinite(z), z, 0.0), -MESSAGE_LIMIT, MESSAGE_LIMIT)
        z_hat, stats = self.channel.send(key, z, train=self.channel_train)
        bits = jnp.where(first, stats["bits"], 0.0)
        channel_cost = jnp.where(first, stats["cost"], 0.0)
        price = stats["bits"] if self.charge == "bits" else stats["cost"]
        # the select keeps the product out of an FMA with the subtraction below (a scan and
        # a single step would round apart)
        message_cost = jnp.where(first, params.bit_cost * price, 0.0)
        info = {**info, "message_cost": message_cost, "bits": bits, "channel_cost": channel_cost}
        message = jnp.where(first, z_hat.astype(state.message.dtype), state.message)
        return state.replace(message=message), reward - message_cost, terminated, info

    def get_obs(self, state: EnvState, params: EnvParams) -> dict[str, jax.Array]:
        obs = super().get_obs(state, params)
        hears = (obs["active"] & (obs["role"] == 1)).reshape(2, *(1,) * len(self.received_shape))
        return {**obs, "message": jnp.where(hears, state.message, 0.0)}

    def observation_space(self, params: EnvParams | None = None) -> spaces.Dict:
        return spaces.Dict({"signal": spaces.Normal((1,)),
                            "message": spaces.Normal(self.received_shape),
                            "active": spaces.Binary(), "role": spaces.Discrete(2)})

    def action_space(self, params: EnvParams | None = None) -> spaces.Dict:
        return spaces.Dict({"control": spaces.Normal(()),
                            "message": spaces.Normal(self.message_shape)})


# ---- closed forms ----------------------------------------------------------------------------
def _gauss_moments(a: float, b: float) -> tuple[float, float, float]:
    """``E[1], E[Z], E[Z^2]`` over ``a < Z < b`` for ``Z ~ N(0, 1)`` (float64)."""
    cdf = lambda t: 0.5 * math.erfc(-t / math.sqrt(2))
    pdf = lambda t: 0.0 if math.isinf(t) else math.exp(-t * t / 2) / math.sqrt(2 * math.pi)
    tpdf = lambda t: 0.0 if math.isinf(t) else t * pdf(t)
    p = cdf(b) - cdf(a)
    return p, pdf(a) - pdf(b), p - (tpdf(b) - tpdf(a))


def fakequant_mse(bits: int, low: float, high: float, sigma: float = 5.0) -> float:
    """Exact ``E[(X - Q(X))^2]`` for ``X ~ N(0, sigma^2)`` and ``Q`` the
    ``comms.FakeQuant(bits, low, high)`` quantiser: levels ``c_j = low + j s``,
    ``s = (high - low) / (2^bits - 1)``, cells ``[c_j - s/2, c_j + s/2]`` (the end cells reach
    to -+inf); per cell ``E[(X - c)^2; cell] = sigma^2 E[Z^2] - 2 sigma c E[Z] + c^2 P``
    (truncated-Gaussian moments, :func:`math.erfc`)."""
    q = comms.FakeQuant(bits, low, high)  # checks the arguments as the channel does
    if not (math.isfinite(sigma) and sigma > 0):
        raise ValueError(f"fakequant_mse: sigma must be a finite number > 0, got {sigma!r}")
    n, step = 2**q.bits, (q.high - q.low) / (2**q.bits - 1)
    levels = q.low + step * np.arange(n)
    edges = np.concatenate([[-np.inf], levels[:-1] + step / 2, [np.inf]])
    total = 0.0
    for c, a, b in zip(levels, edges[:-1], edges[1:], strict=True):
        p, m1, m2 = _gauss_moments(a / sigma, b / sigma)
        total += sigma**2 * m2 - 2 * sigma * c * m1 + c**2 * p
    return float(total)


def ddcl_mse(delta: float) -> float:
    """``delta^2 / 12``: the MSE of ``comms.DDCL(delta)`` in evaluation mode for any message
    (the subtractive-dither error is uniform on ``[-delta/2, delta/2]``)."""
    return delta**2 / 12


def ddcl_expected_bits(delta: float, sigma: float = 5.0, scale: float = 1.0,
                       num: int = 400_001) -> float:
    """Expected Elias-gamma bits of ``comms.DDCL(delta)`` sending ``z = scale * x0``,
    ``x0 ~ N(0, sigma^2)``: given ``t = z / delta`` the symbol is ``floor(t)`` or
    ``floor(t) + 1`` with the linear-interpolation weights (so ``P(m = j | t) = max(0, 1 -
    |t - j|)``); the weights are integrated against the Gaussian density by the trapezoid
    rule on ``num`` points over ``+-12`` standard deviations (error below 1e-9 here)."""
    s = abs(scale) * sigma / delta  # t ~ N(0, s^2)
    t = np.linspace(-12 * s, 12 * s, num)
    dens = np.exp(-0.5 * (t / s) ** 2) / (s * math.sqrt(2 * math.pi))
    lo = np.floor(t)
    frac = t - lo

    def length(m):  # zig-zag then Elias gamma: 2 floor(log2 n) + 1 bits, n >= 1
        n = np.where(m >= 0, 2 * m + 1, -2 * m)
        return 2 * (np.frexp(n)[1] - 1) + 1  # frexp: n = f 2^e, f in [1/2, 1), exact

    bits = (1 - frac) * length(lo) + frac * length(lo + 1)
    return float(np.trapezoid(dens * bits, t))


register(f"{NAME}-v0", WitsenhausenChannel, channel=comms.DDCL(delta=1.0))
