"""Gradient play in the economic games, trained through ``Kyle-v0``, ``SupplyFunction-v0``,
``CournotInfoSharing-v0`` and ``PublicGoods-v0``.

    python -m baselines.econ kyle [--steps 1500] [--batch 4096] [--lr 0.02] [--set sigma0=2]
    python -m baselines.econ kyle --auctions 4
    python -m baselines.econ supply_function [--firms 2] [--set gamma=1 cost=1]
    python -m baselines.econ cournot [--firms 2] [--uncertainty demand] [--share] [--set a=3]
    python -m baselines.econ cournot --learn-disclosure [--uncertainty cost] [--d0 0.5]
    python -m baselines.econ public_goods [--firms 3] [--talk continuous] [--set tau=0.05]

Each player has a linear strategy and gradient-ascends its *own* expected payoff (the mean
reward over a batch of episodes, fresh each step, run through ``env.reset``/``env.step`` and
differentiated pathwise), all players updating simultaneously with Adam and a cosine-decayed
learning rate. The learned coefficients are the average of the last 10% of iterates and are
printed beside the closed-form equilibrium:

- ``kyle``: the insider orders ``x = beta (v - p0)``, the market maker prices ``p = p0 +
  lambda y``; the insider ascends its profit ``(v - p) x`` in ``beta``, the market maker its
  reward ``-(p - v)^2`` in ``lambda``. Theory: ``beta = sigma_u / sigma0``, ``lambda = sigma0 /
  (2 sigma_u)`` (Kyle 1985). With ``--auctions N`` (Kyle's sequential model): ``x_n = beta_n
  (v - p_{n-1})``, ``p_n = p_{n-1} + lambda_n y_n``, the insider ascending its total profit in
  all ``beta_n`` (anticipating its price impact on later auctions, pathwise through the env),
  and one competitive market maker per auction ascending its own auction's reward in its
  ``lambda_n``. Theory: ``dcgenv.envs.kyle.sequential_equilibrium``.
- ``supply_function``: firm ``i`` submits the schedule ``b_i p`` on the price grid (from 0, so
  the piecewise-linear schedule is exactly linear) and ascends its profit in ``b_i``, the firms
  starting from different slopes. Theory: Klemperer & Meyer's (1989) SFE slope.
- ``cournot``: the disclosure profile is fixed (every firm shares fully with ``--share``,
  nobody otherwise) and firm ``i`` plays the stage-2 quantity ``q_i = alpha_i + beta_i s_i +
  gamma_i sum_{j != i} m_j`` (``gamma_i = 0``, not learned, when nobody shares: the messages
  are then pure noise), ascending its profit in its own coefficients, the firms starting from
  different points. Theory: the closed-form linear Bayesian-Nash equilibrium
  (``dcgenv.envs.cournot.equilibrium``). With ``--learn-disclosure`` the disclosure levels
  are learned too (see :func:`run_cournot_disclosure`): firm ``i`` ascends its own profit in
  its ``d_i`` (projected on ``[0, 1]``, from ``--d0``) and in ``q_i = alpha_i + beta_i s_i +
  sum_{j != i} gamma_ij m_j``, on two timescales (the disclosures at ``--disclosure-lr``, 10
  times slower than the quantities by default, and frozen for the first ``--warmup`` steps).
  Theory: nobody discloses under demand uncertainty (Vives 1984, Gal-Or 1985), everybody under
  cost uncertainty (Shapiro 1986, Gal-Or 1986); the rows give the learned ``d_i`` and expected
  profits beside the closed-form profits of the polar profiles.
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
    """One Kyle episode under linear strategies ``theta`` (``beta``, ``lambda``: one entry per
    auction, or scalars for one auction): ``[insider's profit, market maker's reward in auction
    0, 1, ...]``. The insider orders ``x_n = beta_n (v - p_{n-1})``, the market maker prices
    ``p_n = p_{n-1} + lambda_n y_n``; each auction's market maker is a separate player (Kyle's
    competitive market makers), whose payoff is its own auction's reward only."""
    beta, lam = jnp.atleast_1d(theta["beta"]), jnp.atleast_1d(theta["lambda"])
    keys = jax.random.split(key, 1 + 2 * len(beta))
    obs, s = env.reset(keys[0], params)
    insider, mm = 0.0, []
    for n in range(len(beta)):
        x = beta[n] * (obs["signal"][0, 0] - obs["price"][0])
        obs, s, r1, *_ = env.step(keys[1 + 2 * n], s, jnp.stack([x, 0.0]), params)
        p = obs["price"][1] + lam[n] * obs["signal"][1, 0]
        obs, s, r2, *_ = env.step(keys[2 + 2 * n], s, jnp.stack([0.0, p]), params)
        insider, mm = insider + r1[0] + r2[0], [*mm, r1[1] + r2[1]]
    return jnp.stack([insider, *mm])


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


