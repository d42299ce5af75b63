"""Gradient play in the economic games, trained through ``Kyle-v0``, ``SupplyFunction-v0``,
``CournotInfoSharing-v0`` and ``PublicGoods-v0``.

    python -m baselines.econ kyle [--steps 1500] [--batch 4096] [--lr 0.02] [--set sigma0=2]
    python -m baselines.econ supply_function [--firms 2] [--set gamma=1 cost=1]
    python -m baselines.econ cournot [--firms 2] [--uncertainty demand] [--share] [--set a=3]
    python -m baselines.econ public_goods [--firms 3] [--talk continuous] [--set tau=0.05]

Each player has a linear strategy and gradient-ascends its *own* expected payoff (the mean
reward over a batch of episodes, fresh each step, run through ``env.reset``/``env.step`` and
differentiated pathwise), all players updating simultaneously with Adam and a cosine-decayed
learning rate. The learned coefficients are the average of the last 10% of iterates and are
printed beside the closed-form equilibrium:

- ``kyle``: the insider orders ``x = beta (v - p0)``, the market maker prices ``p = p0 +
  lambda y``; the insider ascends its profit ``(v - p) x`` in ``beta``, the market maker its
  reward ``-(p - v)^2`` in ``lambda``. Theory: ``beta = sigma_u / sigma0``, ``lambda = sigma0 /
  (2 sigma_u)`` (Kyle 1985).
- ``supply_function``: firm ``i`` submits the schedule ``b_i p`` on the price grid (from 0, so
  the piecewise-linear schedule is exactly linear) and ascends its profit in ``b_i``, the firms
  starting from different slopes. Theory: Klemperer & Meyer's (1989) SFE slope.
- ``cournot``: the disclosure profile is fixed (every firm shares fully with ``--share``,
  nobody otherwise) and firm ``i`` plays the stage-2 quantity ``q_i = alpha_i + beta_i s_i +
  gamma_i sum_{j != i} m_j`` (``gamma_i = 0``, not learned, when nobody shares: the messages
  are then pure noise), ascending its profit in its own coefficients, the firms starting from
  different points. Theory: the closed-form linear Bayesian-Nash equilibrium
  (``dcgenv.envs.cournot.equilibrium``).
- ``public_goods`` (smooth provision): player ``i`` says ``m_i = w_i v_i + b_i`` (``--talk
  continuous``) or sends one of two symbols with logits ``(0, w_i v_i + b_i)`` through a
  Gumbel-softmax channel (``--talk gumbel``, straight-through, 1 bit), then contributes ``c_i =
  e sigmoid(alpha_i + beta_i v_i + gamma_i h)``, ``h`` the sum of what it heard (the messages,
  or the number of symbols 1); it ascends its expected payoff in all five. No equilibrium is
  learned against: the rows compare the learned welfare and provision rate with the social
  optimum (``dcgenv.envs.public_goods.expected_social_optimum``); the free-riding welfare
  ``N e`` is printed beside them.

``--set name=value`` overrides env params (``dcgenv.make``); ``--out DIR`` writes
``econ_<game>.json`` there.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dcgenv
from dcgenv.envs import cournot as C
from dcgenv.envs import kyle as K
from dcgenv.envs import public_goods as PG
from dcgenv.envs import supply_function as SF


def kyle_payoffs(theta, key, env, params):
    """Both players' rewards in one Kyle episode under the linear strategies ``theta``."""
    k0, k1, k2 = jax.random.split(key, 3)
    obs, s = env.reset(k0, params)
    x = theta["beta"] * (obs["signal"][0, 0] - obs["p0"][0])
    obs, s, r1, *_ = env.step(k1, s, jnp.stack([x, 0.0]), params)
    p = obs["p0"][1] + theta["lambda"] * obs["signal"][1, 0]
    _, _, r2, *_ = env.step(k2, s, jnp.stack([0.0, p]), params)
    return r1 + r2


def supply_payoffs(theta, key, env, params):
    """Every firm's profit in one SupplyFunction episode with schedules ``slopes[i] * p``."""
    k0, k1 = jax.random.split(key)
    obs, s = env.reset(k0, params)
    _, _, reward, *_ = env.step(k1, s, theta["slopes"][:, None] * obs["prices"], params)
    return reward


def cournot_payoffs(theta, key, env, params, share):
    """Every firm's profit in one CournotInfoSharing episode: disclosure 1 (``share``) or 0
    for all, then the linear quantities of ``theta`` (``alpha``, ``beta``, ``gamma``: f[N])."""
    k0, k1, k2 = jax.random.split(key, 3)
    obs, s = env.reset(k0, params)
    obs, s, *_ = env.step(k1, s, jnp.full(env.num_firms, float(share)), params)
    m = obs["messages"]
    others = m.sum(1) - jnp.diagonal(m)
    gamma = theta["gamma"] if share else jnp.zeros(env.num_firms)
    q = theta["alpha"] + theta["beta"] * obs["signal"][:, 0] + gamma * others
    _, _, reward, *_ = env.step(k2, s, q, params)
    return reward


