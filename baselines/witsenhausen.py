"""Gradient-based solver for Witsenhausen's counterexample, trained through ``Witsenhausen-v0``.

    python -m baselines.witsenhausen [--iters 3000] [--spacings 6.0 6.5] [--out baselines/results]
    python -m baselines.witsenhausen --solver pointwise   # or annealing, neural: other families

``--solver`` picks the family (:data:`SOLVERS`): ``staircase`` (the default, this module),
``pointwise`` and ``annealing`` (person-by-person replies on a grid, hard or annealed;
:mod:`baselines.witsenhausen_pointwise`), ``neural`` (an MLP controller 1 trained through the
env; :mod:`baselines.witsenhausen_neural`). Each other family takes its own ``Config`` fields
as flags and writes ``witsenhausen_<solver>.json``; every cost there is ``expected_cost`` of the
returned policy with its error estimate (``expected_cost_with_error``).

Controller 1 is an odd staircase of ``pieces`` sloped steps, ``x1 = sgn(x0) (L_i + s_i (|x0| -
L_i))`` on step ``i`` (levels ``L_i``, slopes ``s_i``; a level ``L_0`` near 0 is a step centred
on the origin), between learnable thresholds ``0 < b_1 < ... < b_{pieces-1}``. During training
the step boundaries are soft: at ``x0`` the policy is on step ``i`` with probability ``g_i(x0)``
(differences of sigmoids of width ``tau`` at the thresholds), and the expectation over that
choice is taken exactly by running each episode once per step and weighting the costs. Levels
and slopes thus get pathwise gradients through ``env.reset``/``env.step`` (vmapped over the
batch), thresholds the gradient of the weights; blending levels instead (a sum of sigmoids)
would create intermediate ``x1`` values, whose cost pushes thresholds outward (in our runs an
exact cost of 0.168-0.176 instead of 0.1669). ``tau`` is annealed geometrically; the learned
policy is the ``tau -> 0`` limit (an exponential average of the iterates), and its *exact* cost
is reported (:func:`dcgenv.envs.witsenhausen.expected_cost`).

Controller 2 plays the optimal ``E[x1 | y]`` for the current controller 1 (unit observation
noise, as in the benchmark), in closed form over a discretised controller 1: the mixture over
an ``x0`` grid is binned onto a ``y`` grid, convolved with the noise density, and interpolated.
The table is held fixed under differentiation (by the envelope theorem the cost's gradient
through the optimal controller 2's dependence on controller 1 is zero), its slope in ``y`` is
not: the gradient flows through controller 2's action into the env's stage-2 cost.

Several initialisations (step spacings, with or without a step on the origin) train in one
vmapped, jitted ``lax.scan``; the best by exact cost is reported. Writes ``witsenhausen.json``
under ``--out``.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import optax

import dcgenv
from dcgenv.envs import witsenhausen as W
from dcgenv.envs import witsenhausen_reference as R


@dataclasses.dataclass(frozen=True)
class Config:
    k: float = 0.2
    sigma: float = 5.0
    pieces: int = 5  # steps for x0 >= 0 (the policy is odd)
    spacings: tuple[float, ...] = (6.5,)  # initial step spacing, one run each ...
    centred: tuple[bool, ...] = (True, False)  # ... with and without a step on the origin
    batch: int = 16384  # episodes per gradient step (each run once per step of the policy)
    iters: int = 3000
    lr: float = 0.01
    tau_start: float = 0.3  # gate width (x0 units), annealed geometrically
    tau_end: float = 0.01
    ema: float = 0.99  # the learned policy is this exponential average of the iterates
    grid: int = 4001  # x0 grid for controller 2's posterior mean
    seed: int = 0
    error_estimate: int = 1  # 0: skip the best run's error estimate (two more evaluations)

    def __post_init__(self):
        checks = {"k >= 0": self.k >= 0, "sigma > 0": self.sigma > 0, "pieces >= 1":
                  self.pieces >= 1, "spacings > 0 (at least one)": len(self.spacings) > 0
                  and min(self.spacings) > 0, "centred non-empty": len(self.centred) > 0,
                  "batch >= 1": self.batch >= 1, "iters >= 1": self.iters >= 1, "lr > 0":
                  self.lr > 0, "0 < tau_end <= tau_start": 0 < self.tau_end <= self.tau_start,
                  "0 <= ema < 1": 0 <= self.ema < 1, "grid >= 2": self.grid >= 2}
        failed = [rule for rule, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"bad Config: needs {', '.join(failed)}; got {self}")


def initial_policies(cfg: Config) -> dict[str, jax.Array]:
    """One parameter set per (spacing, centred) pair, stacked on a leading axis."""
    runs = [(d, c) for d in cfg.spacings for c in cfg.centred]
    i = jnp.arange(cfg.pieces, dtype=jnp.float32)
    levels = jnp.stack([d * (i + (0.0 if c else 0.5)) for d, c in runs])
    thresholds = jnp.stack([d * (i[1:] - (0.5 if c else 0.0)) for d, c in runs])
    gaps = jnp.diff(thresholds, prepend=0.0, axis=1)
    return {"levels": levels, "slopes": jnp.zeros_like(levels),
            "gaps": jnp.log(jnp.expm1(gaps))}  # thresholds = cumsum(softplus(gaps)) > 0


def gates(theta: dict[str, jax.Array], x0: jax.Array, tau: float | jax.Array) -> jax.Array:
    """Probability of each step at ``x0``, ``[..., pieces]``; ``tau = 0``: the hard staircase."""
    b = jnp.cumsum(jax.nn.softplus(theta["gaps"]))
    x = jnp.abs(x0)[..., None]
    if isinstance(tau, (int, float)) and tau == 0:
        up = (x >= b).astype(x.dtype)
    else:
        up = jax.nn.sigmoid((x - b) / tau)
    ones, zeros = jnp.ones_like(up[..., :1]), jnp.zeros_like(up[..., :1])
    return jnp.concatenate([ones, up], -1) - jnp.concatenate([up, zeros], -1)


def steps(theta: dict[str, jax.Array], x0: jax.Array) -> jax.Array:
    """``x1`` if ``x0`` were on each step, ``[..., pieces]``: ``sgn(x0) (L + s (|x0| - L))``."""
    lev, slope = theta["levels"], theta["slopes"]
    return jnp.sign(x0)[..., None] * (lev + slope * (jnp.abs(x0)[..., None] - lev))


def gamma1(theta: dict[str, jax.Array], x0: jax.Array) -> jax.Array:
    """The learned (deterministic, ``tau = 0``) controller 1: ``x0 -> x1``."""
    return jnp.sum(gates(theta, x0, 0) * steps(theta, x0), -1)


def optimal_gamma2(theta, tau, cfg: Config, h: float = 0.05):
    """``y -> E[x1 | y]`` for controller 1 with soft gates: the mixture of steps over an ``x0``
    grid of ``cfg.grid`` points is binned linearly onto a ``y`` grid of spacing ``h`` (which
    keeps each bin's mass and mean), convolved with the noise density, and interpolated."""
    x0 = jnp.linspace(-6 * cfg.sigma, 6 * cfg.sigma, cfg.grid)
    w = (gates(theta, x0, tau) * jnp.exp(-0.5 * (x0 / cfg.sigma) ** 2)[:, None]).ravel()
    return binned_posterior_mean(steps(theta, x0).ravel(), w, cfg.sigma, h)


def binned_posterior_mean(x1: jax.Array, w: jax.Array, sigma: float, h: float = 0.05):
    """``y -> E[x1 | y]`` (unit noise) for the discrete distribution of ``x1`` values with
    weights ``w``: binned linearly onto a ``y`` grid of spacing ``h`` over ``+-8 sigma`` (which
    keeps each bin's mass and mean), convolved with the noise density, interpolated (jnp)."""
    y = jnp.arange(-8 * sigma, 8 * sigma + h / 2, h)
    pos = jnp.clip((x1 - y[0]) / h, 0, len(y) - 1.001)
    i, frac = jnp.floor(pos).astype(jnp.int32), pos % 1.0
    mass = jnp.zeros_like(y).at[i].add(w * (1 - frac)).at[i + 1].add(w * frac)
    noise = jnp.exp(-0.5 * jnp.arange(-8.0, 8.0 + h / 2, h) ** 2)
    density = jnp.convolve(mass, noise, mode="same")
    mean = jnp.convolve(mass * y, noise, mode="same")
    ok = density > 1e-30
    table = jnp.where(ok, mean / jnp.where(ok, density, 1.0), y)
    return lambda obs_y: jnp.interp(obs_y, y, table)


def episode_costs(theta, tau, key, env, params, cfg: Config) -> jax.Array:
    """Expected cost of ``cfg.batch`` env episodes, ``[batch]``, under (controller 1 with soft
    gates, optimal controller 2). Near a threshold controller 1 picks each neighbouring step
    with its gate probability; the expectation over that choice is taken exactly, by running
    every episode once per step (same ``x0`` and noise) and weighting the costs by the gates.
    So levels and slopes get pathwise gradients through the env, thresholds the gradient of
    the gate weights, and no intermediate ``x1`` values are produced (a sigmoid blend of levels
    would bias thresholds outward, to where transitions are rarer)."""
    gamma2 = optimal_gamma2(jax.lax.stop_gradient(theta), tau, cfg)
    key_reset, key_act, *step_keys = jax.random.split(key, 4)
    act_keys = jax.random.split(key_act, cfg.batch)
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    obs0, state0 = jax.vmap(env.reset, in_axes=(0, None))(
        jax.random.split(key_reset, cfg.batch), params)

    def cost_on_step(i):  # every episode with controller 1 on step i
        policy = W.env_policy(lambda x0: steps(theta, x0)[..., i], gamma2)
        obs, state, cost = obs0, state0, jnp.zeros(cfg.batch)
        for step_key in step_keys:  # controller 1 moves, then controller 2; the episode ends
            actions = jax.vmap(policy)(act_keys, obs)
            obs, state, reward, *_ = step(jax.random.split(step_key, cfg.batch), state,
                                          actions, params)
            cost = cost - reward[:, 0]
        return cost

    costs = jax.vmap(cost_on_step, out_axes=-1)(jnp.arange(cfg.pieces))
    return jnp.sum(gates(theta, obs0["signal"][:, 0, 0], tau) * costs, -1)


def make_train(cfg: Config):
    env, params = dcgenv.make("Witsenhausen-v0", k=cfg.k, sigma=cfg.sigma)
    schedule = optax.cosine_decay_schedule(cfg.lr, cfg.iters, alpha=0.05)
    opt = optax.adam(schedule)

    def loss(theta, tau, key):
        return jnp.mean(episode_costs(theta, tau, key, env, params, cfg))

    def train_one(theta, key):
        def update(carry, xs):
            theta, opt_state, average = carry
            it, key = xs
            tau = cfg.tau_start * (cfg.tau_end / cfg.tau_start) ** (it / cfg.iters)
            value, grad = jax.value_and_grad(loss)(theta, tau, key)
            updates, opt_state = opt.update(grad, opt_state, theta)
            theta = optax.apply_updates(theta, updates)
            average = optax.incremental_update(theta, average, 1 - cfg.ema)
            return (theta, opt_state, average), value

        xs = (jnp.arange(cfg.iters), jax.random.split(key, cfg.iters))
        (_, _, average), losses = jax.lax.scan(update, (theta, opt.init(theta), theta), xs)
        return average, losses

    def train(key):
        theta0 = initial_policies(cfg)
        keys = jax.random.split(key, len(theta0["levels"]))
        return jax.vmap(train_one)(theta0, keys)

    return train


def run(cfg: Config) -> dict:
    start = time.perf_counter()
    thetas, losses = jax.block_until_ready(jax.jit(make_train(cfg))(jax.random.key(cfg.seed)))
    train_s = time.perf_counter() - start
    runs, theta0, policies = [], initial_policies(cfg), []
    for i in range(len(losses)):
        theta = jax.tree.map(lambda x, i=i: np.asarray(x[i], np.float64), thetas)
        policies.append(lambda x0, t=theta: gamma1(t, x0))
        start_theta = jax.tree.map(lambda x, i=i: np.asarray(x[i], np.float64), theta0)
        runs.append({
            "init": {"spacing": [d for d in cfg.spacings for _ in cfg.centred][i],
                     "centred": [c for _ in cfg.spacings for c in cfg.centred][i]},
            "exact_cost": W.expected_cost(policies[-1], cfg.k, cfg.sigma),
            "initial_exact_cost": W.expected_cost(lambda x0, t=start_theta: gamma1(t, x0),
                                                  cfg.k, cfg.sigma),
            "final_batch_loss": float(np.mean(np.asarray(losses[i][-100:]))),
            "levels": theta["levels"].tolist(), "slopes": theta["slopes"].tolist(),
            "thresholds": np.cumsum(np.logaddexp(0.0, theta["gaps"])).tolist()})
    best = min(runs, key=lambda r: r["exact_cost"])
    if cfg.error_estimate:
        policy = policies[runs.index(best)]
        best["error_estimate"] = R.expected_cost_with_error(policy, cfg.k, cfg.sigma)[1]
    return {"config": dataclasses.asdict(cfg), "train_seconds": train_s,
            "total_seconds": time.perf_counter() - start, "best": best, "runs": runs,
            "references": reference_costs(cfg)}


def reference_costs(cfg: Config) -> dict[str, float]:
    lam = W.best_affine_lambdas(cfg.k, cfg.sigma)[0]
    return {"best_affine": W.expected_cost(W.affine(lam), cfg.k, cfg.sigma),
            "two_point": W.expected_cost(W.two_point(cfg.sigma), cfg.k, cfg.sigma),
            "best_published (Mehmetoglu et al. 2014)": 0.16692291}


def _bool(text: str) -> bool:
    if text.lower() not in ("true", "false"):
        raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")
    return text.lower() == "true"


_ARG_TYPES = {"int": (int, None), "float": (float, None), "tuple[float, ...]": (float, "+"),
              "tuple[bool, ...]": (_bool, "+")}


# name -> (module with Config and solve(cfg) -> dict, Config overrides); None: this module
SOLVERS = {"staircase": None, "pointwise": ("baselines.witsenhausen_pointwise", {}),
           "annealing": ("baselines.witsenhausen_pointwise", {"start": "affine",
                                                              "temperature": 0.1}),
           "neural": ("baselines.witsenhausen_neural", {})}


def solver_config(name: str, **overrides):
    """``(module, Config)`` of solver ``name`` with its defaults and ``overrides``."""
    if name not in SOLVERS or SOLVERS[name] is None:
        raise ValueError(f"solver must be one of {sorted(SOLVERS)} (staircase via main or run), "
                         f"got {name!r}")
    module_name, defaults = SOLVERS[name]
    module = importlib.import_module(module_name)
    return module, module.Config(**{**defaults, **overrides})


def main(argv: list[str] | None = None) -> dict:
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--solver", default="staircase")
    solver, rest = pre.parse_known_args(argv)
    if solver.solver not in SOLVERS:
        raise ValueError(f"--solver must be one of {sorted(SOLVERS)}, got {solver.solver!r}")
    if solver.solver != "staircase":
        return main_other(solver.solver, rest)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--solver", choices=sorted(SOLVERS), default="staircase")
    for field in dataclasses.fields(Config):
        kind, nargs = _ARG_TYPES[field.type]
        parser.add_argument(f"--{field.name}", type=kind, nargs=nargs, default=field.default)
    parser.add_argument("--out", default="baselines/results")
    args = vars(parser.parse_args(argv))
    out = Path(args.pop("out"))
    args.pop("solver")
    result = run(Config(**{k: tuple(v) if isinstance(v, list) else v for k, v in args.items()}))
    print(f"{'policy':<46} {'exact cost':>12} {'at init':>12}")
    for r in result["runs"]:
        name = f"learned (init spacing {r['init']['spacing']}, centred {r['init']['centred']})"
        print(f"{name:<46} {r['exact_cost']:>12.8f} {r['initial_exact_cost']:>12.8f}")
    for name, cost in result["references"].items():
        print(f"{name:<46} {cost:>12.8f}")
    error = result["best"].get("error_estimate")
    error = "skipped" if error is None else f"{error:.1e}"
    print(f"best learned {result['best']['exact_cost']:.8f} (error estimate {error}); training "
          f"{result['train_seconds']:.0f} s, total {result['total_seconds']:.0f} s")
    out.mkdir(parents=True, exist_ok=True)
    (out / "witsenhausen.json").write_text(json.dumps(result, indent=2))
    return result


def main_other(name: str, argv: list[str]) -> dict:
    """``--solver NAME`` for the families in their own modules: flags from their ``Config``."""
    module, defaults = solver_config(name)
    parser = argparse.ArgumentParser(description=module.__doc__.splitlines()[0])
    parser.add_argument("--solver", choices=sorted(SOLVERS), default=name)
    for field in dataclasses.fields(defaults):
        kind = {"int": int, "float": float, "str": str}[field.type]
        parser.add_argument(f"--{field.name}", type=kind, default=getattr(defaults, field.name))
    parser.add_argument("--out", default="baselines/results")
    args = vars(parser.parse_args(argv))
    out = Path(args.pop("out"))
    args.pop("solver")
    result = {"solver": name, **module.solve(type(defaults)(**args)),
              "best_published (Mehmetoglu et al. 2014)": 0.16692291}
    gap = result["exact_cost"] - 0.16692291
    error = "skipped" if result["error_estimate"] is None else f"{result['error_estimate']:.1e}"
    print(f"{name}: exact cost {result['exact_cost']:.10f} (error estimate {error}), "
          f"{abs(gap):.2e} {'below' if gap < 0 else 'above'} 0.16692291 (Mehmetoglu et al. "
          f"2014); {result['total_seconds']:.0f} s")
    out.mkdir(parents=True, exist_ok=True)
    saved = {key: value for key, value in result.items() if key != "policy"}
    (out / f"witsenhausen_{name}.json").write_text(json.dumps(saved, indent=2))
    return result  # with "policy", the solver's controller 1 (an elementwise jnp function)


if __name__ == "__main__":
    main()
