"""The vector Witsenhausen counterexample of dimension ``m``, with lattice reference policies.

Rules (Grover & Sahai 2010, "Witsenhausen's counterexample as assisted interference
suppression", Int. J. Systems, Control and Communications 2(1/2/3); Grover, Park & Sahai 2013,
"Approximately optimal solutions to the finite-dimensional Witsenhausen counterexample", IEEE
TAC 58(9)): ``x0 ~ N(0, sigma^2 I_m)``. Controller 1 sees ``x0`` and applies ``u1`` in R^m;
``x1 = x0 + u1``. Controller 2 sees ``y = x1 + w``, ``w ~ N(0, noise_std^2 I_m)``, and applies
``u2`` in R^m. The cost of one sample is normalised per dimension, as in those papers,
``(1/m) (k^2 ||u1||^2 + ||x1 - u2||^2)``; with ``m = 1`` it is ``Witsenhausen-v0`` (the same
draws from the same key, the same observations and rewards for the same actions, up to the last
bit: XLA compiles the two programs apart, and a draw can round differently by one ulp). Constructor
argument ``dim`` = m >= 1 (an integer; anything else is a ``ValueError``).

Episode, rewards and ``info`` as in ``Witsenhausen-v0``: step 0 is controller 1's move (reward
``-k^2 ||u1||^2 / m``), step 1 controller 2's (reward ``-||x1 - u2||^2 / m``), then the episode
terminates; both agents get the team reward; ``info``: ``stage1_cost``, ``stage2_cost``. ``x0``
and ``w`` are drawn at reset, so ``jax.grad`` of the episode cost passes through
``reset``/``step`` to both controllers' actions.

Observation (per agent, a dict; agent-stacked in ``obs``):

========= ======= =============================================================
``signal`` f32[m]  ``x0`` for controller 1 at step 0, ``y`` for controller 2 at step 1, else 0
``active`` bool    whether it is this agent's turn (its action is used)
``role``   int32   0 = controller 1, 1 = controller 2
========= ======= =============================================================

Actions: f32[m] per agent (``actions`` is f32[2, m]); the inactive agent's is ignored. Inside
``jit``, non-finite entries are read as 0 and entries are clipped to ``[-action_limit,
action_limit]``. Parameters, their ranges and what out-of-range traced values do: exactly as
``Witsenhausen-v0`` (``k`` >= 0, ``sigma`` > 0, ``noise_std`` > 0, ``action_limit`` > 0; a
negative ``k`` acts as ``|k|``, a negative ``sigma``/``noise_std`` mirrors the draws,
``action_limit`` <= 0 sets every entry to ``action_limit``).

Reference policies and closed forms (tested in ``tests/test_witsenhausen_vector.py``):

- affine, ``x1 = lam x0`` and controller 2's linear estimate, coordinate by coordinate: the
  per-dimension cost is the scalar closed form :func:`affine_cost` (Witsenhausen 1968), whatever
  ``m``;
- lattice quantisation (Grover, Park & Sahai 2013): controller 1 moves ``x0`` to the nearest
  point of ``scale * L``, controller 2 decodes ``y`` to the nearest point
  (:func:`lattice_quantizer`, :func:`lattice_policy`), for ``L`` = ``Z^m``, the hexagonal
  ``A2``, ``D4`` and ``E8`` (used in blocks when ``m`` is a multiple of their dimension),
  with the nearest-point algorithms of Conway & Sloane 1982 ("Fast quantizing and decoding
  algorithms for lattice quantizers and codes", IEEE TIT 28(2)). Because ``Q(x1 + w) = x1 +
  Q(w)`` for a lattice point ``x1``, the cost per dimension is ``k^2 E||x0 - Q(x0)||^2 / m +
  E||Q(w)||^2 / m``; for ``Z^m`` it is the scalar quantiser's, in closed form
  (:func:`integer_lattice_cost`). :data:`NORMALIZED_SECOND_MOMENT` holds each lattice's
  ``G`` (Conway & Sloane, "Sphere Packings, Lattices and Groups", Table 2.3): at high
  resolution the first-stage error per dimension is ``G V^(2/m)`` for cell volume ``V``;
- the ``m -> infinity`` limit of :func:`asymptotic_cost` (see there).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dcgenv import checks, spaces
from dcgenv.core import EnvState as BaseState
from dcgenv.core import MultiAgentEnv, normal
from dcgenv.envs.witsenhausen import EnvParams, step_controllers
from dcgenv.envs.witsenhausen_reference import (  # noqa: F401  (re-exported: per coordinate)
    affine,
    affine_cost,
    best_affine_lambdas,
)
from dcgenv.registry import register

NAME = "WitsenhausenVector"
LATTICE_DIM = {"Z": 1, "A2": 2, "D4": 4, "E8": 8}
# G = E||e||^2 / (m V^(2/m)) of the Voronoi cell; Conway & Sloane, SPLAG, Table 2.3
NORMALIZED_SECOND_MOMENT = {"Z": 1 / 12, "A2": 5 / (36 * math.sqrt(3)), "D4": 0.0766032,
                            "E8": 0.0716821}


def _mean_square(v: jax.Array) -> jax.Array:
    """``mean(v**2)``, summed in ascending order. The sort also keeps the squares out of the
    sum's fusion: fused, XLA:CPU contracts them into FMAs in some programs (a lone step) and
    not in others (a scan), which round apart in the last bit."""
    return jnp.sum(jnp.sort(v * v)) / v.shape[-1]


@struct.dataclass
class EnvState(BaseState):
    x0: jax.Array  # f[m] initial state
    w: jax.Array  # f[m] controller 2's observation noise
    x1: jax.Array  # f[m] state after controller 1 (equals x0 until it acts)


class WitsenhausenVector(MultiAgentEnv):
    agents = ("controller_1", "controller_2")

    def __init__(self, dim: int = 2):
        self.dim = checks.integer(NAME, "dim", dim, low=1)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        k0, kw = jax.random.split(key)
        x0 = params.sigma * normal(k0, (self.dim,))
        w = params.noise_std * normal(kw, (self.dim,))
        return EnvState(time=jnp.zeros((), jnp.int32), x0=x0, w=w, x1=x0)

    def step_env(self, key: jax.Array, state: EnvState, actions: jax.Array, params: EnvParams):
        # Witsenhausen-v0's step (action handling, costs, info), per-dimension mean of squares
        return step_controllers(state, actions, params, _mean_square)

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.zeros((), bool)  # the rules end every episode at step 1 (terminated)

    def get_obs(self, state: EnvState, params: EnvParams) -> dict[str, jax.Array]:
        active = jnp.stack([state.time == 0, state.time == 1])
        signal = jnp.where(active[:, None], jnp.stack([state.x0, state.x1 + state.w]), 0.0)
        return {"signal": signal, "active": active, "role": jnp.arange(2, dtype=jnp.int32)}

    def observation_space(self, params: EnvParams | None = None) -> spaces.Dict:
        return spaces.Dict({"signal": spaces.Normal((self.dim,)), "active": spaces.Binary(),
                            "role": spaces.Discrete(2)})

    def action_space(self, params: EnvParams | None = None) -> spaces.Normal:
        return spaces.Normal((self.dim,))


# ---- lattice reference policies ---------------------------------------------------------------
def _round_d(x: jax.Array) -> jax.Array:
    """Nearest point of D_n = {z in Z^n: sum z even} (Conway & Sloane 1982, algorithm for D_n):
    round every coordinate; if the sum is odd, round the worst coordinate the other way."""
    f = jnp.round(x)
    err = x - f
    worst = jnp.argmax(jnp.abs(err), axis=-1, keepdims=True)
    step = jnp.where(jnp.take_along_axis(err, worst, -1) >= 0, 1.0, -1.0)
    flip = jnp.arange(x.shape[-1]) == worst
    odd = (jnp.sum(f, -1, keepdims=True) % 2) != 0
    return jnp.where(odd & flip, f + step, f)


def _nearer(x: jax.Array, a: jax.Array, b: jax.Array) -> jax.Array:
    closer = jnp.sum((x - a) ** 2, -1, keepdims=True) <= jnp.sum((x - b) ** 2, -1, keepdims=True)
    return jnp.where(closer, a, b)


def _round_a2(x: jax.Array) -> jax.Array:
    """Nearest point of the hexagonal lattice with minimum distance 1, generated by (1, 0) and
    (1/2, sqrt(3)/2): the union of ``Z x sqrt(3) Z`` and its shift by (1/2, sqrt(3)/2)."""
    r3 = math.sqrt(3.0)
    scale = jnp.asarray([1.0, r3], x.dtype)
    shift = jnp.asarray([0.5, r3 / 2], x.dtype)
    a = jnp.round(x / scale) * scale
    b = jnp.round((x - shift) / scale) * scale + shift
    return _nearer(x, a, b)


def _round_e8(x: jax.Array) -> jax.Array:
    """Nearest point of E8 = D8 u (D8 + 1/2) (Conway & Sloane 1982)."""
    return _nearer(x, _round_d(x), _round_d(x - 0.5) + 0.5)


_ROUND = {"Z": jnp.round, "A2": _round_a2, "D4": _round_d, "E8": _round_e8}


def _check_lattice(lattice: str, scale: float, dim: int | None = None) -> None:
    checks.choice(NAME, "lattice", lattice, tuple(LATTICE_DIM))
    checks.real(NAME, "scale", scale, low=0.0, low_open=True)
    if dim is not None and dim % LATTICE_DIM[lattice]:
        raise ValueError(f"{NAME}: lattice {lattice!r} is {LATTICE_DIM[lattice]}-dimensional, "
                         f"so dim must be a multiple of {LATTICE_DIM[lattice]}, got {dim}")


def lattice_quantizer(lattice: str = "Z", scale: float = 1.0):
    """``x -> `` the nearest point of ``scale * L`` to ``x`` (f[..., m]), ``L`` one of
    :data:`LATTICE_DIM`'s lattices (``Z^m``; ``A2`` with minimum distance 1; ``D4`` and ``E8``
    with minimum distance ``sqrt(2)``), applied to consecutive blocks of its dimension;
    ``m`` must be a multiple of it. Jittable and elementwise over leading axes."""
    _check_lattice(lattice, scale)
    block, rnd = LATTICE_DIM[lattice], _ROUND[lattice]

    def quantize(x: jax.Array) -> jax.Array:
        x = jnp.asarray(x)
        _check_lattice(lattice, scale, x.shape[-1])
        blocks = x.reshape(*x.shape[:-1], x.shape[-1] // block, block)
        return (scale * rnd(blocks / scale)).reshape(x.shape)

    return quantize


def lattice_policy(lattice: str = "Z", scale: float = 1.0):
    """``policy(key, obs) -> actions`` for ``Witsenhausen-vector-v0``: controller 1 plays
    ``u1 = Q(x0) - x0`` (moves the state to the nearest lattice point), controller 2 plays
    ``u2 = Q(y)`` (nearest-point decoding), ``Q`` = :func:`lattice_quantizer`."""
    q = lattice_quantizer(lattice, scale)

    def policy(key: jax.Array, obs: dict[str, jax.Array]) -> jax.Array:
        s = obs["signal"]
        return jnp.where((obs["role"] == 0)[:, None], q(s) - s, q(s))

    return policy


def integer_lattice_cost_terms(scale: float, k: float = 0.2, sigma: float = 5.0,
                               noise_std: float = 1.0) -> tuple[float, float]:
    """``(k^2 E[u1^2], E[(x1 - u2)^2])`` per dimension of the ``Z^m`` lattice policy
    (:func:`lattice_policy` with ``"Z"``): the scalar quantiser ``x1 = a round(x0 / a)``,
    ``u2 = a round(y / a)``, in closed form (float64; sums over the cells within 12 standard
    deviations, the mass outside below 1e-32)::

        E[u1^2]        = sum_j E[(x0 - j a)^2; |x0 - j a| < a/2]   (truncated Gaussian moments)
        E[(x1 - u2)^2] = a^2 sum_n n^2 P(|w - n a| < a/2)          (independent of x1)
    """
    from scipy.special import ndtr  # lazily: `import dcgenv` stays free of scipy
    checks.real(NAME, "scale", scale, low=0.0, low_open=True)
    for name, value in (("sigma", sigma), ("noise_std", noise_std)):
        checks.real(NAME, name, value, low=0.0, low_open=True)
    checks.real(NAME, "k", k, low=0.0)
    a = float(scale)
    if 24 * max(sigma, noise_std) / a > 5e7:
        raise ValueError(f"{NAME}: scale={scale!r} is too fine for the closed form (over 5e7 "
                         f"cells); it must be >= {24 * max(sigma, noise_std) / 5e7:.3g}")
    j = np.arange(-math.ceil(12 * sigma / a) - 1, math.ceil(12 * sigma / a) + 2, dtype=float)
    lo, hi = (j - 0.5) * a / sigma, (j + 0.5) * a / sigma  # cell edges, in units of sigma
    pdf = lambda z: np.exp(-0.5 * z**2) / math.sqrt(2 * math.pi)
    mass = ndtr(hi) - ndtr(lo)
    m1 = sigma * (pdf(lo) - pdf(hi))  # E[x0; cell]
    m2 = sigma**2 * (mass + lo * pdf(lo) - hi * pdf(hi))  # E[x0^2; cell]
    c = j * a
    control = float(np.sum(m2 - 2 * c * m1 + c**2 * mass))
    n = np.arange(1, math.ceil(12 * noise_std / a) + 2, dtype=float)
    p = ndtr((n + 0.5) * a / noise_std) - ndtr((n - 0.5) * a / noise_std)
    decode = float(2 * a**2 * np.sum(n**2 * p))  # +-n alike
    return k**2 * control, decode


def integer_lattice_cost(scale: float, k: float = 0.2, sigma: float = 5.0,
                         noise_std: float = 1.0) -> float:
    """The per-dimension cost of the ``Z^m`` lattice policy, any ``m`` (closed form)."""
    return sum(integer_lattice_cost_terms(scale, k, sigma, noise_std))


def asymptotic_cost(k: float = 0.2, sigma: float = 5.0, noise_std: float = 1.0) -> float:
    """``min(k^2 sigma^2, sigma^2 n^2 / (sigma^2 + n^2), k^2 n^2)``, ``n = noise_std``: the
    per-dimension cost that the better of three strategies approaches as ``m -> infinity``.

    Zero-forcing (``x1 = 0``) costs ``k^2 sigma^2`` and zero-input (``u1 = 0``, controller 2
    the linear estimate) ``sigma^2 n^2 / (sigma^2 + n^2)`` for every ``m``. Lattice (vector)
    quantisation costs ``k^2 n^2`` in the limit: with lattices good for both quantisation
    and noise (Poltyrev), the quantisation error per dimension tends to ``V^(2/m) / (2 pi e)``
    while decoding errors vanish as long as ``V^(2/m) > 2 pi e n^2``. This is the upper bound
    ``min(k^2 sigma^2, sigma^2/(sigma^2+1), k^2)`` of Grover & Sahai (CDC 2008, "A vector
    version of Witsenhausen's counterexample"; IJSCC 2010) for ``n = 1`` (recalled from those
    papers, and derived as above); their dirty-paper-coding combination does better still
    and is not implemented here.
    """
    for name, value in (("sigma", sigma), ("noise_std", noise_std)):
        checks.real(NAME, name, value, low=0.0, low_open=True)
    checks.real(NAME, "k", k, low=0.0)
    s2, n2 = sigma**2, noise_std**2
    return min(k**2 * s2, s2 * n2 / (s2 + n2), k**2 * n2)


register("Witsenhausen-vector-v0", WitsenhausenVector, dim=2)