def public_goods_info(theta, key, env, params):
    """One PublicGoods episode under the linear talk-and-contribute policy ``theta`` (``w``,
    ``b``, ``alpha``, ``beta``, ``gamma``: f[N]); step 1's ``(reward, info)``."""
    k0, k1, k2 = jax.random.split(key, 3)
    obs, s = env.reset(k0, params)
    v = obs["valuation"][:, 0]
    say = theta["w"] * v + theta["b"]
    gumbel = env.message_shape == (2,)
    msg = jnp.stack([jnp.zeros_like(say), say], -1) if gumbel else say[:, None]
    obs, s, *_ = env.step(k1, s, {"message": msg, "contribution": jnp.zeros_like(v)}, params)
    heard = obs["messages"][:, :, -1].sum(1)  # the sum of the messages, or of the symbols 1
    c = params.endowment * jax.nn.sigmoid(theta["alpha"] + theta["beta"] * v
                                          + theta["gamma"] * heard)
    _, _, reward, *_, info = env.step(k2, s, {"message": jnp.zeros_like(msg),
                                              "contribution": c}, params)
    return reward, info


def public_goods_payoffs(theta, key, env, params):
    """Every player's (expected, smooth) payoff in one PublicGoods episode."""
    return public_goods_info(theta, key, env, params)[0]


def own_gradients(payoffs, theta, keys, env, params, owner):
    """Each player's gradient of its own mean payoff w.r.t. its own parameters (the others'
    held fixed): the diagonal blocks of the Jacobian; ``owner`` maps a parameter leaf to the
    agent index (or indices, one per entry) that owns it."""
    mean = lambda t: jnp.mean(jax.vmap(lambda k: payoffs(t, k, env, params))(keys), 0)
    jac = jax.jacrev(mean)(theta)  # leaf [num_agents, *leaf shape]
    return jax.tree.map(lambda j, o: j[o, ...] if jnp.ndim(o) == 0 else j[o, jnp.arange(len(o))],
                        jac, owner)


