"""Worked example for docs/comms.md: a speaker/listener game over a DDCL channel.

A speaker sees one of 6 goals, drawn with the DDCL GridWorld weights (50, 25, 2, 1, 1, 1), and
sends z in R^4 through ``comms.DDCL(delta=0.2)``; a listener reads the reconstruction and
guesses the goal. Loss = cross-entropy + lam * DDCL surrogate cost. After training the channel
runs in evaluation mode (real integers, real Elias-gamma code) and the script prints bits on
the wire, the surrogate cost and the empirical entropy of the messages, per goal and overall.

    python benchmarks/comms_example.py [--steps 1500] [--lam 0.01] [--seed 0]

Runs in well under a minute on a laptop CPU. Uses optax (an ``agents`` extra), not dcgenv.
"""

from __future__ import annotations

import argparse

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dcgenv import comms

GOAL_WEIGHTS = np.array([50, 25, 2, 1, 1, 1], np.float32)
NUM_GOALS, DIM, BATCH = 6, 4, 256


def init(key):
    ks, kl = jax.random.split(key)
    return {"speaker": 0.5 * jax.random.normal(ks, (NUM_GOALS, DIM)),
            "listener": 0.5 * jax.random.normal(kl, (DIM, NUM_GOALS)),
            "bias": jnp.zeros(NUM_GOALS)}


def play(params, key, channel, lam, *, train):
    """One batch of the game: goals -> messages -> channel -> guesses. Returns (loss, info)."""
    k_goal, k_channel = jax.random.split(key)
    goals = jax.random.categorical(k_goal, jnp.log(GOAL_WEIGHTS), shape=(BATCH,))
    z = comms.tap("message", params["speaker"][goals])  # [BATCH, DIM], one message per game
    keys = jax.random.split(k_channel, BATCH)  # shared by each sender/receiver pair
    z_hat, stats = jax.vmap(lambda k, m: channel.send(k, m, train=train))(keys, z)
    logits = z_hat @ params["listener"] + params["bias"]
    ce = optax.softmax_cross_entropy_with_integer_labels(logits, goals).mean()
    loss = ce + lam * stats["cost"].mean()
    info = {"goals": goals, "correct": jnp.argmax(logits, -1) == goals, **stats}
    return loss, info


def train(key, channel, lam, steps):
    opt = optax.adam(3e-2)
    step_fn = comms.value_and_grad_with_taps(play, has_aux=True)

    def step(carry, key):
        params, opt_state = carry
        (loss, _), grads, taps = step_fn(params, key, channel, lam, train=True)
        updates, opt_state = opt.update(grads, opt_state)
        norm = jnp.linalg.norm(taps["message"], axis=-1).mean()  # |d loss / d message|
        return (optax.apply_updates(params, updates), opt_state), (loss, norm)

    k_init, k_steps = jax.random.split(key)
    params = init(k_init)
    carry, (losses, grad_norms) = jax.lax.scan(step, (params, opt.init(params)),
                                               jax.random.split(k_steps, steps))
    return carry[0], losses, grad_norms


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--lam", type=float, default=0.01)
    parser.add_argument("--delta", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    channel = comms.DDCL(delta=args.delta)
    key_train, key_eval = jax.random.split(jax.random.key(args.seed))

    train_jit = jax.jit(train, static_argnums=(1, 3))
    params, losses, grad_norms = train_jit(key_train, channel, args.lam, args.steps)
    print(f"{channel}, lam={args.lam}, {args.steps} steps of {BATCH} games")
    print(f"loss {float(losses[0]):.3f} -> {float(losses[-1]):.3f}; "
          f"mean |d loss/d message| {float(grad_norms[0]):.2e} -> {float(grad_norms[-1]):.2e}")

    # One speaker/listener step with the channel in evaluation mode: what goes on the wire.
    goal, key_msg = 0, jax.random.key(1)
    z = params["speaker"][goal]
    z_hat, stats = channel.send(key_msg, z, train=False)
    wire = comms.encode(stats["symbols"])
    print(f"\ngoal {goal}: z = {np.round(np.asarray(z), 3)}")
    print(f"  integers m = {np.asarray(stats['symbols']).astype(int)}, wire '{wire}' "
          f"({len(wire)} bits = stats['bits'] {float(stats['bits']):.0f}), "
          f"surrogate cost {float(stats['cost']):.2f}")
    received = channel.dequantise(key_msg, jnp.asarray(comms.decode(wire), jnp.float32))
    print(f"  receiver: decode -> m -> m*delta - eps = {np.round(np.asarray(received), 3)} "
          f"(send's z_hat {np.round(np.asarray(z_hat), 3)})")

    # Evaluation: many games with real integers and real codes.
    batches = [jax.jit(play, static_argnums=2, static_argnames="train")(
        params, k, channel, args.lam, train=False)[1] for k in jax.random.split(key_eval, 16)]
    info = {k: np.concatenate([np.atleast_1d(np.asarray(b[k])) for b in batches])
            for k in batches[0]}
    goals, bits, cost = info["goals"], info["bits"], info["cost"]
    print(f"\nevaluation over {len(goals)} games: accuracy {info['correct'].mean():.3f}")
    print(f"  bits sent per message (Elias-gamma code): {bits.mean():.2f}")
    print(f"  surrogate cost per message:                {cost.mean():.2f}")
    print(f"  empirical entropy per message (bound):     "
          f"{comms.empirical_entropy_bits(info['symbols']):.2f} joint, "
          f"{comms.empirical_entropy_bits(info['symbols'], joint=False):.2f} per element")
    print(f"  continuous baseline: {32 * DIM} bits per message")
    freq = GOAL_WEIGHTS / GOAL_WEIGHTS.sum()
    per_goal = np.array([bits[goals == g].mean() for g in range(NUM_GOALS)])
    print("\n  goal  frequency  bits/message")
    for g in range(NUM_GOALS):
        print(f"  {g:>4}  {freq[g]:9.3f}  {per_goal[g]:12.2f}")
    r = np.corrcoef(freq, per_goal)[0, 1]
    print(f"  Pearson r(frequency, bits) = {r:.3f} (DDCL GridWorld paper: -0.989)")


if __name__ == "__main__":
    main()
