"""Worked example for docs/comms.md: a speaker/listener game over DDCL, priced two ways.

A speaker sees one of 6 goals, drawn with the DDCL GridWorld weights (50, 25, 2, 1, 1, 1), and
sends z in R^4; a listener reads the reconstruction and guesses the goal. Loss = cross-entropy
+ lam * channel cost. Two speakers are trained from the same start:

- ``ddcl``: ``comms.DDCL(delta)``, cost = DDCL's surrogate ``log2(2|z|/delta + 1)``, bits = the
  Elias-gamma code of the integers (what the DDCL paper's channel costs on a wire);
- ``coded``: ``comms.EntropyCoded(DDCL(delta), CategoricalPrior(-31, 31))``, cost = the
  expected code length under a prior learned with the speaker, bits = that code length,
  checked against real bytes from ``comms.rangecoder`` (constriction's range coder).

After training each channel runs in evaluation mode (real integers) and the script prints, per
channel, accuracy, Elias bits, prior bits, range-coded bits, the empirical entropy of the
symbols sent, and the Pearson r between goal frequency and bits per goal; ``--out`` writes
the same as JSON.

    python benchmarks/comms_example.py [--steps 1500] [--lam 0.01] [--seed 0] [--out FILE]

Runs in well under a minute on a laptop CPU. Uses optax (``agents`` extra) and constriction
(``coding`` extra).
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax

from dcgenv import comms
from dcgenv.comms import rangecoder

GOAL_WEIGHTS = np.array([50, 25, 2, 1, 1, 1], np.float32)
NUM_GOALS, DIM, BATCH = 6, 4, 256


def init(key, channel):
    ks, kl, kc = jax.random.split(key, 3)
    params = {"speaker": 0.5 * jax.random.normal(ks, (NUM_GOALS, DIM)),
              "listener": 0.5 * jax.random.normal(kl, (DIM, NUM_GOALS)),
              "bias": jnp.zeros(NUM_GOALS)}
    if channel.has_params:
        params["channel"] = channel.init(kc, 1, DIM)
    return params


def play(params, key, channel, lam, *, train):
    """One batch of the game: goals -> messages -> channel -> guesses. Returns (loss, info)."""
    k_goal, k_channel = jax.random.split(key)
    goals = jax.random.categorical(k_goal, jnp.log(GOAL_WEIGHTS), shape=(BATCH,))
    z = comms.tap("message", params["speaker"][goals])[:, None]  # [BATCH, 1, DIM]
    keys = jax.random.split(k_channel, BATCH)  # shared by each sender/receiver pair
    send = lambda k, m: channel.send(k, m, train=train, params=params.get("channel"))
    z_hat, stats = jax.vmap(send)(keys, z)
    logits = z_hat[:, 0] @ params["listener"] + params["bias"]
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
    params = init(k_init, channel)
    carry, (losses, grad_norms) = jax.lax.scan(step, (params, opt.init(params)),
                                               jax.random.split(k_steps, steps))
    return carry[0], losses, grad_norms


def evaluate(params, key, channel, lam) -> dict:
    """16 x 256 games in evaluation mode: the figures of one row of the table."""
    run = jax.jit(play, static_argnums=2, static_argnames="train")
    batches = [run(params, k, channel, lam, train=False)[1] for k in jax.random.split(key, 16)]
    info = {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in batches[0]}
    if channel.has_params:
        data = rangecoder.encode(channel.prior, params["channel"], info["symbols"])
        assert (rangecoder.decode(channel.prior, params["channel"], data, info["symbols"].shape)
                == info["symbols"]).all(), "range coding did not round-trip"
        info["coded_bytes"] = len(data)
    return info


def summarise(info: dict, bits: np.ndarray) -> dict:
    """One row: accuracy, the Elias count, the prior's bits ``bits`` (if any), the real coded
    bits, the symbols' empirical entropy and r(goal frequency, bits per goal)."""
    goals, symbols = info["goals"], info["symbols"]
    row = {"games": int(len(goals)), "accuracy": float(info["correct"].mean()),
           "elias_bits": float(info.get("elias_bits", info["bits"]).mean()),
           "entropy_joint": comms.empirical_entropy_bits(symbols),
           "entropy_per_element": comms.empirical_entropy_bits(symbols, joint=False)}
    if "coded_bytes" in info:
        row |= {"prior_bits": float(bits.mean()),
                "coded_bits": 8 * info["coded_bytes"] / len(goals)}
    freq = GOAL_WEIGHTS / GOAL_WEIGHTS.sum()  # per goal: the bits this channel sends
    row["bits_per_goal"] = [float(bits[goals == g].mean()) for g in range(NUM_GOALS)]
    row["pearson_r"] = float(np.corrcoef(freq, row["bits_per_goal"])[0, 1])
    return row


