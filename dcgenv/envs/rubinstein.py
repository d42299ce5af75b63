"""Rubinstein's alternating-offers bargaining (1982) over a unit surplus.

Rules: two players split a surplus of 1. In round ``t = 0, 1, ...`` the proposer (player 1 in
even rounds, player 2 in odd ones) proposes a split, the other player accepts or rejects. On
acceptance the game ends and player ``i`` is paid its share times ``delta_i^t``; on rejection the
next round begins with the roles swapped. If the proposal of the last round (``max_rounds``,
a param) is rejected, the game ends with 0 for both. With no cap, the subgame-perfect
equilibrium (SPE) agrees at once and gives the first proposer ``(1 - d2) / (1 - d1 d2)``
(:func:`spe_share`; :func:`spe_policy` plays it). With a cap, the finite game's SPE differs
(the last proposer takes everything); ``spe_share(..., rounds=n)`` gives it.

Episode: each round takes two steps, an *offer* step (the proposer acts) then a *respond* step
(the responder acts), so ``round = time // 2``, ``phase = time % 2``. Rewards come on respond
steps: ``acceptance * share_i * delta_i^round`` for each player. The game terminates on
acceptance or after the last round (``max_rounds``, a params field), so the rules alone end
every episode: ``max_steps_in_episode`` is informational and never truncates.

Acceptance, a constructor flag:

- ``smooth_accept=False`` (``Rubinstein-v0``): the responder accepts iff its ``accept`` > 0.5.
- ``smooth_accept=True``: ``accept`` clipped to ``[0, 1]`` is an acceptance probability ``p``
  and the env plays the expectation: the state carries ``alive``, the probability that no
  agreement has been reached yet; a respond step pays ``alive * p * share_i * delta_i^round``
  and continues with ``alive * (1 - p)`` (it terminates when ``alive`` reaches 0). An episode's
  return is then the expected payoff, a differentiable function of every offer and ``p``.

Actions (per agent, a dict; agent-stacked): one structure for both roles, the entries of the
inactive role are ignored.

========== ===== ===========================================================================
``offer``   f32  the share the proposer claims for *itself*; the responder is offered the rest
``accept``  f32  the responder's decision (hard: accept iff > 0.5; smooth: probability)
========== ===== ===========================================================================

Observation (per agent, a dict; agent-stacked):

============= ======= ====================================================================
``role``       int32   0 = proposer this round, 1 = responder
``active``     bool    whether this agent's action is used on this step
``phase``      int32   0 = offer step, 1 = respond step
``round``      int32   round index ``t`` (0-based; ``max_rounds`` in the final observation of
                       an episode that ran out of rounds)
``offer``      f32     this agent's share under the standing proposal (this round's on the
                       respond step, the last rejected one on an offer step; 0 before any)
``discounts``  f32[2]  (own delta, other's delta)
============= ======= ====================================================================

Illegal actions, inside ``jit``: non-finite entries are read as 0; ``offer`` is clipped to
``[0, 1]`` (shares always sum to exactly the surplus) and so is a smooth ``accept``.

Parameters (``EnvParams``), with the ranges ``make`` and ``params.replace_checked`` enforce:
``delta1``, ``delta2`` in [0, 1] (discount factors), ``max_rounds`` >= 1,
``max_steps_in_episode`` >= 1 (informational). Each step's rewards lie in [0, 1] and sum to at
most 1. Inside ``jit``, where params may be traced and nothing is checked, deltas are clipped
to [0, 1] (a NaN delta gives NaN rewards after round 0) and ``max_rounds`` < 1 ends the game
after the first respond step.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct

from dcgenv import checks, spaces
from dcgenv.core import EnvParams as BaseParams
from dcgenv.core import EnvState as BaseState
from dcgenv.core import MultiAgentEnv, param
from dcgenv.registry import register


@struct.dataclass
class EnvState(BaseState):
    shares: jax.Array  # f32[2], each player's share under the standing proposal
    alive: jax.Array  # f32, probability that no agreement has been reached (0 or 1 if hard)


@struct.dataclass
class EnvParams(BaseParams):
    delta1: float = param(0.9, 0.0, 1.0)  # player 1's discount factor per round
    delta2: float = param(0.9, 0.0, 1.0)
    max_rounds: int = param(10, 1)
    max_steps_in_episode: int = param(20, 1)  # informational: max_rounds ends every episode


def _clean(x: jax.Array) -> jax.Array:
    x = jnp.asarray(x, jnp.float32)
    return jnp.clip(jnp.where(jnp.isfinite(x), x, 0.0), 0.0, 1.0)


class Rubinstein(MultiAgentEnv):
    agents = ("player_1", "player_2")
    turn_based = True  # obs["active"] is whose turn it is

    def __init__(self, smooth_accept: bool = False):
        self.smooth_accept = checks.flag("Rubinstein", "smooth_accept", smooth_accept)

    @property
    def default_params(self) -> EnvParams:
        return EnvParams()

    def reset_env(self, key: jax.Array, params: EnvParams) -> EnvState:
        return EnvState(time=jnp.zeros((), jnp.int32), shares=jnp.zeros(2, jnp.float32),
                        alive=jnp.ones((), jnp.float32))

    def step_env(self, key: jax.Array, state: EnvState, actions: dict, params: EnvParams):
        rnd, respond = state.time // 2, state.time % 2 == 1
        proposer = rnd % 2
        claim = _clean(actions["offer"])[proposer]
        proposal = jnp.where(proposer == 0, jnp.stack([claim, 1 - claim]),
                             jnp.stack([1 - claim, claim]))
        shares = jnp.where(respond, state.shares, proposal)
        accept = jnp.asarray(actions["accept"], jnp.float32)[1 - proposer]
        if self.smooth_accept:
            p = _clean(accept)
        else:
            p = (jnp.where(jnp.isfinite(accept), accept, 0.0) > 0.5).astype(jnp.float32)
        p = jnp.where(respond, p, 0.0)
        agreement = state.alive * p
        discount = jnp.clip(jnp.stack([params.delta1, params.delta2]), 0.0, 1.0)
        reward = agreement * shares * discount**rnd
        alive = state.alive * (1 - p)
        terminated = respond & ((alive <= 0) | (rnd >= params.max_rounds - 1))
        info = {"agreement": agreement, "proposal": shares, "round": rnd}
        return state.replace(shares=shares, alive=alive), reward, terminated, info

    def is_truncated(self, state: EnvState, params: EnvParams) -> jax.Array:
        return jnp.zeros((), bool)  # the round cap terminates every episode

    def get_obs(self, state: EnvState, params: EnvParams) -> dict[str, jax.Array]:
        rnd, phase = state.time // 2, state.time % 2
        role = (jnp.arange(2) != rnd % 2).astype(jnp.int32)
        delta = jnp.clip(jnp.stack([params.delta1, params.delta2]), 0.0, 1.0).astype(jnp.float32)
        return {"role": role, "active": role == phase, "phase": jnp.full(2, phase, jnp.int32),
                "round": jnp.full(2, rnd, jnp.int32), "offer": state.shares,
                "discounts": jnp.stack([delta, delta[::-1]])}

    def observation_space(self, params: EnvParams | None = None) -> spaces.Dict:
        params = self.default_params if params is None else params
        if int(params.max_rounds) < 1:
            raise ValueError(f"max_rounds must be an integer >= 1, got {params.max_rounds!r}")
        unit = lambda shape: spaces.Box(0.0, 1.0, shape, jnp.float32)
        return spaces.Dict({"role": spaces.Discrete(2), "active": spaces.Binary(),
                            "phase": spaces.Discrete(2),
                            "round": spaces.Discrete(int(params.max_rounds) + 1),
                            "offer": unit(()), "discounts": unit((2,))})

    def action_space(self, params: EnvParams | None = None) -> spaces.Dict:
        unit = spaces.Box(0.0, 1.0, (), jnp.float32)
        return spaces.Dict({"offer": unit, "accept": unit})


def spe_share(delta_proposer, delta_responder, rounds: int | None = None):
    """The proposer's SPE share: ``(1 - d_r) / (1 - d_p d_r)`` with no round cap, or, with
    ``rounds`` rounds left, backward induction: the last proposer takes everything (``v_1 = 1``)
    and a proposer with ``n`` rounds left offers the responder ``d v_{n-1}`` (``d`` the
    responder's delta, ``v_{n-1}`` its share as next round's proposer), keeping
    ``v_n = 1 - d v_{n-1}``. The uncapped formula needs ``d_p d_r < 1``."""
    dp, dr = jnp.asarray(delta_proposer), jnp.asarray(delta_responder)
    if rounds is None:
        return (1 - dr) / (1 - dp * dr)
    if int(rounds) < 1:
        raise ValueError(f"rounds must be None (no cap) or an integer >= 1, got {rounds!r}")
    v, d = jnp.ones_like(dp * dr), (dr, dp)  # v: share of the proposer with n rounds left
    for n in range(2, int(rounds) + 1):
        v = 1 - d[(int(rounds) - n) % 2] * v  # the responder with n rounds left gets d * v
    return v


def spe_policy(key: jax.Array, obs: dict[str, jax.Array], tol: float = 1e-6) -> dict:
    """Rubinstein's (uncapped) SPE for one environment (agent-stacked ``obs``): a proposer claims
    :func:`spe_share`; a responder accepts iff offered at least ``delta_own * v`` (``tol``
    absorbs float32 rounding), ``v`` being its own SPE share as next round's proposer."""
    own, other = obs["discounts"][:, 0], obs["discounts"][:, 1]
    threshold = own * spe_share(own, other)
    accept = (obs["offer"] >= threshold - tol).astype(jnp.float32)
    return {"offer": spe_share(own, other).astype(jnp.float32), "accept": accept}


register("Rubinstein-v0", Rubinstein)