def gradient_play(payoffs, theta, owner, env, params, steps, batch, lr, seed):
    """Simultaneous Adam ascent of own payoffs; returns (iterates averaged over the last 10%,
    the trajectory of iterates)."""
    opt = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.01))

    def update(carry, key):
        theta, state = carry
        g = own_gradients(payoffs, theta, jax.random.split(key, batch), env, params, owner)
        updates, state = opt.update(jax.tree.map(jnp.negative, g), state, theta)
        theta = optax.apply_updates(theta, updates)
        return (theta, state), theta

    keys = jax.random.split(jax.random.key(seed), steps)
    _, path = jax.jit(lambda t: jax.lax.scan(update, (t, opt.init(t)), keys))(theta)
    tail = max(1, steps // 10)
    return jax.tree.map(lambda p: p[-tail:].mean(0), path), path


def run_kyle(steps=1500, batch=4096, lr=0.02, seed=0, overrides=None) -> dict:
    env, params = dcgenv.make("Kyle-v0", **(overrides or {}))
    theory = K.equilibrium(params)
    theta0 = {"beta": jnp.asarray(0.3 * theory["beta"]),
              "lambda": jnp.asarray(3 * theory["lambda"])}
    learned, _ = gradient_play(kyle_payoffs, theta0, {"beta": 0, "lambda": 1}, env, params,
                               steps, batch, lr, seed)
    rows = [("beta", learned["beta"], theory["beta"]),
            ("lambda", learned["lambda"], theory["lambda"])]
    return _table("kyle", rows, params)


def run_supply_function(firms=2, steps=1500, batch=4096, lr=0.02, seed=0,
                        overrides=None) -> dict:
    overrides = {"price_min": 0.0, **(overrides or {})}
    env, params = dcgenv.make("SupplyFunction-v0", num_firms=firms, **overrides)
    if float(params.price_min) != 0.0:
        raise ValueError("supply_function: linear schedules b p need price_min=0")
    beta = SF.sfe_slope(firms, params.gamma, params.cost)
    theta0 = {"slopes": jnp.linspace(0.3, 1.5, firms) * beta if firms > 1 else 0.3 * beta[None]}
    learned, _ = gradient_play(supply_payoffs, theta0, {"slopes": jnp.arange(firms)}, env, params,
                               steps, batch, lr, seed)
    rows = [(f"slope firm {i}", learned["slopes"][i], beta) for i in range(firms)]
    return _table("supply_function", rows, params)


def run_cournot(firms=2, uncertainty="demand", share=False, steps=1500, batch=4096, lr=0.02,
                seed=0, overrides=None) -> dict:
    env, params = dcgenv.make("CournotInfoSharing-v0", num_firms=firms, uncertainty=uncertainty,
                              **(overrides or {}))
    eq = C.equilibrium(env, params, share=share)
    names = ("alpha", "beta", "gamma") if share else ("alpha", "beta")
    start = jnp.linspace(0.3, 1.5, firms)
    theta0 = {k: start * eq[k] for k in names}
    payoffs = lambda t, k, e, p: cournot_payoffs(t, k, e, p, share)
    learned, _ = gradient_play(payoffs, theta0, {k: jnp.arange(firms) for k in names}, env,
                               params, steps, batch, lr, seed)
    rows = [(f"{k} firm {i}", learned[k][i], eq[k]) for i in range(firms) for k in names]
    return _table("cournot", rows, params)


def run_public_goods(firms=3, talk="continuous", steps=1500, batch=4096, lr=0.02, seed=0,
                     overrides=None) -> dict:
    channel = (dcgenv.comms.Continuous() if talk == "continuous"
               else dcgenv.comms.GumbelSoftmax(vocab_size=2))
    env, params = dcgenv.make("PublicGoods-v0", num_players=firms, channel=channel,
                              channel_train=talk != "continuous", smooth=True,
                              **(overrides or {}))
    bench = PG.expected_social_optimum(env, params)
    start = jnp.linspace(-0.5, 0.5, firms)
    theta0 = {"w": 1.0 + start, "b": start, "alpha": start, "beta": 1.0 + start,
              "gamma": jnp.zeros(firms)}
    learned, _ = gradient_play(public_goods_payoffs, theta0,
                               {k: jnp.arange(firms) for k in theta0}, env, params, steps, batch,
                               lr, seed)
    keys = jax.random.split(jax.random.key(seed + 1), batch)
    _, info = jax.jit(jax.vmap(lambda k: public_goods_info(learned, k, env, params)))(keys)
    rows = [("welfare", info["welfare"].mean(), bench["welfare"]),
            ("provided", info["provided"].mean(), bench["provided"])]
    out = _table("public_goods", rows, params)
    out["talk"], out["free_riding_welfare"] = talk, float(bench["free_riding"])
    out["policy"] = {k: np.asarray(v).tolist() for k, v in learned.items()}
    return out


def _table(game, rows, params) -> dict:
    out = [{"coefficient": name, "learned": float(a), "theory": float(b),
            "relative_error": float(abs(a - b) / abs(b))} for name, a, b in rows]
    return {"game": game, "params": {k: np.asarray(v).tolist() for k, v in
                                     params.__dict__.items()}, "rows": out}


def _override(text: str) -> tuple[str, float]:
    name, eq, value = text.partition("=")
    if not eq:
        raise argparse.ArgumentTypeError(f"expected name=value, got {text!r}")
    try:
        return name, float(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{name}: {value!r} is not a number") from err


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("game", choices=["kyle", "supply_function", "cournot", "public_goods"])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--firms", type=int, default=None,
                        help="supply_function and cournot (default 2), public_goods (3)")
    parser.add_argument("--uncertainty", choices=["demand", "cost"], default="demand",
                        help="cournot only")
    parser.add_argument("--share", action="store_true",
                        help="cournot only: every firm discloses fully (default: nobody)")
    parser.add_argument("--talk", choices=["continuous", "gumbel"], default="continuous",
                        help="public_goods only: the cheap-talk channel")
    parser.add_argument("--set", type=_override, nargs="*", default=[], metavar="NAME=VALUE",
                        help="env params overrides")
    parser.add_argument("--out", default=None, help="write econ_<game>.json into this folder")
    args = parser.parse_args(argv)
    if args.steps < 1 or args.batch < 1 or args.lr <= 0:
        parser.error("needs --steps >= 1, --batch >= 1, --lr > 0")
    common = {"steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed,
              "overrides": dict(args.set)}
    firms = args.firms or (3 if args.game == "public_goods" else 2)
    start = time.perf_counter()
    if args.game == "kyle":
        result = run_kyle(**common)
    elif args.game == "public_goods":
        result = run_public_goods(firms=firms, talk=args.talk, **common)
    elif args.game == "cournot":
        result = run_cournot(firms=firms, uncertainty=args.uncertainty, share=args.share,
                             **common)
    else:
        result = run_supply_function(firms=firms, **common)
    result["seconds"] = time.perf_counter() - start
    print(f"{'coefficient':<16} {'learned':>10} {'theory':>10} {'rel. error':>11}")
    for r in result["rows"]:
        print(f"{r['coefficient']:<16} {r['learned']:>10.5f} {r['theory']:>10.5f} "
              f"{r['relative_error']:>11.2e}")
    if "free_riding_welfare" in result:
        print(f"free riding welfare: {result['free_riding_welfare']:.5f}")
    print(f"{args.steps} steps x {args.batch} episodes, {result['seconds']:.1f} s")
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"econ_{args.game}.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