def coded_after_training(info: dict, prior: comms.CategoricalPrior) -> dict:
    """The Elias-priced speaker's symbols range-coded under a prior fitted to them afterwards
    (their own per-element frequencies): what a coder alone saves, without retraining."""
    symbols = info["symbols"]
    fitted = prior.fit(symbols)
    data = rangecoder.encode(prior, fitted, symbols)
    assert (rangecoder.decode(prior, fitted, data, symbols.shape) == symbols).all()
    bits = np.asarray(prior.bits(fitted, symbols)).reshape(len(symbols), -1).sum(1)
    return summarise({**info, "elias_bits": info["bits"], "coded_bytes": len(data)}, bits)


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--lam", type=float, default=0.01)
    parser.add_argument("--delta", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=pathlib.Path, help="write the table as JSON here")
    args = parser.parse_args()
    ddcl = comms.DDCL(delta=args.delta)
    channels = {"ddcl": ddcl, "coded": comms.EntropyCoded(ddcl, comms.CategoricalPrior(-31, 31))}
    key_train, key_eval = jax.random.split(jax.random.key(args.seed))
    train_jit = jax.jit(train, static_argnums=(1, 3))
    rows, trained = {}, {}
    for name, channel in channels.items():
        params, losses, grad_norms = train_jit(key_train, channel, args.lam, args.steps)
        trained[name] = params
        print(f"{name}: {channel}, lam={args.lam}, {args.steps} steps of {BATCH} games; "
              f"loss {float(losses[0]):.3f} -> {float(losses[-1]):.3f}; mean |d loss/d "
              f"message| {float(grad_norms[0]):.2e} -> {float(grad_norms[-1]):.2e}")
        info = evaluate(params, key_eval, channel, args.lam)
        rows[name] = summarise(info, info["bits"])
        if name == "ddcl":
            rows["ddcl, coded after training"] = coded_after_training(
                info, channels["coded"].prior)

    # One speaker/listener step of the ddcl speaker in evaluation mode: what goes on the wire.
    goal, key_msg = 0, jax.random.key(1)
    z = trained["ddcl"]["speaker"][goal]
    z_hat, stats = ddcl.send(key_msg, z, train=False)
    wire = comms.encode(stats["symbols"])
    print(f"\nddcl, goal {goal}: z = {np.round(np.asarray(z), 3)}")
    print(f"  integers m = {np.asarray(stats['symbols']).astype(int)}, wire '{wire}' "
          f"({len(wire)} bits = stats['bits'] {float(stats['bits']):.0f}), "
          f"surrogate cost {float(stats['cost']):.2f}")
    received = ddcl.dequantise(key_msg, jnp.asarray(comms.decode(wire), jnp.float32))
    print(f"  receiver: decode -> m -> m*delta - eps = {np.round(np.asarray(received), 3)} "
          f"(send's z_hat {np.round(np.asarray(z_hat), 3)})")

    games = rows["ddcl"]["games"]
    print(f"\nevaluation, {games} games per channel; bits per message (continuous baseline: "
          f"{32 * DIM})")
    print("| channel | accuracy | Elias bits | prior bits | range-coded bits | entropy, joint "
          "| entropy, per element | coded / entropy (per element) | r(frequency, bits) |")
    print("|---|--:|--:|--:|--:|--:|--:|--:|--:|")
    for name, row in rows.items():
        coded = row.get("coded_bits")
        show = lambda v: "-" if v is None else f"{v:.2f}"
        ratio = "-" if coded is None else f"{coded / row['entropy_per_element']:.3f}"
        print(f"| {name} | {row['accuracy']:.3f} | {row['elias_bits']:.2f} | "
              f"{show(row.get('prior_bits'))} | {show(coded)} | {row['entropy_joint']:.2f} | "
              f"{row['entropy_per_element']:.2f} | {ratio} | {row['pearson_r']:.3f} |")
    freq = GOAL_WEIGHTS / GOAL_WEIGHTS.sum()
    print("\n| goal | frequency | " + " | ".join(f"{n} bits" for n in rows) + " |")
    print("|--:|--:|" + "--:|" * len(rows))
    for g in range(NUM_GOALS):
        print(f"| {g} | {freq[g]:.3f} | " +
              " | ".join(f"{row['bits_per_goal'][g]:.2f}" for row in rows.values()) + " |")
    print("r(frequency, bits): the DDCL GridWorld paper reports -0.989")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"args": {k: str(v) if isinstance(v, pathlib.Path) else v
                                                 for k, v in vars(args).items()},
                                        "jax": jax.__version__, "rows": rows}, indent=1))
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
