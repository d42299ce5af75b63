"""A T-stage "progressive" Witsenhausen counterexample: later controllers refine earlier signals.

Rules (our definition; ``stages`` = T >= 2 controllers acting in turn, one per step):
``x0 ~ N(0, sigma^2)``. Controller 1 sees ``x0`` and applies ``u1``; controller ``t`` in ``2..T``
sees every noisy observation made so far, ``y_2, ..., y_t`` with ``y_j = x_{j-1} + w_j`` and
``w_j ~ N(0, noise_std^2)`` independent, and applies ``u_t``. Controllers ``1..T-1`` move the
state, ``x_t = x_{t-1} + u_t``, at a cost ``k^2 u_t^2`` each; the last controller estimates it,
at a cost ``(x_{T-1} - u_T)^2``. One sample's cost is

    J = k^2 (u_1^2 + ... + u_{T-1}^2) + (x_{T-1} - u_T)^2,

which for T = 2 is Witsenhausen's (1968, SIAM J. Control 6(1)) cost, and ``stages=2`` is
``Witsenhausen-v0``: the same draws from the same key (``x0``, then ``w_2``), the same
observations and rewards for the same actions (up to the last bit: XLA compiles the two
programs apart, and a draw can round differently by one ulp). Each later controller has more
(noisy) looks at the state than the one before but, like controller 2 in the original, never
``x0``: the information structure stays non-classical, so linear policies need not be optimal.
We found no standard multi-stage formulation in the literature to follow (searched for
"multi-stage Witsenhausen"), so this one is ours: it keeps Witsenhausen's dynamics and costs
and extends controller 2's observation channel by one noisy look per stage.

Episode: step ``t - 1`` is controller ``t``'s move, with reward ``-k^2 u_t^2`` (``t < T``) or
``-(x_{T-1} - u_T)^2`` (``t = T``); the episode terminates after step ``T - 1``. All agents
receive the team reward, so an episode's return is ``-J``. ``info``: ``control_cost``
(``k^2 u_t^2``, 0 on the last step) and ``final_cost`` (``(x_{T-1} - u_T)^2``, 0 before).
``x0`` and the noises are drawn at reset: ``jax.grad`` of the episode cost reaches every
controller's action, pathwise through ``reset``/``step``.

Observation (per agent, a dict; agent-stacked in ``obs``):

========= ========= =================================================================
``signal`` f32[T-1] controller 1 at step 0: ``[x0, 0, ..., 0]``; controller ``t >= 2`` at
                    step ``t - 1``: ``[y_2, ..., y_t, 0, ..., 0]``; zeros when not its turn
``active`` bool     whether it is this agent's turn (its action is used)
``role``   int32    ``t - 1`` for controller ``t``
========= ========= =================================================================

Actions: one float per agent (``actions`` is f32[T]); only the active agent's is used.
Parameters: ``k``, ``sigma``, ``noise_std``, ``action_limit``, as ``Witsenhausen-v0`` (the same
ranges; inside ``jit`` a negative ``k`` acts as ``|k|``, a negative ``sigma``/``noise_std``
mirrors the draws, ``action_limit`` <= 0 sets actions to ``action_limit``; non-finite actions
read as 0, actions are clipped to ``[-action_limit, action_limit]``), ``max_steps_in_episode``
(default T, informational: the rules end every episode). Constructor argument ``stages``: an
integer >= 2, else ``ValueError``.

Reference (tested in ``tests/test_witsenhausen_multistage.py``): linear policies, ``x1 =
lam x0`` and ``u_t = g_t . (y_2, ..., y_t)``, with the last controller's gains given or the
linear least-squares (LMMSE) estimate of ``x_{T-1}``; every quantity is a linear function of
the independent Gaussians ``(x0, w_2, ..., w_T)``, so :func:`linear_cost` is exact (a
covariance computation). For T = 2 it is Witsenhausen's affine cost (:func:`affine_cost`);
with idle middle controllers (``g_t = 0``) the last one averages ``T - 1`` looks, which is the
two-stage affine cost with ``noise_std / sqrt(T - 1)``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct

from dcgenv import checks, spaces
from dcgenv.core import EnvState as BaseState
from dcgenv.core import MultiAgentEnv, normal
from dcgenv.envs.witsenhausen import EnvParams  # the same params (noise per stage)
from dcgenv.envs.witsenhausen_reference import affine_cost  # noqa: F401  (the T = 2 case)
from dcgenv.registry import register

NAME = "WitsenhausenMultistage"


@struct.dataclass
class EnvState(BaseState):
    x0: jax.Array  # initial state
    w: jax.Array  # f[T-1] the observation noises w_2, ..., w_T
    x: jax.Array  # f[T-1] the states x_1, ..., x_{T-1} (x0 until the controller acts)


class WitsenhausenMultistage(MultiAgentEnv):
    def __init__(self, stages: int = 3):
        self.stages = checks.integer(NAME, "stages", stages, low=2)
        self.agents = tuple(f"controller_{t}" for t in range(1, self.stages + 1))

    @property
    def default_params(self) -> EnvParams:
        return EnvParams(max_steps_in_episode=self.stages)

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        k0, kw = jax.random.split(key)
        x0 = params.sigma * normal(k0)
        w = params.noise_std * normal(kw, (self.stages - 1,))
        return EnvState(time=jnp.zeros((), jnp.int32), x0=x0, w=w,
                        x=jnp.broadcast_to(x0, w.shape))

    def step_env(self, key: jax.Array, state: EnvState, actions: jax.Array, params: EnvParams):
        actions = jnp.asarray(actions, state.x0.dtype)
        actions = jnp.clip(jnp.where(jnp.isfinite(actions), actions, 0.0),
                           -params.action_limit, params.action_limit)
        t = jnp.clip(state.time, 0, self.stages - 1)
        u = actions[t]
        now = jnp.where(t == 0, state.x0, state.x[jnp.maximum(t - 1, 0)])  # x_{time}
        last = t == self.stages - 1
        control = jnp.where(last, 0.0, params.k**2 * u**2)
        final = jnp.where(last, (now - u) ** 2, 0.0)
        x = jnp.where(jnp.arange(self.stages - 1) == t, now + u, state.x)  # x_{time+1}
        reward = -(control + final) * jnp.ones(self.stages)
        info = {"control_cost": control, "final_cost": final}
        return state.replace(x=x), reward, last, info

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.zeros((), bool)  # the rules end every episode after T steps (terminated)

    def get_obs(self, state: EnvState, params: EnvParams) -> dict[str, jax.Array]:
        role = jnp.arange(self.stages, dtype=jnp.int32)
        active = role == state.time
        looks = jnp.arange(self.stages - 1)
        y = jnp.where(looks < state.time, state.x + state.w, 0.0)  # y_2..y_{time+1} so far
        seen = jnp.where(state.time == 0, jnp.where(looks == 0, state.x0, 0.0), y)
        # where, not * active: an inactive signal is +0.0 however XLA fuses it, never -0.0
        signal = jnp.where(active[:, None], seen[None, :], 0.0)
        return {"signal": signal, "active": active, "role": role}

    def observation_space(self, params: EnvParams | None = None) -> spaces.Dict:
        return spaces.Dict({"signal": spaces.Normal((self.stages - 1,)),
                            "active": spaces.Binary(), "role": spaces.Discrete(self.stages)})

    def action_space(self, params: EnvParams | None = None) -> spaces.Normal:
        return spaces.Normal(())


# ---- linear reference policies ------------------------------------------------------------------
def _check_gains(lam: float, gains) -> list[np.ndarray]:
    checks.real(NAME, "lam", lam)
    out = []
    for i, g in enumerate(gains):
        g = np.asarray(g, np.float64)
        if g.shape != (i + 1,) or not np.all(np.isfinite(g)):
            raise ValueError(f"{NAME}: gains[{i}] (controller {i + 2}'s, on y_2..y_{i + 2}) "
                             f"must be {i + 1} finite numbers, got {g.tolist()}")
        out.append(g)
    return out


def _linear_rows(lam: float, gains, sigma: float, noise_std: float):
    """Coefficients over the independent normals ``(x0, w_2, ..., w_T)`` (``T = len(gains) +
    2``) of the controls ``u_1..u_{T-1}``, of ``x_{T-1}`` and of ``y_2..y_T``; their
    covariance (diagonal)."""
    gains = _check_gains(lam, gains)
    for name, value in (("sigma", sigma), ("noise_std", noise_std)):
        checks.real(NAME, name, value, low=0.0, low_open=True)
    stages = len(gains) + 2
    eye = np.eye(stages)
    x = lam * eye[0]
    controls, ys = [(lam - 1.0) * eye[0]], []
    for t in range(2, stages + 1):  # controller t sees y_2..y_t
        ys.append(x + eye[t - 1])
        if t < stages:
            u = gains[t - 2] @ np.stack(ys)
            controls.append(u)
            x = x + u
    cov = np.diag([sigma**2] + [noise_std**2] * (stages - 1))
    return np.stack(controls), x, np.stack(ys), cov


def optimal_final_gain(lam: float, gains=(), sigma: float = 5.0,
                       noise_std: float = 1.0) -> np.ndarray:
    """The last controller's best linear gains on ``(y_2, ..., y_T)`` given the earlier linear
    policies: ``Cov(y)^-1 Cov(y, x_{T-1})`` (its LMMSE estimate of ``x_{T-1}``, which is also
    the conditional mean: everything is jointly Gaussian)."""
    _, x, ys, cov = _linear_rows(lam, gains, sigma, noise_std)
    return np.linalg.solve(ys @ cov @ ys.T, ys @ cov @ x)


def linear_cost_terms(lam: float, gains=(), final=None, k: float = 0.2, sigma: float = 5.0,
                      noise_std: float = 1.0) -> tuple[float, float]:
    """Exact ``(k^2 sum_{t<T} E[u_t^2], E[(x_{T-1} - u_T)^2])`` of the linear policy ``x1 =
    lam x0``, ``u_t = gains[t-2] . (y_2..y_t)`` for ``t = 2..T-1`` (``T = len(gains) + 2``),
    ``u_T = final . (y_2..y_T)`` (``None``: :func:`optimal_final_gain`)."""
    checks.real(NAME, "k", k, low=0.0)
    controls, x, ys, cov = _linear_rows(lam, gains, sigma, noise_std)
    if final is None:
        final = np.linalg.solve(ys @ cov @ ys.T, ys @ cov @ x)
    final = np.asarray(final, np.float64)
    if final.shape != (len(ys),) or not np.all(np.isfinite(final)):
        raise ValueError(f"{NAME}: final (the last controller's gains on y_2..y_T) must be "
                         f"{len(ys)} finite numbers or None, got {final.tolist()}")
    err = x - final @ ys
    control = k**2 * float(np.einsum("ti,ij,tj->", controls, cov, controls))
    return control, float(err @ cov @ err)


def linear_cost(lam: float, gains=(), final=None, k: float = 0.2, sigma: float = 5.0,
                noise_std: float = 1.0) -> float:
    """The expected cost ``J`` of a linear policy (:func:`linear_cost_terms`, summed)."""
    return sum(linear_cost_terms(lam, gains, final, k, sigma, noise_std))


def linear_policy(lam: float, gains=(), final=None, sigma: float = 5.0,
                  noise_std: float = 1.0):
    """``policy(key, obs) -> actions`` playing that linear policy on
    ``Witsenhausen-multistage-v0`` with ``stages = len(gains) + 2`` (``final=None``: the optimal
    gains for ``sigma``, ``noise_std``): each controller's action is a fixed linear function of
    its ``signal``."""
    gains = _check_gains(lam, gains)
    stages = len(gains) + 2
    if final is None:
        final = optimal_final_gain(lam, gains, sigma, noise_std)
    rows = np.zeros((stages, stages - 1))
    rows[0, 0] = lam - 1.0  # u1 = (lam - 1) x0
    for i, g in enumerate(gains):
        rows[i + 1, : i + 1] = g
    rows[-1] = final

    def policy(key: jax.Array, obs: dict[str, jax.Array]) -> jax.Array:
        signal = obs["signal"]
        return jnp.sum(jnp.asarray(rows, signal.dtype)[obs["role"]] * signal, -1)

    return policy


register("Witsenhausen-multistage-v0", WitsenhausenMultistage, stages=3)