def cournot_disclosure_payoffs(theta, key, env, params):
    """Every firm's profit in one CournotInfoSharing episode with learned disclosures ``d``
    f[N] and quantities ``q_i = alpha_i + beta_i s_i + sum_{j != i} gamma_ij m_j``
    (``gamma`` f[N, N], its diagonal unused): pathwise, the messages are differentiable in
    ``d``."""
    k0, k1, k2 = jax.random.split(key, 3)
    obs, s = env.reset(k0, params)
    obs, s, *_ = env.step(k1, s, theta["d"], params)
    m = obs["messages"]  # [N, N]: row i is what firm i heard
    gamma = theta["gamma"] * (1.0 - jnp.eye(env.num_firms))
    q = theta["alpha"] + theta["beta"] * obs["signal"][:, 0] + (gamma * m).sum(1)
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


def gradient_play(payoffs, theta, owner, env, params, steps, batch, lr, seed, opt=None,
                  project=None):
    """Simultaneous Adam ascent of own payoffs; returns (iterates averaged over the last 10%,
    the trajectory of iterates). ``opt`` replaces the optimiser, ``project`` (theta -> theta)
    is applied after every update."""
    opt = opt or optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.01))

    def update(carry, key):
        theta, state = carry
        g = own_gradients(payoffs, theta, jax.random.split(key, batch), env, params, owner)
        updates, state = opt.update(jax.tree.map(jnp.negative, g), state, theta)
        theta = optax.apply_updates(theta, updates)
        if project is not None:
            theta = project(theta)
        return (theta, state), theta

    keys = jax.random.split(jax.random.key(seed), steps)
    _, path = jax.jit(lambda t: jax.lax.scan(update, (t, opt.init(t)), keys))(theta)
    tail = max(1, steps // 10)
    return jax.tree.map(lambda p: p[-tail:].mean(0), path), path


def run_kyle(steps=1500, batch=4096, lr=0.02, seed=0, overrides=None, auctions=1) -> dict:
    env, params = dcgenv.make("Kyle-v0", auctions=auctions, **(overrides or {}))
    if auctions == 1:
        theory = {k: jnp.atleast_1d(v) for k, v in K.equilibrium(params).items()}
        names = ["beta", "lambda"]
    else:
        eq = K.sequential_equilibrium(params, auctions)
        theory = {"beta": jnp.asarray(eq["order_coef"], jnp.float32),
                  "lambda": jnp.asarray(eq["lambda"], jnp.float32)}
        names = [f"{c}_{n}" for c in ("beta", "lambda") for n in range(auctions)]
    theta0 = {"beta": 0.3 * theory["beta"], "lambda": 3 * theory["lambda"]}
    owner = {"beta": jnp.zeros(auctions, jnp.int32), "lambda": 1 + jnp.arange(auctions)}
    learned, _ = gradient_play(kyle_payoffs, theta0, owner, env, params, steps, batch, lr, seed)
    values = jnp.concatenate([learned["beta"], learned["lambda"]])
    targets = jnp.concatenate([theory["beta"], theory["lambda"]])
    return _table("kyle", list(zip(names, values, targets, strict=True)), params)


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


def run_cournot_disclosure(firms=2, uncertainty="demand", steps=2000, batch=4096, lr=0.02,
                           disclosure_lr=None, warmup=None, d0=0.5, seed=0, overrides=None,
                           eval_batch=65_536, tol=0.05) -> dict:
    """Learned disclosure: every firm's ``d_i`` (projected on ``[0, 1]``, from ``d0``) and its
    stage-2 ``(alpha_i, beta_i, gamma_i.)`` by simultaneous gradient play on its own profit.
    Two timescales: the stage-2 coefficients at ``lr``, the disclosures at ``disclosure_lr``
    (``lr / 10`` by default) and only after ``warmup`` steps (``steps // 5``), so the quantities
    stay near a best response to the current disclosures. The disclosure gradient is the
    pathwise partial derivative with the rivals' stage-2 coefficients held at their current
    values (no look-ahead through their response to ``d_i``). Rows: each ``d_i`` against the
    theory's (0 demand, 1 cost), then each firm's expected profit (Monte Carlo, ``eval_batch``
    fresh episodes) against the closed-form profit of the theory's profile; ``polar`` holds
    both polar profiles' closed-form profits, ``paired`` the learned profit minus each polar
    profile's (its closed-form strategies played on the same episodes; mean and standard
    error per firm) and ``matches`` whether every ``|d_i - theory| <= tol``."""
    env, params = dcgenv.make("CournotInfoSharing-v0", num_firms=firms, uncertainty=uncertainty,
                              **(overrides or {}))
    none, full = (C.equilibrium(env, params, share=x) for x in (False, True))
    share = uncertainty == "cost"  # the theory's profile
    disclosure_lr = lr / 10 if disclosure_lr is None else disclosure_lr
    warmup = steps // 5 if warmup is None else warmup
    start = jnp.linspace(0.7, 1.3, firms)  # the firms start apart, at the no-sharing closed form
    theta0 = {"alpha": start * none["alpha"], "beta": start * none["beta"],
              "gamma": jnp.zeros((firms, firms)), "d": jnp.full(firms, float(d0))}
    theta0["d"] = jnp.clip(theta0["d"], 0.0, 1.0)
    stage2 = optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.01))
    disclose = optax.adam(optax.join_schedules(  # b2: normalise by recent gradients only
        [optax.constant_schedule(0.0),
         optax.cosine_decay_schedule(disclosure_lr, max(1, steps - warmup), alpha=0.01)],
        [warmup]), b2=0.99)
    labels = {k: ("d" if k == "d" else "q") for k in theta0}
    opt = optax.multi_transform({"q": stage2, "d": disclose}, labels)
    project = lambda t: {**t, "d": jnp.clip(t["d"], 0.0, 1.0)}
    learned, path = gradient_play(cournot_disclosure_payoffs, theta0,
                                  {k: jnp.arange(firms) for k in theta0}, env, params, steps,
                                  batch, lr, seed, opt=opt, project=project)
    polar = {name: {"alpha": jnp.full(firms, eq["alpha"]), "beta": jnp.full(firms, eq["beta"]),
                    "gamma": jnp.full((firms, firms), eq["gamma"]), "d": jnp.full(firms, x)}
             for name, eq, x in (("none", none, 0.0), ("full", full, 1.0))}
    keys = jax.random.split(jax.random.key(seed + 1), eval_batch)
    profit, p_none, p_full = jax.jit(jax.vmap(lambda k: [
        cournot_disclosure_payoffs(t, k, env, params)
        for t in (learned, polar["none"], polar["full"])]))(keys)  # the same episodes
    mean, se = profit.mean(0), profit.std(0) / np.sqrt(eval_batch)
    paired = {f"minus_{name}": {"mean": np.asarray((profit - p).mean(0)).tolist(),
                                "standard_error": np.asarray((profit - p).std(0)
                                                             / np.sqrt(eval_batch)).tolist()}
              for name, p in (("none", p_none), ("full", p_full))}
    target = 1.0 if share else 0.0
    rows = [(f"d firm {i}", learned["d"][i], target) for i in range(firms)]
    rows += [(f"profit firm {i}", mean[i], (full if share else none)["profit"])
             for i in range(firms)]
    out = _table("cournot", rows, params)
    for r in out["rows"][:firms]:  # theory 0: report the absolute error
        r["relative_error"] = abs(r["learned"] - target)
    for r, e in zip(out["rows"][firms:], np.asarray(se), strict=True):
        r["standard_error"] = float(e)
    out["learn_disclosure"], out["uncertainty"] = True, uncertainty
    out["polar"] = {"none": float(none["profit"]), "full": float(full["profit"])}
    out["paired"] = paired  # learned minus each polar profile's profit, per firm
    out["matches"] = bool(np.all(np.abs(np.asarray(learned["d"]) - target) <= tol))
    out["theory"] = "everybody shares (d = 1)" if share else "nobody shares (d = 0)"
    out["d_path"] = np.asarray(path["d"][:: max(1, steps // 20)]).tolist()
    out["policy"] = {k: np.asarray(v).tolist() for k, v in learned.items()}
    return out


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
    parser.add_argument("--steps", type=int, default=None,
                        help="1500 (cournot --learn-disclosure: 2000)")
    parser.add_argument("--batch", type=int, default=4096)
    parser.add_argument("--lr", type=float, default=0.02)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--firms", type=int, default=None,
                        help="supply_function and cournot (default 2), public_goods (3)")
    parser.add_argument("--auctions", type=int, default=1,
                        help="kyle only: sequential auctions (Kyle-v0's auctions argument)")
    parser.add_argument("--uncertainty", choices=["demand", "cost"], default="demand",
                        help="cournot only")
    parser.add_argument("--share", action="store_true",
                        help="cournot only: every firm discloses fully (default: nobody)")
    parser.add_argument("--learn-disclosure", action="store_true",
                        help="cournot only: learn each firm's disclosure level too")
    parser.add_argument("--d0", type=float, default=0.5,
                        help="cournot --learn-disclosure: the initial disclosure levels")
    parser.add_argument("--disclosure-lr", type=float, default=None,
                        help="cournot --learn-disclosure: the disclosures' rate (lr / 10)")
    parser.add_argument("--warmup", type=int, default=None,
                        help="cournot --learn-disclosure: steps with d frozen (steps / 5)")
    parser.add_argument("--talk", choices=["continuous", "gumbel"], default="continuous",
                        help="public_goods only: the cheap-talk channel")
    parser.add_argument("--set", type=_override, nargs="*", default=[], metavar="NAME=VALUE",
                        help="env params overrides")
    parser.add_argument("--out", default=None, help="write econ_<game>.json into this folder")
    args = parser.parse_args(argv)
    if args.steps is None:
        args.steps = 2000 if args.learn_disclosure else 1500
    if args.steps < 1 or args.batch < 1 or args.lr <= 0 or args.auctions < 1:
        parser.error("needs --steps >= 1, --batch >= 1, --lr > 0, --auctions >= 1")
    if args.auctions != 1 and args.game != "kyle":
        parser.error("--auctions: kyle only")
    if args.learn_disclosure and (args.game != "cournot" or args.share):
        parser.error("--learn-disclosure: cournot only, without --share")
    if args.learn_disclosure and (not 0 <= args.d0 <= 1 or (args.disclosure_lr or 1) <= 0
                                  or (args.warmup or 0) < 0):
        parser.error("--learn-disclosure needs 0 <= --d0 <= 1, --disclosure-lr > 0, "
                     "--warmup >= 0")
    common = {"steps": args.steps, "batch": args.batch, "lr": args.lr, "seed": args.seed,
              "overrides": dict(args.set)}
    firms = args.firms or (3 if args.game == "public_goods" else 2)
    start = time.perf_counter()
    if args.game == "kyle":
        result = run_kyle(auctions=args.auctions, **common)
    elif args.game == "public_goods":
        result = run_public_goods(firms=firms, talk=args.talk, **common)
    elif args.game == "cournot" and args.learn_disclosure:
        result = run_cournot_disclosure(firms=firms, uncertainty=args.uncertainty, d0=args.d0,
                                        disclosure_lr=args.disclosure_lr, warmup=args.warmup,
                                        **common)
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
    if result.get("learn_disclosure"):
        polar = result["polar"]
        print("(d rows: absolute error; profit rows: Monte Carlo, standard error "
              f"{max(r['standard_error'] for r in result['rows'] if 'standard_error' in r):.1e})")
        print(f"closed-form profit per firm: nobody shares {polar['none']:.5f}, "
              f"everybody shares {polar['full']:.5f}")
        for name in ("none", "full"):
            pr = result["paired"][f"minus_{name}"]
            print(f"learned minus {name:<4} (paired, same episodes): " + ", ".join(
                f"{m:+.5f} ± {e:.1e}" for m, e in zip(pr["mean"], pr["standard_error"],
                                                         strict=True)))
        d = [round(r["learned"], 4) for r in result["rows"] if r["coefficient"][0] == "d"]
        print(f"theory ({result['uncertainty']} uncertainty): {result['theory']}; learned "
              f"d = {d}: {'matches' if result['matches'] else 'does NOT match'}")
    print(f"{args.steps} steps x {args.batch} episodes, {result['seconds']:.1f} s")
    if args.out is not None:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / f"econ_{args.game}.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
