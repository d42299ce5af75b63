"""First results on the Witsenhausen variants, at the benchmark point ``k = 0.2, sigma = 5``.

    python -m baselines.witsenhausen_variants [--samples 400000] [--out baselines/results]

Four tables, every number from the variant's own reference functions or from episodes played
through its registered environment (Monte Carlo figures with one standard error):

- ``vector``: lattice strategies on ``Witsenhausen-vector-v0`` (controller 1 quantises ``x0``
  to a scaled lattice, controller 2 decodes to the nearest lattice point), cost per dimension.
  The scale is scanned on common random numbers, then the cost re-estimated on fresh draws.
  The integer lattice has a closed form (:func:`integer_lattice_cost`); the m -> infinity
  limit of :func:`asymptotic_cost` is printed beside them.
- ``multistage``: the best linear policy of ``Witsenhausen-multistage-v0`` for T = 2..5 stages
  (exact costs from :func:`linear_cost`, minimised by Nelder-Mead from several starts over
  controller 1's slope and every middle controller's gains; the last one's gains are its
  LMMSE estimate).
- ``channel``: quantise-and-forward on ``Witsenhausen-channel-v0`` (``u1 = 0``, the message is
  ``x0``, controller 2 plays what arrived): the estimation error and the bits against their
  closed forms, and the team cost at each channel's bit price.
- ``misaligned``: the welfare loss of ``Witsenhausen-misaligned-v0`` at both best affine
  slopes, with controller 1 committed (loss ``bias^2``) and at the affine Nash equilibrium.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
from scipy import optimize

import dcgenv
from dcgenv import comms
from dcgenv.envs import witsenhausen_channel as C
from dcgenv.envs import witsenhausen_misaligned as M
from dcgenv.envs import witsenhausen_multistage as S
from dcgenv.envs import witsenhausen_vector as V
from dcgenv.envs.witsenhausen_reference import affine_cost, best_affine_lambdas

K, SIGMA = 0.2, 5.0
LATTICES = {"Z": 1, "A2": 2, "D4": 4, "E8": 8}


def _mean_se(x) -> dict[str, float]:
    x = np.asarray(x, np.float64)
    return {"mean": float(x.mean()), "se": float(x.std() / np.sqrt(x.size))}


def vector(samples: int) -> list[dict]:
    rows = []
    for name, m in LATTICES.items():
        def cost(scale, key, name=name, m=m):
            k0, kw = jax.random.split(key)
            x0 = SIGMA * jax.random.normal(k0, (samples, m))
            w = jax.random.normal(kw, (samples, m))
            q = V.lattice_quantizer(name, 1.0)
            first = jnp.sum((x0 - scale * q(x0 / scale)) ** 2, -1) / m
            second = jnp.sum((scale * q(w / scale)) ** 2, -1) / m  # decoding error
            return K**2 * first + second
        cost = jax.jit(cost)
        scan = np.arange(3.0, 10.0, 0.05)
        means = [float(cost(s, jax.random.key(0)).mean()) for s in scan]
        scale = float(scan[int(np.argmin(means))])
        fresh = _mean_se(cost(scale, jax.random.key(1)))
        row = {"lattice": name, "dim": m, "scale": scale, "cost_per_dim": fresh}
        if name == "Z":
            row["closed_form"] = V.integer_lattice_cost(scale, K, SIGMA)
        rows.append(row)
    return rows


def multistage(max_stages: int = 5) -> list[dict]:
    rows = []
    for stages in range(2, max_stages + 1):
        sizes = list(range(1, stages - 1))  # gains of controllers 2..T-1

        def cost(theta, sizes=sizes):
            gains, i = [], 1
            for n in sizes:
                gains.append(theta[i:i + n])
                i += n
            return S.linear_cost(theta[0], gains, None, K, SIGMA)

        best = None
        for lam in (0.02, 0.5, 0.96, 1.0):
            for g in (0.0, 0.5):
                x0 = np.concatenate([[lam], np.full(sum(sizes), g)])
                res = optimize.minimize(cost, x0, method="Nelder-Mead",
                                        options={"xatol": 1e-10, "fatol": 1e-12,
                                                 "maxiter": 20000})
                if best is None or res.fun < best.fun:
                    best = res
        rows.append({"stages": stages, "best_linear_cost": float(best.fun),
                     "slope": float(best.x[0]), "middle_gains": best.x[1:].tolist(),
                     "idle_middle_cost": S.linear_cost(float(best.x[0]),
                                                       [np.zeros(n) for n in sizes], None, K,
                                                       SIGMA)})
    return rows


def channel(samples: int) -> list[dict]:
    def forward(obs):
        return {"control": jnp.stack([0.0, obs["message"][1, 0]]), "message": obs["signal"]}

    rows = []
    for name, ch, mse in (("FakeQuant(3 bits, [-10, 10])", comms.FakeQuant(3, -10.0, 10.0),
                           C.fakequant_mse(3, -10.0, 10.0, SIGMA)),
                          ("DDCL(delta = 1)", comms.DDCL(1.0), C.ddcl_mse(1.0))):
        env, params = dcgenv.make("Witsenhausen-channel-v0", channel=ch)

        def episode(key, env=env, params=params):
            k0, k1, k2 = jax.random.split(key, 3)
            obs, s = env.reset(k0, params)
            obs, s, r0, _, _, info = env.step(k1, s, forward(obs), params)
            _, _, r1, *_ = env.step(k2, s, forward(obs), params)
            return -r1[0], info["bits"], -(r0[0] + r1[0])

        error, bits, total = jax.jit(jax.vmap(episode))(
            jax.random.split(jax.random.key(2), samples))
        row = {"channel": name, "bit_cost": float(params.bit_cost),
               "squared_error": _mean_se(error), "squared_error_closed_form": mse,
               "bits": _mean_se(bits), "team_cost": _mean_se(total)}
        if isinstance(ch, comms.DDCL):
            row["bits_closed_form"] = C.ddcl_expected_bits(1.0, SIGMA)
        rows.append(row)
    return rows


def misaligned(samples: int, bias: float = 1.0) -> list[dict]:
    env, params = dcgenv.make("Witsenhausen-misaligned-v0", k=K, sigma=SIGMA, bias=bias)

    def episode(theta, key):
        lam, offset, slope, intercept = theta
        k0, k1, k2 = jax.random.split(key, 3)
        obs, s = env.reset(k0, params)
        x0 = obs["signal"][0, 0]
        obs, s, r0, *_ = env.step(k1, s, jnp.stack([(lam - 1) * x0 + offset, 0.0]), params)
        _, _, r1, *_ = env.step(k2, s, jnp.stack([0.0, slope * obs["signal"][1, 0]
                                                  + intercept]), params)
        return -(r0[0] + r1[0])

    run = jax.jit(jax.vmap(episode, (None, 0)))
    keys = jax.random.split(jax.random.key(3), samples)
    rows = []
    for lam in best_affine_lambdas(K, SIGMA):
        nash = M.affine_nash(lam, bias, K, SIGMA)
        aligned = affine_cost(lam, K, SIGMA)
        f = lambda *v: tuple(jnp.float32(x) for x in v)
        committed = run(f(lam, 0.0, nash["slope"], bias), keys)
        at_nash = run(f(lam, nash["offset"], nash["slope"], nash["intercept"]), keys)
        rows.append({"slope": float(lam), "aligned_team_cost": aligned,
                     "committed_loss": _mean_se(np.asarray(committed) - aligned),
                     "committed_loss_closed_form": M.welfare_loss(bias),
                     "nash_team_cost": _mean_se(at_nash),
                     "nash_team_cost_closed_form": nash["team_cost"]})
    return rows


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--samples", type=int, default=400_000)
    parser.add_argument("--out", default="baselines/results")
    args = parser.parse_args(argv)
    if args.samples < 100:
        parser.error(f"--samples must be >= 100, got {args.samples}")
    start = time.perf_counter()
    result = {"k": K, "sigma": SIGMA, "samples": args.samples,
              "vector": vector(args.samples), "asymptotic_cost": V.asymptotic_cost(K, SIGMA),
              "multistage": multistage(), "channel": channel(args.samples // 8),
              "misaligned": misaligned(args.samples // 8)}
    result["seconds"] = time.perf_counter() - start
    print("vector (cost per dimension):")
    for r in result["vector"]:
        c = r["cost_per_dim"]
        extra = f"  closed form {r['closed_form']:.5f}" if "closed_form" in r else ""
        print(f"  {r['lattice']:<3} m={r['dim']}  scale {r['scale']:.2f}  "
              f"{c['mean']:.5f} ± {c['se']:.5f}{extra}")
    print(f"  m -> infinity (asymptotic_cost): {result['asymptotic_cost']:.5f}")
    print("multistage (best linear):")
    for r in result["multistage"]:
        print(f"  T={r['stages']}  {r['best_linear_cost']:.6f}  slope {r['slope']:.5f}  "
              f"idle middle controllers {r['idle_middle_cost']:.6f}")
    print("channel (quantise and forward):")
    for r in result["channel"]:
        e, b, t = r["squared_error"], r["bits"], r["team_cost"]
        print(f"  {r['channel']:<30} error {e['mean']:.5f} ± {e['se']:.5f} (closed "
              f"{r['squared_error_closed_form']:.5f})  bits {b['mean']:.3f} ± {b['se']:.3f}  "
              f"team cost {t['mean']:.5f} ± {t['se']:.5f} at {r['bit_cost']} per bit")
    print("misaligned (bias 1):")
    for r in result["misaligned"]:
        c, n = r["committed_loss"], r["nash_team_cost"]
        print(f"  slope {r['slope']:.5f}: committed loss {c['mean']:.4f} ± {c['se']:.4f} "
              f"(closed {r['committed_loss_closed_form']:.4f}); Nash team cost "
              f"{n['mean']:.4f} ± {n['se']:.4f} (closed {r['nash_team_cost_closed_form']:.4f})")
    print(f"{result['seconds']:.0f} s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "witsenhausen_variants.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    main()
