"""Neural controller 1 for Witsenhausen's counterexample, trained through ``Witsenhausen-v0``.

    python -m baselines.witsenhausen --solver neural [--iters 4000] [--width 64]

Controller 1 is a small MLP (flax.linen), made odd by construction, ``x1 = (f(x0) - f(-x0)) /
2`` with ``f(x0) = x0 + sigma * MLP(x0 / sigma)``: no staircase is built in. It is trained
like the parametric staircase of :mod:`baselines.witsenhausen`: episodes run through
``env.reset``/``env.step`` (vmapped over a batch), the loss is the mean episode cost, and its
pathwise gradient reaches the MLP's weights through controller 1's action. Controller 2 plays
the optimal ``E[x1 | y]`` for the current MLP, tabulated from the MLP on an ``x0`` grid (the
``x1`` mass binned on a ``y`` grid and convolved with the noise density), held fixed under
differentiation except for its slope in ``y`` (the envelope theorem: the cost's gradient
through the optimal controller 2's dependence on controller 1 is zero).

Neural controllers for this problem go back to Baglietto, Parisini & Zoppoli (2001,
"Numerical solutions to the Witsenhausen counterexample by approximating networks", IEEE TAC
46(9)). The learned policy's *exact* cost is reported (``expected_cost``, with its error
estimate), and a figure compares it with the parametric staircase
(``docs/images/witsenhausen_neural_gamma1.png``, with ``--figure``).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

import dcgenv
from baselines import witsenhausen as staircase
from dcgenv.envs import witsenhausen_reference as R


@dataclasses.dataclass(frozen=True)
class Config:
    k: float = 0.2
    sigma: float = 5.0
    width: int = 64  # hidden units per layer
    depth: int = 2  # hidden layers
    batch: int = 8192  # episodes per gradient step
    iters: int = 4000
    lr: float = 3e-3
    input_scale: float = 1.0  # the MLP sees input_scale * x0 / sigma (steeper features if > 1)
    grid: int = 4001  # x0 grid for controller 2's posterior mean
    seed: int = 0
    error_estimate: int = 1  # 0: skip the error estimate (two more evaluations of the cost)
    figure: str = ""  # if set, write the gamma1 figure there (e.g. docs/images/...png)
    staircase_json: str = "baselines/results/witsenhausen.json"  # drawn in the figure

    def __post_init__(self):
        checks = {"k >= 0": self.k >= 0, "sigma > 0": self.sigma > 0, "width >= 1":
                  self.width >= 1, "depth >= 1": self.depth >= 1, "batch >= 1": self.batch >= 1,
                  "iters >= 1": self.iters >= 1, "lr > 0": self.lr > 0, "grid >= 2":
                  self.grid >= 2, "input_scale > 0": self.input_scale > 0}
        failed = [rule for rule, ok in checks.items() if not ok]
        if failed:
            raise ValueError(f"bad neural Config: needs {', '.join(failed)}; got {self}")


class MLP(nn.Module):
    width: int
    depth: int

    @nn.compact
    def __call__(self, z):
        h = z[..., None]
        for _ in range(self.depth):
            h = jnp.tanh(nn.Dense(self.width)(h))
        return nn.Dense(1)(h)[..., 0]


def make_gamma1(cfg: Config):
    """``gamma1(params, x0) -> x1``: the odd MLP controller 1."""
    net = MLP(cfg.width, cfg.depth)

    def f(params, x0):
        return x0 + cfg.sigma * net.apply(params, cfg.input_scale * x0 / cfg.sigma)

    return net, lambda params, x0: (f(params, x0) - f(params, -x0)) / 2


def optimal_gamma2(x1_of_x0, cfg: Config, h: float = 0.05):
    """``y -> E[x1 | y]`` for the controller 1 ``x1_of_x0`` (a function of an ``x0`` array),
    from its values on an ``x0`` grid binned linearly onto a ``y`` grid of spacing ``h`` and
    convolved with the noise density; jnp, interpolated."""
    x0 = jnp.linspace(-6 * cfg.sigma, 6 * cfg.sigma, cfg.grid)
    w = jnp.exp(-0.5 * (x0 / cfg.sigma) ** 2)
    return staircase.binned_posterior_mean(x1_of_x0(x0), w, cfg.sigma, h)


def make_train(cfg: Config):
    env, params = dcgenv.make("Witsenhausen-v0", k=cfg.k, sigma=cfg.sigma)
    net, gamma1 = make_gamma1(cfg)
    opt = optax.adam(optax.cosine_decay_schedule(cfg.lr, cfg.iters, alpha=0.02))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def loss(theta, key):
        fixed = jax.lax.stop_gradient(theta)
        gamma2 = optimal_gamma2(lambda x0: gamma1(fixed, x0), cfg)
        policy = R.env_policy(lambda x0: gamma1(theta, x0), gamma2)
        key_reset, key_act, *step_keys = jax.random.split(key, 4)
        obs, state = jax.vmap(env.reset, in_axes=(0, None))(
            jax.random.split(key_reset, cfg.batch), params)
        act_keys = jax.random.split(key_act, cfg.batch)
        cost = jnp.zeros(cfg.batch)
        for step_key in step_keys:  # controller 1 moves, then controller 2; the episode ends
            actions = jax.vmap(policy)(act_keys, obs)
            obs, state, reward, *_ = step(jax.random.split(step_key, cfg.batch), state,
                                          actions, params)
            cost = cost - reward[:, 0]
        return jnp.mean(cost)

    def train(theta, key):
        def update(carry, key):
            theta, opt_state = carry
            value, grad = jax.value_and_grad(loss)(theta, key)
            updates, opt_state = opt.update(grad, opt_state, theta)
            return (optax.apply_updates(theta, updates), opt_state), value

        (theta, _), losses = jax.lax.scan(update, (theta, opt.init(theta)),
                                          jax.random.split(key, cfg.iters))
        return theta, losses

    return train, net, gamma1


def solve(cfg: Config, log=print) -> dict:
    """Train the MLP; returns its exact cost (with error estimate) and samples of ``gamma1``."""
    start = time.perf_counter()
    train, net, gamma1 = make_train(cfg)
    key_init, key_train = jax.random.split(jax.random.key(cfg.seed))
    theta0 = net.init(key_init, jnp.zeros(1))
    theta, losses = jax.block_until_ready(jax.jit(train)(theta0, key_train))
    train_s = time.perf_counter() - start
    as64 = lambda th: jax.tree.map(lambda x: np.asarray(x, np.float64), th)  # noqa: E731
    theta64, start64 = as64(theta), as64(theta0)
    policy = lambda x0: gamma1(theta64, x0)  # noqa: E731
    if cfg.error_estimate:
        cost, error = R.expected_cost_with_error(policy, cfg.k, cfg.sigma)
    else:
        cost, error = R.expected_cost(policy, cfg.k, cfg.sigma), None
    initial = R.expected_cost(lambda x0: gamma1(start64, x0), cfg.k, cfg.sigma)
    x0 = np.linspace(0.0, 6 * cfg.sigma, 1201)
    with jax.enable_x64(True):
        x1 = np.asarray(policy(jnp.asarray(x0)))
    if cfg.figure:
        plot_gamma1(x0, x1, cfg, cost)
    return {"config": dataclasses.asdict(cfg), "exact_cost": cost, "error_estimate": error,
            "initial_exact_cost": initial, "initial_loss": float(losses[0]),
            "final_batch_loss": float(np.mean(losses[-100:])),
            "train_seconds": train_s, "total_seconds": time.perf_counter() - start,
            "gamma1_samples": {"x0": x0.tolist(), "x1": x1.tolist()}, "policy": policy}


def plot_gamma1(x0, x1, cfg: Config, cost: float) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    ax.plot(x0, x0, color="0.8", lw=0.8, label="x1 = x0")
    if Path(cfg.staircase_json).exists():
        best = json.loads(Path(cfg.staircase_json).read_text())["best"]
        stairs = R.staircase(best["thresholds"], best["levels"], best["slopes"])
        ax.plot(x0, np.asarray(stairs(jnp.asarray(x0, jnp.float32))), lw=2.2, alpha=0.6,
                label=f"parametric sloped staircase ({best['exact_cost']:.8f})")
    ax.plot(x0, x1, lw=1.2, color="C3", label=f"neural gamma1, MLP ({cost:.8f})")
    ax.set(xlabel="x0 (the policy is odd; x0 >= 0 shown)", ylabel="x1 = gamma1(x0)",
           title=f"Controller 1 learned at k = {cfg.k}, sigma = {cfg.sigma} (exact costs)")
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    Path(cfg.figure).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(cfg.figure, dpi=120)
    plt.close(fig)
